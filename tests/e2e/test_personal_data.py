"""A customer's access and deletion requests end to end: a signed-in customer chats through the
self-hosted gateway (a remote engine answering, the CRM consulted, facts remembered), rates a
conversation, leaves an offline message, an agent writes a note; the tenant's administrator
exports everything over the admin API, then erases it; then every text and JSON column of
every table in PostgreSQL and every key and value under the deployment's Redis prefix are
searched for what the customer wrote or was said about them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import redis
import uvicorn
import websockets

from kefu_core.answers.memory import embedding_dim
from kefu_core.infra.db import open_pool
from kefu_core.infra.schema import apply_schema
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from kefu_core.security.tokens import issue_token
from kefu_memory.sample_crm import create_app as create_crm_app
from tests.support.core import SECRET
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway, free_port, gateway_for_test

CUSTOMER = "c-1001"  # known to the sample CRM
# What the customer wrote, and what others wrote about them: none of it may survive.
ADDRESS = "杭州市西湖区翠苑路77号紫藤楼"
FIRST = f"收货地址是{ADDRESS}，订单SO20241120001到哪了？"
SECOND = "紫藤第二次咨询：发票抬头写紫藤科技"
COMMENT = "紫藤评价：回复很快"
NOTE = "紫藤备注：老客户，优先处理"
OFFLINE = {"name": "紫藤留言人", "contact": "微信 ziteng_2026", "text": "紫藤留言：请明天回电"}
NAME = "紫藤王"  # the name the company's backend signed into the customer's identity
VALUES = [ADDRESS, "发票抬头写紫藤科技", "回复很快", "老客户，优先处理", "紫藤留言人",
          "ziteng_2026", "请明天回电", NAME]


@pytest.fixture(scope="module")
def crm_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_crm_app(token="crm-token"), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def gateway(make_database, redis_url, crm_url) -> Iterator[tuple[RunningGateway, str]]:  # type: ignore[no-untyped-def]
    dsn = make_database()
    with FakeOpenAI(first_token_ms=5, tokens_per_s=0) as fake:
        engines = [{"name": "primary", "provider": "fakeai", "base_url": fake.base_url,
                    "model": "fake-chat", "api_keys": ["sk-primary"]}]
        mp = pytest.MonkeyPatch()
        mp.setenv("ENGINES", json.dumps(engines))  # read when the router is built
        with gateway_for_test(dsn=dsn, redis_url=redis_url, name="personal",
                              crm_url=crm_url, crm_token="crm-token", recall_deadline_ms=5000,
                              outbound_allowed_hosts=["127.0.0.1"]) as running:
            yield running, dsn
        mp.undo()


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(15):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame


def _ws(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


def _customer_token() -> str:
    return issue_token(secrets=[SECRET], tenant_id="demo", subject=f"cust:{CUSTOMER}",
                       role="visitor", ttl_s=600, name=NAME)


async def _customer_history(gw: RunningGateway, admin: str) -> str:
    """A conversation with a rating and an agent's note, and an offline message; its id."""
    token = _customer_token()
    async with _ws(gw, token) as v_ws, _ws(gw, admin) as a_ws:
        guest, staff = Client(v_ws), Client(a_ws)
        await guest.send({"action": "message", "client_msg_id": "c-1", "text": FIRST})
        first = await guest.until("final")
        assert first["status"] == "complete" and first["engine"] == "primary"
        conversation_id = str(first["conversation_id"])
        await staff.send({"action": "note", "conversation_id": conversation_id, "text": NOTE})
        await staff.until("note")
        await guest.send({"action": "end"})
        await guest.until("state", state="closed")
        await guest.send({"action": "csat", "score": 5, "comment": COMMENT})
        await guest.until("csat_saved")
        await guest.send({"action": "offline_message", **OFFLINE})
        await guest.until("offline_saved")
    return conversation_id


async def _still_chatting(gw: RunningGateway) -> Any:
    """The customer back in a second conversation, still connected: the open socket."""
    ws = await _ws(gw, _customer_token())
    guest = Client(ws)
    await guest.send({"action": "message", "client_msg_id": "c-2", "text": SECOND})
    assert (await guest.until("final"))["status"] == "complete"
    return ws


def _postgres_hits(dsn: str, value: str) -> list[str]:
    """Every table.column (text, character, JSON or array, any schema but the catalogs) that
    holds ``value``."""
    found = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns"
            " JOIN information_schema.tables USING (table_schema, table_name)"
            " WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            " AND (data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')"
            " OR data_type = 'ARRAY')").fetchall()
        assert len(columns) > 30  # the whole schema, not an empty database
        for schema, table, column in columns:
            row = conn.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text LIKE %s',
                (f"%{value}%",)).fetchone()
            if row and row[0]:
                found.append(f"{table}.{column}")
    return found


def _redis_dump(redis_url: str, prefix: str) -> dict[str, str]:
    """Every key under the prefix with its value as text, whatever its type."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    dump = {}
    for key in client.scan_iter(match=prefix + "*", count=1000):
        dump[key] = json.dumps(_value(client, key), ensure_ascii=False)
    client.close()
    return dump


def _value(client: redis.Redis, key: str) -> Any:
    kind = client.type(key)
    if kind == "string":
        return client.get(key)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return sorted(client.smembers(key))  # type: ignore[arg-type]
    if kind == "zset":
        return client.zrange(key, 0, -1)
    if kind == "hash":
        return client.hgetall(key)
    return kind


def _redis_hits(dump: dict[str, str], value: str) -> list[str]:
    return [key for key, text in dump.items() if value in key or value in text]


async def test_export_then_erasure_leaves_nothing_of_the_customer(
    gateway: tuple[RunningGateway, str], redis_url: str,
) -> None:
    gw, dsn = gateway
    prefix = gw.gateway.settings.redis_prefix
    async with httpx.AsyncClient(base_url=gw.http) as http:
        login = await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD})
        admin = login.json()["token"]
        headers = {"authorization": f"Bearer {admin}"}
        # GIVEN a signed-in customer with a history in every store, connected right now
        conversation_id = await _customer_history(gw, admin)
        live = await _still_chatting(gw)
        memory = gw.gateway.deps.memory if gw.gateway.deps else None
        assert memory is not None and memory.crm is not None
        assert any(CUSTOMER in path for path in memory.crm._cache)  # the CRM was consulted
        dump = _redis_dump(redis_url, prefix)
        assert _redis_hits(dump, ADDRESS)  # short-term memory and the cached reply
        assert _postgres_hits(dsn, ADDRESS)

        # WHEN the administrator exports the customer's data
        exported = await http.post("/v1/admin/personal-data/export", headers=headers,
                                   json={"customer_id": CUSTOMER})
        # THEN it holds both conversations, the note, the rating, the offline message, the
        # remembered address with its source, and the audit entries naming them
        assert exported.status_code == 200, exported.text
        assert exported.headers["content-disposition"].startswith("attachment")
        assert exported.headers["cache-control"] == "no-store"
        data = exported.json()
        assert data["visitor_id"] == f"cust:{CUSTOMER}" and data["customer_id"] == CUSTOMER
        summary = data["summary"]
        assert summary["conversations"] == 2 and summary["ratings"] == 1
        assert summary["notes"] == 1 and summary["offline_messages"] == 1
        texts = [m["text"] for c in data["conversations"] for m in c["messages"]]
        assert FIRST in texts and SECOND in texts
        first = next(c for c in data["conversations"] if c["id"] == conversation_id)
        assert first["rating"]["comment"] == COMMENT and first["notes"][0]["text"] == NOTE
        assert data["offline_messages"][0]["contact"] == OFFLINE["contact"]
        address = next(f for f in data["facts"] if f["kind"] == "address")
        assert ADDRESS in address["value"]
        assert address["source"]["conversation_id"] == conversation_id
        actions = {e["action"] for e in data["audit"]}
        assert {"conversation.rated", "offline_message.left",
                "conversation.note_added"} <= actions
        assert "2 conversations" in summary["text_en"] and "2 个会话" in summary["text_zh"]

        # WHEN the administrator erases the customer, confirming the id
        refused = await http.post("/v1/admin/personal-data/erase", headers=headers,
                                  json={"customer_id": CUSTOMER, "confirm": "c-9999"})
        assert refused.status_code == 422
        erased = await http.post("/v1/admin/personal-data/erase", headers=headers,
                                 json={"customer_id": CUSTOMER, "confirm": CUSTOMER})
        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert report["conversations"] == 2 and report["offline_messages"] == 1
        assert report["facts"] >= 1 and report["short_term"] == 2
        assert report["cached_replies"] >= 1 and report["crm_cache"] >= 1
        # AND the customer's live connection was closed, its record gone
        assert report["connections"] == 1
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(15):
                while True:
                    await live.recv()

        # THEN no table and no Redis key or value holds anything the customer wrote or was
        # said about them
        for value in VALUES:
            assert _postgres_hits(dsn, value) == [], value
        dump = _redis_dump(redis_url, prefix)
        for value in [*VALUES, CUSTOMER, conversation_id]:
            assert _redis_hits(dump, value) == [], value
        # AND the customer id is left only where the audit log says who did what to whom
        assert set(_postgres_hits(dsn, CUSTOMER)) <= {"audit_log.actor_id",
                                                      "audit_log.target_id"}
        assert not any(CUSTOMER in path for path in memory.crm._cache)
        # AND the audit log says who erased which customer, and when, without content
        log = (await http.get("/v1/admin/audit", headers=headers,
                              params={"target_id": f"cust:{CUSTOMER}"})).json()
        assert [e["action"] for e in log][:3] == ["customer.erased",
                                                   "customer.erasure_requested",
                                                   "customer.exported"]
        assert log[0]["actor_type"] == "admin" and log[0]["detail"]["conversations"] == 2

        # WHEN the same request is sent again (a retry)
        again = await http.post("/v1/admin/personal-data/erase", headers=headers,
                                json={"customer_id": CUSTOMER, "confirm": CUSTOMER})
        # THEN it succeeds with nothing left to erase, and an export finds nothing
        assert again.status_code == 200 and again.json()["conversations"] == 0
        after = (await http.post("/v1/admin/personal-data/export", headers=headers,
                                 json={"customer_id": CUSTOMER})).json()
        assert after["conversations"] == [] and after["facts"] == []
        assert after["offline_messages"] == []


def test_a_gateway_replica_runs_retention_on_its_own(make_database, redis_url) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a tenant keeping transcripts 30 days, with a conversation idle for 45
    dsn = make_database()

    async def migrate() -> None:
        pool = await open_pool(dsn, min_size=1, max_size=2, timeout_s=10)
        try:
            await apply_schema(pool, embedding_dim=embedding_dim(Settings(kefu_env="test")))
        finally:
            await pool.close()

    asyncio.run(migrate())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('keep30', 'Keep 30 days')")
        conn.execute("INSERT INTO tenant_settings (tenant_id, settings) VALUES ('keep30',"
                     " '{\"retention\": {\"transcripts_days\": 30}}')")
        conn.execute("INSERT INTO conversations (id, tenant_id, visitor_id, updated_at) VALUES"
                     " (gen_random_uuid(), 'keep30', 'v-old', now() - interval '45 days')")
    # WHEN a gateway replica runs with a short retention interval
    with gateway_for_test(dsn=dsn, redis_url=redis_url, name="retention",
                          retention_interval_s=1):
        # THEN, without anybody asking, the old conversation goes and the run is audited
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM conversations").fetchone()
            if row and row[0] == 0:
                break
            time.sleep(0.2)
        with psycopg.connect(dsn, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM conversations").fetchone()
            entry = conn.execute("SELECT detail FROM audit_log WHERE tenant_id = 'keep30'"
                                 " AND action = 'retention.applied'").fetchone()
    assert left == (0,)
    assert entry is not None and entry[0]["conversations"] == 1


async def test_retention_settings_through_the_admin_api(
    gateway: tuple[RunningGateway, str],
) -> None:
    gw, _ = gateway
    async with httpx.AsyncClient(base_url=gw.http) as http:
        login = await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD})
        headers = {"authorization": f"Bearer {login.json()['token']}"}
        # GIVEN the defaults
        got = (await http.get("/v1/admin/retention", headers=headers)).json()
        assert got == {"transcripts_days": 365, "facts_days": 365, "offline_messages_days": 90}
        # WHEN an administrator asks for a period out of range THEN it is refused
        for days in (0, 3651):
            bad = await http.put("/v1/admin/retention", headers=headers, json={
                "transcripts_days": days, "facts_days": 30, "offline_messages_days": 30})
            assert bad.status_code == 422
        # WHEN valid periods are set THEN they are kept, audited, and part of the settings
        wanted = {"transcripts_days": 180, "facts_days": 90, "offline_messages_days": 30}
        put = await http.put("/v1/admin/retention", headers=headers, json=wanted)
        assert put.status_code == 200 and put.json() == wanted
        settings = (await http.get("/v1/admin/settings", headers=headers)).json()
        assert settings["retention"] == wanted
        # AND a client that PUTs the settings without knowing them does not reset them
        del settings["retention"]
        settings["greeting_en"] = "Hello again"
        assert (await http.put("/v1/admin/settings", headers=headers,
                               json=settings)).status_code == 200
        assert (await http.get("/v1/admin/retention", headers=headers)).json() == wanted
        log = (await http.get("/v1/admin/audit", headers=headers,
                              params={"action": "retention.updated"})).json()
        assert log[0]["detail"] == wanted
