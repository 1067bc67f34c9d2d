"""The self-hosted gateway's management API (``/@connections``) is never open by accident.

Without ``GATEWAY_MANAGEMENT_KEYS`` only loopback callers may use it, which is safe only when
no reverse proxy on the same host forwards to the gateway (it makes every caller loopback).
Production therefore requires keys, unless the operator states ``GATEWAY_TRUST_LOOPBACK=true``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from kefu_core.cli import main as kefu
from kefu_core.gateway.app import check_gateway_config
from kefu_core.infra.errors import ConfigError
from kefu_core.infra.settings import Settings
from tests.support.core import SECRET
from tests.support.gateway import free_port, gateway_for_test

REAL = SECRET


def production(**extra: object) -> Settings:
    return Settings(kefu_env="production", token_secrets=[REAL], **extra)  # type: ignore[arg-type]


def test_production_gateway_without_management_keys_refuses_to_start() -> None:
    # GIVEN production settings with no management keys and no statement about loopback
    # WHEN the gateway is configured THEN it refuses, naming both ways out
    with pytest.raises(ConfigError) as refused:
        check_gateway_config(production())
    assert "GATEWAY_MANAGEMENT_KEYS" in str(refused.value)
    assert "GATEWAY_TRUST_LOOPBACK" in str(refused.value)
    # AND with keys, or with loopback explicitly trusted, it starts
    check_gateway_config(production(gateway_management_keys=["AKIDKEFU:" + "s" * 40]))
    check_gateway_config(production(gateway_trust_loopback=True))


def test_malformed_management_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="ACCESS_KEY_ID:secret"):
        check_gateway_config(production(gateway_management_keys=["no-colon-here"]))


def test_kefu_run_in_production_without_keys_exits_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the production environment of a self-hosted install that forgot the keys
    for key, value in {"KEFU_ENV": "production", "TOKEN_SECRETS": REAL,
                       "GATEWAY_PORT": str(free_port()),
                       "DATABASE_URL": "postgresql://kefu:x@127.0.0.1:9/none",
                       "REDIS_URL": "redis://127.0.0.1:9/0"}.items():
        monkeypatch.setenv(key, value)
    for key in ("GATEWAY_MANAGEMENT_KEYS", "GATEWAY_TRUST_LOOPBACK", "TOKEN_SECRET_ID"):
        monkeypatch.delenv(key, raising=False)
    # WHEN `kefu run` starts THEN it exits with status 2 and says what to set
    assert kefu(["run"]) == 2
    assert "GATEWAY_MANAGEMENT_KEYS" in capsys.readouterr().err


def test_kefu_run_in_production_without_token_secret_exits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in {"KEFU_ENV": "production", "GATEWAY_TRUST_LOOPBACK": "true",
                       "GATEWAY_PORT": str(free_port()),
                       "DATABASE_URL": "postgresql://kefu:x@127.0.0.1:9/none",
                       "REDIS_URL": "redis://127.0.0.1:9/0"}.items():
        monkeypatch.setenv(key, value)
    for key in ("TOKEN_SECRETS", "TOKEN_SECRET_ID", "GATEWAY_MANAGEMENT_KEYS"):
        monkeypatch.delenv(key, raising=False)
    assert kefu(["run"]) == 2
    assert "no token secret configured" in capsys.readouterr().err


@pytest.mark.parametrize(("trust", "expected"), [(None, 410), (False, 403)])
async def test_loopback_callers_only_when_loopback_is_trusted(
    make_database: Callable[[], str], redis_url: str, trust: bool | None, expected: int,
) -> None:
    # GIVEN a gateway without management keys, loopback trusted by default or not at all
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name="mgmt",
                          gateway_trust_loopback=trust) as gw:
        # WHEN a loopback caller posts to a connection
        async with httpx.AsyncClient(base_url=gw.http) as http:
            response = await http.post(f"/@connections/c-{uuid.uuid4().hex[:8]}=",
                                       content=b"{}")
        # THEN it reaches the API (the connection is gone: 410) only when loopback is trusted
        assert response.status_code == expected
