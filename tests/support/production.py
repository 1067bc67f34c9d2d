"""The admin app and the gateway as production runs them (``KEFU_ENV=production``, a strong
token secret), on the test services, for the security tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from kefu_core.admin import create_admin_app
from kefu_core.deps import Deps
from kefu_core.infra.settings import Settings
from tests.support.core import make_deps
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

STRONG_SECRET = "production-token-secret-" + uuid.uuid4().hex  # 56 characters
MANAGEMENT_KEY = "AKIDKEFUTEST:" + "m" * 40


def production_settings(*, pg_dsn: str, redis_url: str, redis_prefix: str,
                        **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "kefu_env": "production", "database_url": pg_dsn, "redis_url": redis_url,
        "redis_prefix": redis_prefix, "token_secrets": [STRONG_SECRET],
        "gateway_management_keys": [MANAGEMENT_KEY], "memory_enabled": False, **extra}
    return Settings(**values)


@dataclass
class AdminHarness:
    app: FastAPI
    deps: Deps
    settings: Settings

    def client(self, address: str = "198.51.100.10") -> httpx.AsyncClient:
        """An HTTP client of the admin app whose requests come from ``address``."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://admin")


@contextlib.asynccontextmanager
async def production_admin(*, pg_dsn: str, redis_url: str,
                           **extra: Any) -> AsyncIterator[AdminHarness]:
    prefix = f"kefu-test:security:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=prefix,
                                   **extra)
    deps, _, _ = await make_deps(settings)

    async def provide() -> Deps:
        return deps

    with redis_prefix_removed(redis_url, prefix):
        try:
            yield AdminHarness(app=create_admin_app(settings, deps_provider=provide), deps=deps,
                               settings=settings)
        finally:
            await deps.aclose()


@contextlib.contextmanager
def production_gateway(*, pg_dsn: str, redis_url: str, label: str,
                       **extra: Any) -> Iterator[RunningGateway]:
    """`kefu run`'s gateway in production mode on the test services, its Redis keys (under a
    prefix of ``label``) removed afterwards."""
    prefix = f"kefu-test:{label}:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=prefix,
                                   **extra)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running
