"""Per-tenant engine chains drive replies: each tenant's visitors are answered by the engines
the tenant stored through the admin API, with the keys it stored, over the real HTTP/SSE
protocol; a tenant without a chain is answered by the deployment's engines.

Three OpenAI-compatible fake servers: the deployment's (``ENGINES``), tenant A's and tenant
B's. The gateway runs as production does (``KEFU_ENV=production``, encrypted secrets); the
fakes listen on 127.0.0.1, which tenants may only use because the operator allows it
(``OUTBOUND_ALLOW_PRIVATE=true``), except in the last test, where it does not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.infra.db import open_pool
from kefu_core.product.tenants.engines import EngineStore
from kefu_core.security.datakeys import DataKeys
from kefu_core.security.tokens import issue_token
from kefu_llm import _guarded_transport as guarded
from tests.support.core import SECRET
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import admin_token, production_gateway

DATA_KEY = "tenant-engines-test-data-key-0123456789-abcdef"
DEPLOYMENT_KEY = "sk-deployment-0001"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeOpenAI]]:
    with FakeOpenAI(first_token_ms=1) as deployment, FakeOpenAI(first_token_ms=1) as a, \
            FakeOpenAI(first_token_ms=1) as b:
        yield {"deployment": deployment, "a": a, "b": b}


@pytest.fixture(scope="module")
def deployment_chain(fakes: dict[str, FakeOpenAI]) -> Iterator[None]:
    """The deployment's chain, as the operator configures it (environment)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ENGINES", json.dumps([{
        "name": "deployment", "provider": "fakeai", "base_url": fakes["deployment"].base_url,
        "model": "deployment-model", "api_keys": [DEPLOYMENT_KEY]}]))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str,
            deployment_chain: None) -> Iterator[RunningGateway]:
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"engines-{uuid.uuid4().hex[:6]}",
                            data_encryption_key=[DATA_KEY],
                            outbound_allow_private=True) as running:
        yield running


@pytest.fixture(scope="module")
def strict_dsn(make_database: Callable[[], str]) -> str:
    """The database of the gateways that keep the default outbound policy."""
    return make_database()


@pytest.fixture(autouse=True)
def _reset(fakes: dict[str, FakeOpenAI]) -> None:
    for fake in fakes.values():
        fake.reset()


async def _admin(gateway: RunningGateway, tenant: str) -> httpx.AsyncClient:
    token = await admin_token(gateway, tenant=tenant)
    return httpx.AsyncClient(base_url=gateway.http, timeout=30,
                             headers={"authorization": f"Bearer {token}"})


async def _own_engine(admin: httpx.AsyncClient, fake: FakeOpenAI, *, model: str,
                      key: str) -> None:
    """Store an engine secret and a one-engine chain naming it, through the admin API."""
    stored = await admin.put("/v1/admin/engines/secrets/llm-key", json={"secret": key})
    assert stored.status_code == 204, stored.text
    chain = await admin.put("/v1/admin/engines", json={"chain": [{
        "name": "own", "kind": "openai", "base_url": fake.base_url, "model": model,
        "key_ref": "llm-key"}]})
    assert chain.status_code == 200, chain.text


async def _ask(gateway: RunningGateway, tenant: str, text: str) -> dict[str, Any]:
    """A visitor of ``tenant`` asks on the widget's WebSocket; the final frame."""
    token = issue_token(secrets=[SECRET], tenant_id=tenant, subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gateway.ws}?token={token}", open_timeout=10) as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1", "text": text}))
        async with asyncio.timeout(30):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "final":
                    return dict(frame)


def _served(fake: FakeOpenAI) -> list[tuple[str, str]]:
    """(model, API key) of each chat request the fake received."""
    return [(r["model"], r["key"]) for r in fake.requests]


async def test_each_tenant_is_answered_by_its_own_provider_with_its_own_key(
    gateway: RunningGateway, fakes: dict[str, FakeOpenAI],
) -> None:
    # GIVEN tenant A pointed at provider A and tenant B at provider B, each with its own key
    tenant_a, tenant_b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    async with await _admin(gateway, tenant_a) as admin_a, \
            await _admin(gateway, tenant_b) as admin_b:
        await _own_engine(admin_a, fakes["a"], model="model-a", key="sk-tenant-a")
        await _own_engine(admin_b, fakes["b"], model="model-b", key="sk-tenant-b")
    # WHEN a visitor of each tenant asks
    final_a = await _ask(gateway, tenant_a, "Where is my parcel?")
    final_b = await _ask(gateway, tenant_b, "Can I return shoes?")
    # THEN A's visitor was answered by provider A only, with A's key
    assert final_a["status"] == "complete" and final_a["engine"] == "own", final_a
    assert "Where is my parcel?" in final_a["text"]  # the fake echoes the question
    assert _served(fakes["a"]) == [("model-a", "sk-tenant-a")]
    # AND B's visitor by provider B only, with B's key
    assert final_b["status"] == "complete" and final_b["engine"] == "own", final_b
    assert "Can I return shoes?" in final_b["text"]
    assert _served(fakes["b"]) == [("model-b", "sk-tenant-b")]
    # AND the deployment's provider received nothing
    assert fakes["deployment"].requests == []


async def test_a_tenant_without_a_chain_is_answered_by_the_deployment_chain(
    gateway: RunningGateway, fakes: dict[str, FakeOpenAI],
) -> None:
    # GIVEN a tenant that stored no engine chain
    tenant = f"plain-{uuid.uuid4().hex[:6]}"
    async with await _admin(gateway, tenant) as admin:
        view = await admin.get("/v1/admin/engines")
        assert view.json()["chain"] == []
    # WHEN its visitor asks
    final = await _ask(gateway, tenant, "Hello?")
    # THEN the deployment's engine answered, with the deployment's key; no tenant's provider
    assert final["status"] == "complete" and final["engine"] == "deployment", final
    assert _served(fakes["deployment"]) == [("deployment-model", DEPLOYMENT_KEY)]
    assert fakes["a"].requests == [] and fakes["b"].requests == []


async def test_a_changed_chain_or_secret_takes_effect_on_the_next_reply(
    gateway: RunningGateway, fakes: dict[str, FakeOpenAI],
) -> None:
    tenant = f"mover-{uuid.uuid4().hex[:6]}"
    async with await _admin(gateway, tenant) as admin:
        # GIVEN a tenant answered by provider A
        await _own_engine(admin, fakes["a"], model="model-a", key="sk-first")
        assert (await _ask(gateway, tenant, "one"))["engine"] == "own"
        assert _served(fakes["a"]) == [("model-a", "sk-first")]
        # WHEN its administrator points the chain at provider B with another key
        await _own_engine(admin, fakes["b"], model="model-b", key="sk-second")
        final = await _ask(gateway, tenant, "two")
        # THEN the very next reply comes from provider B, with the new key
        assert final["status"] == "complete" and final["engine"] == "own", final
        assert _served(fakes["b"]) == [("model-b", "sk-second")]
        assert len(fakes["a"].requests) == 1
        # WHEN the secret the chain names is deleted
        deleted = await admin.delete("/v1/admin/engines/secrets/llm-key")
        assert deleted.status_code == 204
        assert (await admin.get("/v1/admin/engines")).json()["missing_secrets"] == ["llm-key"]
        final = await _ask(gateway, tenant, "three")
        # THEN the engine without its key is skipped and the deployment's chain answers
        assert final["status"] == "complete" and final["engine"] == "deployment", final
        assert len(fakes["b"].requests) == 1
        assert _served(fakes["deployment"]) == [("deployment-model", DEPLOYMENT_KEY)]
        # WHEN the chain is emptied
        emptied = await admin.put("/v1/admin/engines", json={"chain": []})
        assert emptied.status_code == 200
        # THEN the deployment's chain answers too
        assert (await _ask(gateway, tenant, "four"))["engine"] == "deployment"


async def test_an_offline_only_chain_never_reaches_a_remote_provider(
    gateway: RunningGateway, fakes: dict[str, FakeOpenAI],
) -> None:
    # GIVEN a tenant whose chain is the offline engine alone
    tenant = f"offline-{uuid.uuid4().hex[:6]}"
    async with await _admin(gateway, tenant) as admin:
        stored = await admin.put("/v1/admin/engines",
                                 json={"chain": [{"name": "local", "kind": "offline"}]})
        assert stored.status_code == 200, stored.text
    # WHEN its visitor asks
    final = await _ask(gateway, tenant, "What is the return policy?")
    # THEN the offline engine answered and no provider received anything
    assert final["engine"] == "local", final
    assert all(fake.requests == [] for fake in fakes.values())


async def test_the_tenants_fallback_setting_decides_whether_the_chain_goes_on(
    gateway: RunningGateway, fakes: dict[str, FakeOpenAI],
) -> None:
    tenant = f"nofb-{uuid.uuid4().hex[:6]}"
    async with await _admin(gateway, tenant) as admin:
        # GIVEN a tenant on provider A that turned fallback off, and provider A failing
        await _own_engine(admin, fakes["a"], model="model-nofb", key="sk-nofb")
        settings = await admin.put("/v1/admin/settings", json={"enable_fallback": False})
        assert settings.status_code == 200, settings.text
        fakes["a"].push({"status": 500}, {"status": 500}, model="model-nofb")
        # WHEN its visitor asks
        final = await _ask(gateway, tenant, "Is anyone answering?")
        # THEN only its own engine was tried: no offline answer, the reply is incomplete
        assert final["status"] == "incomplete" and final["engine"] != "offline", final
        assert len(fakes["a"].requests) == 1
        # WHEN fallback is turned back on
        settings = await admin.put("/v1/admin/settings", json={"enable_fallback": True})
        assert settings.status_code == 200, settings.text
        final = await _ask(gateway, tenant, "Anyone now?")
        # THEN the offline engine, the tenant chain's last resort, answers
        assert final["engine"] == "offline" and final["fallback_used"] is True, final
        assert fakes["deployment"].requests == []


async def test_a_tenant_url_on_loopback_is_refused_without_the_operator_setting(
    strict_dsn: str, redis_url: str, deployment_chain: None, fakes: dict[str, FakeOpenAI],
) -> None:
    # GIVEN a deployment that does not allow private addresses (the default)
    dsn = strict_dsn
    with production_gateway(dsn=dsn, redis_url=redis_url,
                            name=f"engines-strict-{uuid.uuid4().hex[:6]}",
                            data_encryption_key=[DATA_KEY]) as gateway:
        tenant = f"strict-{uuid.uuid4().hex[:6]}"
        async with await _admin(gateway, tenant) as admin:
            # WHEN the tenant's administrator points its chain at provider A on 127.0.0.1
            body = {"chain": [{"name": "own", "base_url": fakes["a"].base_url,
                               "model": "model-a", "key_ref": "llm-key"}]}
            refused = await admin.put("/v1/admin/engines", json=body)
            # THEN the admin API refuses to store it
            assert refused.status_code == 422, refused.text
            assert "loopback" in refused.json()["detail"]
        # GIVEN such a chain stored anyway (while the operator allowed it, say)
        pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
        try:
            store = EngineStore(pool, DataKeys.from_settings(gateway.gateway.settings))
            await store.put_secret(tenant_id=tenant, name="llm-key", secret="sk-strict")
            await store.put_chain(tenant_id=tenant, chain=body["chain"])
        finally:
            await pool.close()
        # WHEN its visitor asks
        final = await _ask(gateway, tenant, "Anyone there?")
        # THEN provider A is never called: the reply falls back to the deployment's chain
        assert final["status"] == "complete" and final["engine"] == "deployment", final
        assert fakes["a"].requests == []
        assert _served(fakes["deployment"]) == [("deployment-model", DEPLOYMENT_KEY)]


async def test_a_tenant_host_resolving_to_loopback_is_refused_when_connecting(
    strict_dsn: str, redis_url: str, deployment_chain: None,
    fakes: dict[str, FakeOpenAI], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a public-looking name that resolves to 127.0.0.1, where provider A listens
    async def resolver(host: str, port: int, **_: Any) -> list[Any]:
        assert host == "llm.tenant.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(guarded.anyio, "getaddrinfo", resolver)
    with production_gateway(dsn=strict_dsn, redis_url=redis_url,
                            name=f"engines-dns-{uuid.uuid4().hex[:6]}",
                            data_encryption_key=[DATA_KEY]) as gateway:
        tenant = f"dns-{uuid.uuid4().hex[:6]}"
        async with await _admin(gateway, tenant) as admin:
            # AND a tenant chain naming it (accepted: a name is only judged when resolved)
            url = fakes["a"].base_url.replace("127.0.0.1", "llm.tenant.example")
            stored = await admin.put("/v1/admin/engines/secrets/llm-key",
                                     json={"secret": "sk-dns"})
            assert stored.status_code == 204
            chain = await admin.put("/v1/admin/engines", json={"chain": [{
                "name": "own", "base_url": url, "model": "model-a", "key_ref": "llm-key"}]})
            assert chain.status_code == 200, chain.text
        # WHEN its visitor asks
        with caplog.at_level(logging.WARNING, logger="kefu.llm.netguard"):
            final = await _ask(gateway, tenant, "Hello?")
        # THEN the guard refused the connection before anything was sent, and the tenant
        # chain's last resort, the offline engine, answers
        assert fakes["a"].requests == [], "the request reached a loopback address"
        assert any("llm.tenant.example resolves to a loopback address" in r.getMessage()
                   for r in caplog.records)
        assert final["engine"] == "offline" and final["fallback_used"] is True, final
        assert fakes["deployment"].requests == []
