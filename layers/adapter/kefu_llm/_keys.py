"""API keys: several per provider, rotated without restart or dropped requests.

Sources (merged; each gives ``{group: KeySet}``, a group being a provider or a ``keys_name``):

- `SecretsManagerKeySource`: one secret, read at its ``AWSCURRENT`` and ``AWSPENDING`` stages;
- `FileKeySource`: a JSON file (re-read when it changes);
- `EnvKeySource`: comma-separated keys in environment variables;
- inline keys from the engine configuration.

Secret / file format: ``{"openai": ["sk-1", "sk-2"], "deepseek": "sk-3"}``, a group may also be
``{"current": [...], "pending": [...]}``; a plain string secret is the key of group ``default``,
which every engine falls back to.

`KeyRing` refreshes the sources every ``refresh_s`` in the background (the first load is
awaited), orders the keys of a group current-first, round-robin, with a pending key that has
worked promoted ahead, and retires a key that answered 401 for ``retire_s`` (and asks for an
early refresh, since a 401 usually means the key was rotated).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ._exceptions import ConfigurationError, KeyUnavailableError

__all__ = [
    "ApiKeyEntry",
    "EnvKeySource",
    "FileKeySource",
    "KeyRing",
    "KeySet",
    "KeySource",
    "SecretsManagerKeySource",
    "StaticKeySource",
    "key_id",
    "parse_key_document",
]

logger = logging.getLogger("kefu.llm.keys")


def key_id(value: str) -> str:
    """A stable, non-secret id for a key (safe in logs and Redis key names)."""
    return "k" + hashlib.sha256(value.encode()).hexdigest()[:12]


@dataclass(slots=True)
class KeySet:
    current: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class ApiKeyEntry:
    id: str
    value: str
    stage: str  # "current" | "pending"


class KeySource(Protocol):
    def load(self) -> dict[str, KeySet]:
        """Blocking read (run in a thread by the ring)."""
        ...


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ConfigurationError("a key entry must be a string or a list of strings")


def parse_key_document(raw: str, *, stage: str = "current") -> dict[str, KeySet]:
    """Parse a secret string / key file (see the module docstring)."""
    raw = raw.strip()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        doc = raw
    if isinstance(doc, str):
        doc = {"default": doc}
    if not isinstance(doc, dict):
        raise ConfigurationError("key document must be a JSON object or a plain key")
    out: dict[str, KeySet] = {}
    for group, value in doc.items():
        ks = KeySet()
        if isinstance(value, dict):
            ks.current = _as_list(value.get("current", []))
            ks.pending = _as_list(value.get("pending", []))
        elif stage == "pending":
            ks.pending = _as_list(value)
        else:
            ks.current = _as_list(value)
        out[str(group)] = ks
    return out


def _merge(into: dict[str, KeySet], other: Mapping[str, KeySet]) -> None:
    for group, ks in other.items():
        dst = into.setdefault(group, KeySet())
        dst.current += [k for k in ks.current if k not in dst.current]
        dst.pending += [k for k in ks.pending if k not in dst.pending and k not in dst.current]


class StaticKeySource:
    def __init__(self, groups: Mapping[str, list[str]]) -> None:
        self._groups = {g: KeySet(current=list(v)) for g, v in groups.items()}

    def load(self) -> dict[str, KeySet]:
        return {g: KeySet(list(k.current), list(k.pending)) for g, k in self._groups.items()}


class EnvKeySource:
    """``{group: env var}``; each variable holds one key or a comma-separated list."""

    def __init__(
        self, variables: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> None:
        self._vars = dict(variables)
        self._environ = environ

    def load(self) -> dict[str, KeySet]:
        env = self._environ if self._environ is not None else os.environ
        out: dict[str, KeySet] = {}
        for group, var in self._vars.items():
            keys = _as_list(env.get(var, ""))
            if keys:
                _merge(out, {group: KeySet(current=keys)})
        return out


class FileKeySource:
    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._mtime: float | None = None
        self._last: dict[str, KeySet] = {}

    def load(self) -> dict[str, KeySet]:
        try:
            mtime = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            logger.warning("key file missing", extra={"path": str(self._path)})
            return {}
        if mtime != self._mtime:
            self._last = parse_key_document(self._path.read_text(encoding="utf-8"))
            self._mtime = mtime
        return self._last


class SecretsManagerKeySource:
    """Keys from AWS Secrets Manager: the ``AWSCURRENT`` and (if any) ``AWSPENDING`` versions."""

    def __init__(self, secret_id: str, *, client: Any | None = None) -> None:
        self._secret_id = secret_id
        self._client = client

    def _sm(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def load(self) -> dict[str, KeySet]:
        client = self._sm()
        out: dict[str, KeySet] = {}
        current = client.get_secret_value(SecretId=self._secret_id, VersionStage="AWSCURRENT")
        _merge(out, parse_key_document(current.get("SecretString") or "", stage="current"))
        try:
            pending = client.get_secret_value(SecretId=self._secret_id, VersionStage="AWSPENDING")
        except Exception as exc:  # no pending version outside a rotation
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code not in ("ResourceNotFoundException", "InvalidRequestException"):
                raise
        else:
            if pending.get("VersionId") != current.get("VersionId"):
                _merge(out, parse_key_document(pending.get("SecretString") or "", stage="pending"))
        return out


class KeyRing:
    """All keys of a router, refreshed in the background."""

    def __init__(
        self,
        sources: list[KeySource],
        *,
        refresh_s: float = 300.0,
        retire_s: float = 3600.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._sources = sources
        self.refresh_s = refresh_s
        self.retire_s = retire_s
        self._clock = clock
        self._groups: dict[str, KeySet] = {}
        self._loaded_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._retired: dict[str, float] = {}
        self._promoted: set[str] = set()
        self._rr: dict[str, int] = {}

    async def _load(self) -> None:
        merged: dict[str, KeySet] = {}
        for source in self._sources:
            _merge(merged, await asyncio.to_thread(source.load))
        self._groups = merged
        self._loaded_at = self._clock()

    async def _refresh_quietly(self) -> None:
        try:
            await self._load()
        except Exception:
            logger.warning("key refresh failed; keeping the previous keys", exc_info=True)
            self._loaded_at = self._clock()

    async def ensure_fresh(self) -> None:
        now = self._clock()
        if self._loaded_at is None:
            async with self._lock:
                if self._loaded_at is None:
                    try:
                        await self._load()
                    except Exception as exc:
                        raise KeyUnavailableError("could not load API keys") from exc
            return
        if now - self._loaded_at >= self.refresh_s and (
            self._refreshing is None or self._refreshing.done()
        ):
            self._refreshing = asyncio.create_task(self._refresh_quietly())

    async def refresh(self) -> None:
        """Reload every source now (after any background refresh under way)."""
        if self._refreshing is not None and not self._refreshing.done():
            await self._refreshing
        await self._load()

    def request_refresh(self, min_age_s: float = 5.0) -> None:
        """Refresh soon (a key just failed with 401): at most once every ``min_age_s``."""
        if self._loaded_at is not None and self._clock() - self._loaded_at >= min_age_s:
            self._loaded_at = self._clock() - self.refresh_s

    async def candidates(self, group: str) -> list[ApiKeyEntry]:
        """Usable keys of ``group`` (or ``default``), in the order to try them."""
        await self.ensure_fresh()
        ks = self._groups.get(group) or self._groups.get("default")
        if ks is None:
            return []
        now = self._clock()
        current = [ApiKeyEntry(key_id(v), v, "current") for v in ks.current]
        pending = [ApiKeyEntry(key_id(v), v, "pending") for v in ks.pending]
        if current:
            n = self._rr.get(group, 0)
            self._rr[group] = n + 1
            i = n % len(current)
            current = current[i:] + current[:i]
        ordered = [k for k in pending if k.id in self._promoted] + current
        ordered += [k for k in pending if k.id not in self._promoted]
        return [k for k in ordered if self._retired.get(k.id, 0.0) <= now]

    def retire(self, key: ApiKeyEntry) -> None:
        self._retired[key.id] = self._clock() + self.retire_s
        self.request_refresh()
        logger.warning("API key retired after 401", extra={"key_id": key.id})

    def worked(self, key: ApiKeyEntry) -> None:
        if key.stage == "pending" and key.id not in self._promoted:
            self._promoted.add(key.id)
            logger.info("pending API key promoted", extra={"key_id": key.id})

    async def aclose(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            with contextlib.suppress(BaseException):
                await self._refreshing
