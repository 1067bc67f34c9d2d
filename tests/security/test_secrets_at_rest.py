"""Engine secrets and identity secrets are encrypted at rest (AES-256-GCM, keys from
DATA_ENCRYPTION_KEY or a Secrets Manager secret), readable after a key rotation, refused in
production without a key, and never returned by any admin route."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import jwt
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from psycopg_pool import AsyncConnectionPool

from kefu_core.admin import create_admin_app
from kefu_core.cli import main as kefu
from kefu_core.deps import Deps
from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.engines import EngineStore
from kefu_core.product.tenants.tenants import ROOT_TENANT, TenantStore
from kefu_core.security.datakeys import (
    DEV_DATA_KEY,
    MARKER,
    DataKeyError,
    DataKeys,
    DataKeyUnavailable,
    reset_data_keys,
)
from tests.support.core import SECRET, make_deps
from tests.support.fake_openai import free_port
from tests.support.gateway import redis_prefix_removed
from tests.support.routes import api_routes
from tests.support.staff import make_staff, token_for

KEY_A = "kA-" + "a1b2c3d4e5f6" * 4
KEY_B = "kB-" + "0f9e8d7c6b5a" * 4
ENGINE_SECRET = "sk-tenant-" + uuid.uuid4().hex


def _raw(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


_TOKENS: dict[str, str] = {}  # tenant -> a token of a real admin (kefu_core.product.agent_auth)


def _headers(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {_TOKENS[tenant]}"}


@dataclass
class Admin:
    http: httpx.AsyncClient
    dsn: str
    app: Any


@pytest.fixture(autouse=True)
def _fresh_keys() -> Iterator[None]:
    reset_data_keys()
    yield
    reset_data_keys()


async def _admin(make_database: Callable[[], str], redis_url: str,
                 **extra: Any) -> AsyncIterator[Admin]:
    dsn = make_database()
    prefix = f"kefu-test:atrest:{uuid.uuid4().hex[:8]}:"
    settings = Settings(kefu_env="production", database_url=dsn, redis_url=redis_url,
                        redis_prefix=prefix, token_secrets=[SECRET],
                        widget_keys=["rest-key:rest"], memory_enabled=False, **extra)
    deps, _, _ = await make_deps(settings)

    async def provide() -> Deps:
        return deps

    app = create_admin_app(settings, deps_provider=provide)
    for tenant in ("rest", ROOT_TENANT):
        _TOKENS[tenant] = token_for(await make_staff(deps.pool, tenant_id=tenant,
                                                     role="admin"))
    with redis_prefix_removed(redis_url, prefix):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://admin") as http:
            yield Admin(http, dsn, app)
        await deps.aclose()


@pytest.fixture
async def admin(make_database, redis_url) -> AsyncIterator[Admin]:  # type: ignore[no-untyped-def]
    async for running in _admin(make_database, redis_url, data_encryption_key=[KEY_A]):
        yield running


@pytest.fixture
async def keyless(make_database, redis_url) -> AsyncIterator[Admin]:  # type: ignore[no-untyped-def]
    async for running in _admin(make_database, redis_url):
        yield running


# -- through the admin API, in the production configuration ----------------------------------
async def test_an_engine_secret_is_not_stored_in_plaintext(admin: Admin) -> None:
    # WHEN a tenant admin stores an engine secret
    response = await admin.http.put("/v1/admin/engines/secrets/openai",
                                    json={"secret": ENGINE_SECRET}, headers=_headers("rest"))
    assert response.status_code == 204
    # THEN the PostgreSQL row holds a sealed value, not the secret
    [(stored,)] = _raw(admin.dsn, "SELECT secret FROM engine_secrets WHERE tenant_id = 'rest'")
    assert ENGINE_SECRET not in stored and ENGINE_SECRET[10:] not in stored
    assert stored.startswith(MARKER)
    # AND the server can still read it back for the engine
    pool = await open_pool(admin.dsn, min_size=1, max_size=1)
    try:
        store = EngineStore(pool, DataKeys(keys=[KEY_A], secret_id=None, production=True))
        assert await store.secret(tenant_id="rest", name="openai") == ENGINE_SECRET
    finally:
        await pool.close()


async def test_an_identity_secret_is_not_stored_in_plaintext_and_still_verifies(
    admin: Admin,
) -> None:
    # GIVEN the tenant's admin rotated the identity secret (shown once)
    rotated = await admin.http.post("/v1/admin/identity-secret", headers=_headers("rest"))
    assert rotated.status_code == 200
    secret = rotated.json()["identity_secret"]
    # THEN the row does not hold it
    [(stored,)] = _raw(admin.dsn, "SELECT identity_secret FROM tenants WHERE id = 'rest'")
    assert secret not in stored and stored.startswith(MARKER)
    # AND an identity signed with it is still verified when the widget buys a token
    identity = jwt.encode({"sub": "42", "exp": int(time.time()) + 300}, secret,
                          algorithm="HS256")
    response = await admin.http.post("/v1/visitor-token",
                                     json={"widget_key": "rest-key", "identity": identity})
    assert response.status_code == 200 and response.json()["identified"] is True


async def test_no_admin_route_returns_a_stored_secret(admin: Admin) -> None:
    # GIVEN an engine secret and an identity secret
    await admin.http.put("/v1/admin/engines/secrets/openai", json={"secret": ENGINE_SECRET},
                         headers=_headers("rest"))
    identity = (await admin.http.post("/v1/admin/identity-secret",
                                      headers=_headers("rest"))).json()["identity_secret"]
    [(sealed,)] = _raw(admin.dsn, "SELECT identity_secret FROM tenants WHERE id = 'rest'")
    # WHEN every GET route without path parameters is called by the tenant's admin and by the
    # super-admin
    paths = sorted({path for method, path in api_routes(admin.app)
                    if method == "GET" and "{" not in path})
    assert "/v1/admin/engines" in paths
    seen = 0
    for headers in (_headers("rest"), _headers("_root")):
        for path in paths:
            response = await admin.http.get(path, headers=headers)
            seen += response.status_code == 200
            # THEN no answer holds a secret or its sealed form
            for value in (ENGINE_SECRET, identity, sealed):
                assert value not in response.text, path
    assert seen >= 5


async def test_production_without_a_key_refuses_and_stores_nothing(
    keyless: Admin, caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN production with neither DATA_ENCRYPTION_KEY nor DATA_ENCRYPTION_KEY_ID
    with caplog.at_level(logging.ERROR, logger="kefu.datakeys"):
        # WHEN an admin stores an engine secret or rotates the identity secret
        put = await keyless.http.put("/v1/admin/engines/secrets/openai",
                                     json={"secret": ENGINE_SECRET}, headers=_headers("rest"))
        rotated = await keyless.http.post("/v1/admin/identity-secret", headers=_headers("rest"))
    # THEN both are refused with a clear status, and nothing reached PostgreSQL
    assert put.status_code == 503 and rotated.status_code == 503
    assert put.json()["detail"] == "data encryption key unavailable"
    assert _raw(keyless.dsn, "SELECT count(*) FROM engine_secrets") == [(0,)]
    assert _raw(keyless.dsn, "SELECT identity_secret FROM tenants WHERE id = 'rest'") == [(None,)]
    assert "DATA_ENCRYPTION_KEY" in caplog.text


# -- keys: rotation, binding to the row, Secrets Manager, production rules -------------------
@pytest.fixture
async def pool(make_database: Callable[[], str]) -> AsyncIterator[AsyncConnectionPool]:
    dsn = make_database()
    opened = await open_pool(dsn, min_size=1, max_size=2)
    await migrate(opened)
    async with opened.connection() as conn:
        await conn.execute("INSERT INTO tenants (id, name) VALUES ('t1', 'T1'), ('t2', 'T2')")
    yield opened
    await opened.close()


def _keys(*materials: str) -> DataKeys:
    return DataKeys(keys=list(materials), secret_id=None, production=True)


async def _stored(pool: AsyncConnectionPool, sql: str) -> str:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql)).fetchone()
    assert row is not None
    return str(row[0])


async def test_secrets_stay_readable_through_a_key_rotation(pool: AsyncConnectionPool) -> None:
    # GIVEN a secret sealed with key A
    await EngineStore(pool, _keys(KEY_A)).put_secret(tenant_id="t1", name="openai",
                                                     secret=ENGINE_SECRET)
    sealed_a = await _stored(pool, "SELECT secret FROM engine_secrets")
    # WHEN key B is added first (B encrypts, A still decrypts)
    rotated = EngineStore(pool, _keys(KEY_B, KEY_A))
    # THEN the secret reads, and reading sealed it again with B
    assert await rotated.secret(tenant_id="t1", name="openai") == ENGINE_SECRET
    sealed_b = await _stored(pool, "SELECT secret FROM engine_secrets")
    assert sealed_b != sealed_a and await _keys(KEY_B).is_current(sealed_b)
    # AND once A is removed the secret still reads with B alone, and not with A alone
    assert await EngineStore(pool, _keys(KEY_B)).secret(
        tenant_id="t1", name="openai") == ENGINE_SECRET
    with pytest.raises(DataKeyError):
        await EngineStore(pool, _keys(KEY_A)).secret(tenant_id="t1", name="openai")


async def test_a_sealed_secret_moved_to_another_tenant_does_not_open(
    pool: AsyncConnectionPool,
) -> None:
    store = TenantStore(pool, _keys(KEY_A))
    await store.rotate_identity_secret("t1")
    async with pool.connection() as conn:
        await conn.execute("UPDATE tenants SET identity_secret ="
                           " (SELECT identity_secret FROM tenants WHERE id = 't1') WHERE id = 't2'")
    with pytest.raises(DataKeyError):
        await store.identity_secret("t2")


async def test_plaintext_rows_from_before_encryption_are_sealed_when_read(
    pool: AsyncConnectionPool,
) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE tenants SET identity_secret = 'ids_legacy' WHERE id = 't1'")
    assert await TenantStore(pool, _keys(KEY_A)).identity_secret("t1") == "ids_legacy"
    stored = await _stored(pool, "SELECT identity_secret FROM tenants WHERE id = 't1'")
    assert "ids_legacy" not in stored and stored.startswith(MARKER)


def test_kefu_reencrypt_secrets_seals_every_plaintext_row(
    make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a production database with rows written before encryption
    dsn = make_database()
    for name, value in (("KEFU_ENV", "production"), ("DATABASE_URL", dsn),
                        ("TOKEN_SECRETS", SECRET), ("DATA_ENCRYPTION_KEY", f"{KEY_B},{KEY_A}")):
        monkeypatch.setenv(name, value)
    assert kefu(["migrate"]) == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name, identity_secret) VALUES"
                     " ('t1', 'T1', 'ids_plain1'), ('t2', 'T2', NULL)")
        conn.execute("INSERT INTO engine_secrets (tenant_id, name, secret) VALUES"
                     " ('t1', 'openai', 'sk-plain-1'), ('t2', 'qwen', 'sk-plain-2')")
    # WHEN the operator runs the command
    assert kefu(["reencrypt-secrets"]) == 0
    # THEN no plaintext is left, and a second run has nothing to do
    assert "1 identity secret(s), 2 engine secret(s)" in capsys.readouterr().out
    rows = _raw(dsn, "SELECT identity_secret FROM tenants WHERE identity_secret IS NOT NULL"
                     " UNION ALL SELECT secret FROM engine_secrets")
    assert len(rows) == 3 and all(value.startswith(MARKER) for (value,) in rows)
    assert not any("plain" in value for (value,) in rows)
    assert kefu(["reencrypt-secrets"]) == 0
    assert "0 identity secret(s), 0 engine secret(s)" in capsys.readouterr().out
    # AND without a key in production the command refuses
    monkeypatch.delenv("DATA_ENCRYPTION_KEY")
    assert kefu(["reencrypt-secrets"]) == 1
    assert "DATA_ENCRYPTION_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("materials", [[], [DEV_DATA_KEY], ["too-short-key"]])
async def test_production_refuses_no_key_the_development_key_and_short_keys(
    materials: list[str],
) -> None:
    keys = DataKeys(keys=materials, secret_id=None, production=True)
    with pytest.raises(DataKeyUnavailable):
        await keys.seal("x", context="c")


async def test_development_without_a_key_still_encrypts() -> None:
    keys = DataKeys(keys=[], secret_id=None, production=False)
    sealed = await keys.seal(ENGINE_SECRET, context="c")
    assert ENGINE_SECRET not in sealed and await keys.open(sealed, context="c") == ENGINE_SECRET


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in (("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint),
                        ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    yield boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    server.stop()


async def test_the_key_comes_from_secrets_manager(secrets_manager: Any) -> None:
    # GIVEN DATA_ENCRYPTION_KEY_ID naming a secret {"keys": [...]}, as the template sets it
    name = f"kefu/data-key-{uuid.uuid4().hex[:8]}"
    arn = secrets_manager.create_secret(Name=name,
                                        SecretString=json.dumps({"keys": [KEY_B, KEY_A]}))["ARN"]
    settings = Settings(kefu_env="production", token_secrets=[SECRET],
                        data_encryption_key_id=arn)
    keys = DataKeys.from_settings(settings)
    # WHEN a secret is sealed THEN key B sealed it, and key A's values still open
    sealed = await keys.seal(ENGINE_SECRET, context="c")
    assert await _keys(KEY_B).open(sealed, context="c") == ENGINE_SECRET
    older = await _keys(KEY_A).seal("old", context="c")
    assert await keys.open(older, context="c") == "old"


async def test_an_unreadable_key_secret_refuses_in_production(secrets_manager: Any) -> None:
    settings = Settings(kefu_env="production", token_secrets=[SECRET],
                        data_encryption_key_id="kefu/no-such-secret")
    with pytest.raises(DataKeyUnavailable, match="could not be read"):
        await DataKeys.from_settings(settings).seal("x", context="c")
