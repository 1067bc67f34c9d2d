"""On AWS: the stream function (functions/stream/app.py) answers a tenant's visitors with the
tenant's own engine chain, as the self-hosted gateway does (the router comes from the shared
``Deps``). The handlers run as Lambda runs them, in production mode, posting to moto's
management API; the providers are OpenAI-compatible fakes over real HTTP/SSE."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from kefu_core import lambda_runtime
from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.secret_settings import get_settings
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.engines import EngineStore
from kefu_core.product.tenants.tenants import TenantStore
from kefu_core.security.datakeys import DataKeys
from tests.functional.test_lambda_handlers import (  # noqa: F401 - moto_endpoint is a fixture
    LambdaContext,
    load_handler,
    moto_endpoint,
    received,
    token,
)
from tests.support.core import SECRET, load_event
from tests.support.fake_openai import FakeOpenAI

DATA_KEY = "lambda-tenant-engines-data-key-0123456789-abcdef"

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture
def providers() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI(first_token_ms=1) as deployment, FakeOpenAI(first_token_ms=1) as tenant:
        yield deployment, tenant


@pytest.fixture
def container(
    make_database: Callable[[], str], redis_url: str, moto_endpoint: str,  # noqa: F811
    providers: tuple[FakeOpenAI, FakeOpenAI], monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, Invoke]]:
    """Lambda-like containers with the production environment template.yaml sets, the
    deployment's chain in ENGINES and private addresses allowed for tenant engines (the
    fake listens on 127.0.0.1); yields (the database, invoke)."""
    deployment, _ = providers
    dsn = make_database()
    prefix = f"kefu-test:lambda-engines:{uuid.uuid4().hex[:8]}:"
    for key, value in {
        "KEFU_ENV": "production", "DATABASE_URL": dsn, "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix, "TOKEN_SECRETS": SECRET, "DATA_ENCRYPTION_KEY": DATA_KEY,
        "WEBSOCKET_MANAGEMENT_URL": moto_endpoint, "OUTBOUND_ALLOW_PRIVATE": "true",
        "ENGINES": json.dumps([{"name": "deployment", "provider": "fakeai",
                                "base_url": deployment.base_url, "model": "deployment-model",
                                "api_keys": ["sk-deployment"]}]),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "kefu",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STREAM_FUNCTION_NAME", raising=False)
    get_settings.cache_clear()
    handlers = {name: load_handler(name).lambda_handler
                for name in ("connect", "message", "stream")}
    worker = ThreadPoolExecutor(max_workers=1)

    def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = worker.submit(handlers[name], event, LambdaContext()).result(60)
        return result

    yield dsn, invoke
    worker.submit(lambda_runtime.reset).result(60)
    worker.shutdown()
    get_settings.cache_clear()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


async def _tenant_with_own_engine(dsn: str, tenant: str, base_url: str) -> None:
    """What ``PUT /v1/admin/engines/secrets/llm-key`` and ``PUT /v1/admin/engines`` store."""
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        await migrate(pool)
        keys = DataKeys.from_settings(Settings(kefu_env="production",
                                               data_encryption_key=[DATA_KEY]))
        engines = EngineStore(pool, keys)
        await TenantStore(pool).ensure(tenant_id=tenant, name=tenant)
        await engines.put_secret(tenant_id=tenant, name="llm-key", secret="sk-tenant")
        await engines.put_chain(tenant_id=tenant, chain=[{
            "name": "own", "kind": "openai", "base_url": base_url, "model": "tenant-model",
            "key_ref": "llm-key"}])
    finally:
        await pool.close()


def _chat(invoke: Invoke, tenant: str, text: str) -> dict[str, Any]:
    """$connect, a message, then the stream function's invocation: the final frame."""
    connection_id = f"conn-{uuid.uuid4().hex[:8]}="
    connect = load_event("connect.json", REPLACE_WITH_TOKEN=token(tenant))
    connect["requestContext"]["connectionId"] = connection_id
    assert invoke("connect", connect)["statusCode"] == 200
    message = load_event("message.json")
    message["requestContext"]["connectionId"] = connection_id
    message["body"] = json.dumps({"action": "message", "client_msg_id": "c-1", "text": text})
    assert invoke("message", message)["statusCode"] == 200
    (ack,) = [f for f in received(connection_id) if f["type"] == "ack"]
    stream = load_event("stream.json")
    stream.update(tenant_id=tenant, conversation_id=ack["conversation_id"],
                  reply_to_seq=ack["seq"], connection_id=connection_id)
    assert invoke("stream", stream)["status"] == "complete"
    (final,) = [f for f in received(connection_id) if f["type"] == "final"]
    return dict(final)


async def test_the_stream_function_answers_with_the_tenants_own_engine(
    container: tuple[str, Invoke], providers: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    dsn, invoke = container
    deployment, own = providers
    # GIVEN a tenant whose stored chain points at its own provider, and one without a chain
    await _tenant_with_own_engine(dsn, "acme", own.base_url)
    # WHEN a visitor of each asks through the Lambda functions
    final = _chat(invoke, "acme", "Where is my order?")
    plain = _chat(invoke, "demo", "Hello?")
    # THEN the tenant's provider answered its visitor, with the tenant's key
    assert final["engine"] == "own" and "Where is my order?" in final["text"]
    assert [(r["model"], r["key"]) for r in own.requests] == [("tenant-model", "sk-tenant")]
    # AND the deployment's provider answered the other tenant only
    assert plain["engine"] == "deployment"
    assert [(r["model"], r["key"]) for r in deployment.requests] == [
        ("deployment-model", "sk-deployment")]
