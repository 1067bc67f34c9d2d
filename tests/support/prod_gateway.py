"""A gateway replica configured as production runs it (``KEFU_ENV=production``, a real token
secret, management keys), on the test PostgreSQL and its own Redis key prefix."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from kefu_core.infra.db import open_pool
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.agents import AgentStore
from kefu_core.product.tenants.tenants import TenantStore
from tests.support.core import SECRET
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

MANAGEMENT_KEY = "AKIDKEFUSECURITYTEST:management-secret-0123456789-abcdef"


def production_settings(*, dsn: str, redis_url: str, redis_prefix: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "kefu_env": "production",
        "database_url": dsn,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "token_secrets": [SECRET],
        "gateway_management_keys": [MANAGEMENT_KEY],
        "gateway_trust_loopback": False,
        "memory_enabled": False,
        **extra,
    }
    return Settings(**values)


@contextlib.contextmanager
def production_gateway(
    *, dsn: str, redis_url: str, name: str, prefix: str | None = None, **extra: Any
) -> Iterator[RunningGateway]:
    """A production gateway; its Redis keys are removed afterwards. Replicas given the same
    ``prefix`` share their state, as replicas of one deployment do."""
    prefix = prefix or f"kefu-test:{name}:{uuid.uuid4().hex[:8]}:"
    with redis_prefix_removed(redis_url, prefix):
        config = production_settings(dsn=dsn, redis_url=redis_url, redis_prefix=prefix, **extra)
        with run_gateway(config, replica_id=name) as running:
            yield running


async def admin_token(gateway: RunningGateway, *, tenant: str) -> str:
    """An administrator of ``tenant`` (created in the store), signed in through the API."""
    dsn = gateway.gateway.settings.database_url
    assert dsn
    email = f"admin-{uuid.uuid4().hex[:8]}@{tenant}.test"
    password = "admin-password-0123456789"
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        await TenantStore(pool).ensure(tenant_id=tenant, name=tenant)
        await AgentStore(pool).create(tenant_id=tenant, email=email, name="Admin",
                                      password=password, role="admin")
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        login = await http.post("/v1/agent/login", json={"tenant": tenant, "email": email,
                                                         "password": password})
    assert login.status_code == 200, login.text
    return str(login.json()["token"])
