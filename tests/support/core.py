"""Helpers for core tests: settings on the test services, and in-process seams that record.

``RecordingPoster`` and ``RecordingInvoker`` are the in-process implementations of the
transport seams (what the gateway does without HTTP), so handler tests can read every frame.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from kefu_core.deps import Deps, build_deps
from kefu_core.infra.errors import GoneError
from kefu_core.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-0123456789-0123456789-abcdef"


def core_settings(*, pg_dsn: str, redis_url: str, redis_prefix: str, **extra: Any) -> Settings:
    return Settings(
        kefu_env="test",
        database_url=pg_dsn,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        token_secrets=[SECRET],
        delta_flush_ms=20,
        **extra,
    )


class RecordingPoster:
    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self.posts = 0
        self.closed: list[str] = []

    async def post(self, connection_id: str, data: str) -> None:
        self.posts += 1
        if connection_id in self.gone:
            raise GoneError(connection_id)
        self.frames[connection_id].append(json.loads(data))

    async def close(self, connection_id: str) -> None:
        self.closed.append(connection_id)

    def of_type(self, connection_id: str, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames[connection_id] if f.get("type") == kind]


class RecordingInvoker:
    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.event = asyncio.Event()

    async def invoke(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)
        self.event.set()


async def make_deps(settings: Settings, **kwargs: Any) -> tuple[Deps, RecordingPoster,
                                                               RecordingInvoker]:
    poster, invoker = RecordingPoster(), RecordingInvoker()
    deps = await build_deps(settings, poster=poster, invoker=invoker, **kwargs)
    return deps, poster, invoker


def load_event(name: str, **replace: str) -> dict[str, Any]:
    text = (ROOT / "events" / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    event: dict[str, Any] = json.loads(text)
    return event
