"""Key sources, the key ring, and settings parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kefu_llm import AdapterSettings, ConfigurationError, KeyUnavailableError
from kefu_llm._keys import (
    EnvKeySource,
    FileKeySource,
    KeyRing,
    KeySet,
    StaticKeySource,
    key_id,
    parse_key_document,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_key_documents() -> None:
    doc = parse_key_document(
        json.dumps(
            {"openai": ["a", "b"], "deepseek": "c, d", "qwen": {"current": "e", "pending": ["f"]}}
        )
    )
    assert doc["openai"] == KeySet(["a", "b"], [])
    assert doc["deepseek"] == KeySet(["c", "d"], [])
    assert doc["qwen"] == KeySet(["e"], ["f"])
    assert parse_key_document("sk-plain") == {"default": KeySet(["sk-plain"], [])}
    assert parse_key_document('{"openai": "x"}', stage="pending")["openai"] == KeySet([], ["x"])
    with pytest.raises(ConfigurationError):
        parse_key_document('{"openai": 3}')
    assert key_id("sk-secret") != "sk-secret" and key_id("sk-secret") == key_id("sk-secret")


def test_file_source_rereads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"openai": ["k1"]}))
    source = FileKeySource(path)
    assert source.load()["openai"].current == ["k1"]
    path.write_text(json.dumps({"openai": ["k2"]}))
    os.utime(path, ns=(1, 10**18))
    assert source.load()["openai"].current == ["k2"]
    assert FileKeySource(tmp_path / "missing.json").load() == {}


def test_env_source() -> None:
    source = EnvKeySource({"openai": "MY_KEYS"}, environ={"MY_KEYS": "k1,k2"})
    assert source.load() == {"openai": KeySet(["k1", "k2"], [])}


async def test_ring_order_retirement_promotion_and_refresh() -> None:
    clock = Clock()
    groups = {"openai": KeySet(["c1", "c2"], ["p1"])}

    class Source:
        loads = 0

        def load(self) -> dict[str, KeySet]:
            Source.loads += 1
            return {g: KeySet(list(k.current), list(k.pending)) for g, k in groups.items()}

    ring = KeyRing([Source()], refresh_s=60, retire_s=600, clock=clock)
    first = [k.value for k in await ring.candidates("openai")]
    second = [k.value for k in await ring.candidates("openai")]
    assert first == ["c1", "c2", "p1"] and second == ["c2", "c1", "p1"]  # round robin, pending last
    keys = await ring.candidates("openai")
    ring.retire(next(k for k in keys if k.value == "c1"))
    assert [k.value for k in await ring.candidates("openai")] == ["c2", "p1"]
    ring.worked(next(k for k in keys if k.value == "p1"))
    assert next(k.value for k in await ring.candidates("openai")) == "p1"  # promoted
    assert await ring.candidates("nope") == []
    # background refresh after refresh_s
    groups["openai"] = KeySet(["c3"], [])
    clock.now += 61
    await ring.candidates("openai")
    assert ring._refreshing is not None
    await ring._refreshing
    assert [k.value for k in await ring.candidates("openai")] == ["c3"]
    await ring.aclose()


async def test_ring_first_load_failure_is_a_key_error() -> None:
    class Broken:
        def load(self) -> dict[str, KeySet]:
            raise OSError("secrets manager unreachable")

    ring = KeyRing([Broken()])
    with pytest.raises(KeyUnavailableError):
        await ring.candidates("openai")
    ring2 = KeyRing([StaticKeySource({"default": ["k"]})])
    assert [k.value for k in await ring2.candidates("anything")] == ["k"]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ENGINES"):
        monkeypatch.delenv(var, raising=False)
    assert [e.name for e in AdapterSettings().engine_chain()] == ["offline"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("OPENAI_MODEL", "qwen2.5:7b")
    chain = AdapterSettings().engine_chain()
    assert [e.name for e in chain] == ["openai", "offline"] and chain[0].model == "qwen2.5:7b"
    assert [k.get_secret_value() for k in chain[0].api_keys] == ["none"]  # keyless local server
    monkeypatch.setenv(
        "ENGINES",
        json.dumps(
            [
                {
                    "name": "deepseek",
                    "provider": "deepseek",
                    "base_url": "https://api.deepseek.com",
                    "model": "deepseek-chat",
                    "api_key_env": "DEEPSEEK_API_KEY",
                },
                {
                    "name": "qwen",
                    "provider": "qwen",
                    "model": "qwen-plus",
                    "first_token_timeout_s": 3,
                },
            ]
        ),
    )
    monkeypatch.setenv("FIRST_TOKEN_TIMEOUT_S", "4")
    settings = AdapterSettings()
    assert settings.first_token_timeout_s == 4
    assert [e.name for e in settings.engine_chain()] == ["deepseek", "qwen", "offline"]
    monkeypatch.setenv("ENABLE_FALLBACK", "false")
    assert [e.name for e in AdapterSettings().engine_chain()] == ["deepseek"]
