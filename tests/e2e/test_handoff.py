"""Handoff end to end through the self-hosted gateway: a visitor and agents on real WebSockets,
the admin API over HTTP, real Redis and PostgreSQL, the offline engine answering.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import websockets

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, run_gateway


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:handoff:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with run_gateway(settings, replica_id="handoff") as running:
        yield running
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                self.seen.append(frame)
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame


async def _login(http: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await http.post("/v1/agent/login", json={"tenant": "demo", "email": email,
                                                         "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _agent(http: httpx.AsyncClient, admin: str, name: str) -> dict[str, Any]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@demo.kefu"
    created = await http.post("/v1/admin/agents", headers={"authorization": f"Bearer {admin}"},
                              json={"email": email, "name": name, "password": "p" * 12,
                                    "capacity": 2})
    assert created.status_code == 201, created.text
    return await _login(http, email, "p" * 12)


def _ws(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


async def test_visitor_asks_for_a_human_agent_replies_transfers_and_hands_back(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        admin = (await _login(http, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD))["token"]
        alice = await _agent(http, admin, "Alice")
        bob = await _agent(http, admin, "Bob")
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})).json()
        # GIVEN Alice online in the console and a visitor chatting with the bot
        async with _ws(gateway, alice["token"]) as a_ws, _ws(gateway, visitor["token"]) as v_ws:
            agent, guest = Client(a_ws), Client(v_ws)
            await agent.send({"action": "presence", "status": "online"})
            await agent.until("queue")
            await guest.send({"action": "sync", "last_seq": 0})
            await guest.until("history")
            await guest.send({"action": "message", "client_msg_id": "c-1", "text": "你好"})
            conversation_id = (await guest.until("ack"))["conversation_id"]  # started by it
            await guest.until("final")
            # WHEN the visitor presses "talk to a human"
            await guest.send({"action": "handoff"})
            # THEN the conversation is assigned to the online agent and the visitor is told
            joined = await guest.until("state", state="agent_joined")
            assert joined["agent_name"] == "Alice"
            assigned = await agent.until("assigned")
            assert assigned["conversation_id"] == conversation_id
            # WHEN Alice opens it and replies
            await agent.send({"action": "open", "conversation_id": conversation_id})
            opened = await agent.until("conversation")
            assert [m["role"] for m in opened["messages"]][:2] == ["visitor", "assistant"]
            assert opened["customer"]["unavailable"]["business"] == "anonymous_visitor"
            await agent.send({"action": "reply", "conversation_id": conversation_id,
                              "client_msg_id": "a-1", "text": "您好，我是 Alice"})
            ack = await agent.until("ack")
            message = await guest.until("message", role="agent")
            # THEN the visitor sees the agent's message with its sequence number
            assert message["text"] == "您好，我是 Alice" and message["seq"] == ack["seq"]
            # AND while a human owns it the bot stays silent; the agent sees the visitor
            await guest.send({"action": "message", "client_msg_id": "c-2", "text": "订单问题"})
            await guest.until("ack")
            assert (await agent.until("message", role="visitor"))["text"] == "订单问题"
            # AND a suggested reply and a private note reach the agent only
            await agent.send({"action": "suggest", "conversation_id": conversation_id})
            suggestion = await agent.until("suggestion")
            assert suggestion["conversation_id"] == conversation_id
            await agent.send({"action": "note", "conversation_id": conversation_id,
                              "text": "VIP, call back at 13812345678"})
            note = await agent.until("note")
            assert note["text"].startswith("VIP")
            # WHEN Alice transfers it to Bob (who then comes online and hands it back)
            async with _ws(gateway, bob["token"]) as b_ws:
                other = Client(b_ws)
                await other.send({"action": "presence", "status": "online"})
                await other.until("queue")
                await agent.send({"action": "transfer", "conversation_id": conversation_id,
                                  "agent_id": bob["agent"]["id"]})
                assert (await guest.until("state", state="agent_joined"))["agent_name"] == "Bob"
                await other.until("assigned", conversation_id=conversation_id)
                await agent.until("unassigned", conversation_id=conversation_id)
                # AND Alice can no longer reply
                await agent.send({"action": "reply", "conversation_id": conversation_id,
                                  "client_msg_id": "a-2", "text": "still me"})
                assert (await agent.until("error"))["code"] == "not_yours"
                await other.send({"action": "release", "conversation_id": conversation_id})
                await guest.until("state", state="bot")
            # THEN the bot answers again
            await guest.send({"action": "message", "client_msg_id": "c-3", "text": "谢谢"})
            assert (await guest.until("final"))["status"] == "complete"
            assert not [f for f in guest.seen if f.get("type") in ("note", "suggestion")]
            # WHEN the visitor ends and rates the conversation
            await guest.send({"action": "end"})
            await guest.until("state", state="closed")
            await guest.send({"action": "csat", "score": 4, "comment": "快"})
            assert (await guest.until("csat_saved"))["score"] == 4
        headers = {"authorization": f"Bearer {admin}"}
        # THEN the transcript, CSAT figures and audit log show it all, PII redacted
        transcript = (await http.get(f"/v1/conversations/{conversation_id}",
                                     headers=headers)).json()
        events = [m.get("event") for m in transcript["messages"] if m["role"] == "system"]
        assert events == ["queued", "agent_joined", "agent_joined", "returned_to_bot", "closed"]
        assert transcript["csat"]["score"] == 4 and transcript["notes"][0]["agent_name"] == "Alice"
        figures = (await http.get("/v1/admin/csat", headers=headers)).json()
        assert figures["count"] >= 1 and figures["distribution"]["4"] >= 1
        audit = (await http.get("/v1/admin/audit", headers=headers,
                                params={"target_id": conversation_id})).json()
        actions = {e["action"] for e in audit}
        assert {"conversation.handoff_requested", "conversation.assigned",
                "conversation.transferred", "conversation.returned_to_bot",
                "conversation.closed", "conversation.rated",
                "conversation.note_added"} <= actions
        note_entry = next(e for e in audit if e["action"] == "conversation.note_added")
        assert "13812345678" not in json.dumps(note_entry)


async def test_keyword_with_no_agent_online_queues_and_takes_an_offline_message(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})).json()
        async with _ws(gateway, visitor["token"]) as v_ws:
            guest = Client(v_ws)
            await guest.send({"action": "sync", "last_seq": 0})
            await guest.until("history")
            # WHEN the visitor writes a handoff keyword while nobody is online
            await guest.send({"action": "message", "client_msg_id": "k-1", "text": "转人工"})
            queued = await guest.until("state", state="queued")
            # THEN it is queued (no bot reply), told nobody is online, and may leave a message
            assert queued["agents_online"] is False and queued["position"] >= 1
            await guest.send({"action": "offline_message", "name": "王", "contact": "w@x.cn",
                              "text": "请回电"})
            saved = await guest.until("offline_saved")
            assert not [f for f in guest.seen if f.get("type") == "final"]
        admin = (await _login(http, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD))["token"]
        listed = (await http.get("/v1/offline-messages",
                                 headers={"authorization": f"Bearer {admin}"})).json()
        assert saved["id"] in [m["id"] for m in listed]


async def test_visitors_cannot_act_as_agents_and_agents_stay_in_their_tenant(
    gateway: RunningGateway,
) -> None:
    from kefu_core.infra.db import open_pool
    from tests.support.staff import make_staff, token_for

    async with httpx.AsyncClient(base_url=gateway.http) as http:
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})).json()
    pool = await open_pool(gateway.gateway.settings.database_url or "", max_size=1)
    try:
        outsider = token_for(await make_staff(pool, tenant_id="other-co",
                                              name="Outsider"))
    finally:
        await pool.close()
    async with _ws(gateway, visitor["token"]) as v_ws, _ws(gateway, outsider) as o_ws:
        guest, other = Client(v_ws), Client(o_ws)
        await guest.send({"action": "message", "client_msg_id": "c-0", "text": "hello"})
        conversation_id = (await guest.until("ack"))["conversation_id"]
        await guest.until("final")
        # WHEN a visitor sends agent actions on their own conversation
        for action in ("take", "close", "release", "suggest"):
            await guest.send({"action": action, "conversation_id": conversation_id})
            # THEN each is refused
            assert (await guest.until("error"))["code"] == "unsupported_for_role"
        # WHEN an agent of another tenant names this conversation
        for frame in ({"action": "open"}, {"action": "take"},
                      {"action": "note", "text": "x"},
                      {"action": "reply", "client_msg_id": "o-1", "text": "hi"}):
            await other.send({**frame, "conversation_id": conversation_id})
            # THEN it does not exist for them
            assert (await other.until("error"))["code"] == "not_found"
        await guest.send({"action": "sync", "last_seq": 0})
        history = await guest.until("history")
        assert [m["role"] for m in history["messages"]] == ["visitor", "assistant"]
        assert history["owner"] == "bot"
