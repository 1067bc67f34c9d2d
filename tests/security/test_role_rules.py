"""Role rules of the console (docs/console.md): a plain agent acts only on conversations
assigned to them (after taking one from the bot or the queue); an admin may act on any
conversation of the tenant.

Production configuration, a real gateway, real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.infra.db import open_pool
from kefu_core.product.tenants.agents import Agent
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway
from tests.support.production import production_settings
from tests.support.staff import make_staff

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:roles:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(pg_dsn=make_database(), redis_url=redis_url,
                                   redis_prefix=prefix, widget_keys=["acme-key:acme"])
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


class Socket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, *kinds: str, timeout: float = 15) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if frame.get("type") in kinds:
                    return frame


async def _staff(gw: RunningGateway, role: str) -> Agent:
    pool = await open_pool(gw.gateway.settings.database_url or "", max_size=1)
    try:
        return await make_staff(pool, tenant_id="acme", role=role,  # type: ignore[arg-type]
                                password=PASSWORD)
    finally:
        await pool.close()


async def _token(http: httpx.AsyncClient, agent: Agent) -> str:
    response = await http.post("/v1/agent/login", json={
        "tenant": "acme", "email": agent.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _ws(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


async def _status(http: httpx.AsyncClient, token: str, conversation_id: str) -> str:
    body = (await http.get(f"/v1/conversations/{conversation_id}",
                           headers={"authorization": f"Bearer {token}"})).json()
    status: str = body["conversation"]["status"]
    return status


async def test_a_plain_agent_acts_only_on_conversations_assigned_to_them(
    gateway: RunningGateway,
) -> None:
    alice, bob = await _staff(gateway, "agent"), await _staff(gateway, "agent")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        alice_token, bob_token = await _token(http, alice), await _token(http, bob)
        visitors = [(await http.post("/v1/visitor-token", json={"widget_key": "acme-key"})).json()
                    for _ in range(2)]
        async with _ws(gateway, visitors[0]["token"]) as v1, \
                _ws(gateway, visitors[1]["token"]) as v2, \
                _ws(gateway, alice_token) as a_raw:
            guests, agent = [Socket(v1), Socket(v2)], Socket(a_raw)
            ids = []
            for guest in guests:  # a visitor's first message starts the conversation
                await guest.send({"action": "message", "client_msg_id": "c-0", "text": "hello"})
                ids.append((await guest.until("ack"))["conversation_id"])
                await guest.until("final")
            with_bot, queued = ids
            # GIVEN one conversation with the bot and one waiting in the queue (nobody online)
            await guests[1].send({"action": "handoff"})
            while (await guests[1].until("state"))["state"] != "queued":
                pass
            # WHEN a plain agent tries to close, hand back, transfer, annotate, draft or type
            # on conversations that are not assigned to them
            refused = []
            for conversation_id in (with_bot, queued):
                for frame in ({"action": "close"}, {"action": "release"},
                              {"action": "transfer", "agent_id": bob.id},
                              {"action": "note", "text": "x"}, {"action": "suggest"},
                              {"action": "typing"}):
                    await agent.send({**frame, "conversation_id": conversation_id})
                    error = await agent.until("error", "note", "suggestion")
                    refused.append((frame["action"], error.get("code")))
            # THEN each is refused and both conversations stay open
            assert {code for _, code in refused} == {"not_yours"}, refused
            assert await _status(http, bob_token, with_bot) == "open"
            assert await _status(http, bob_token, queued) == "open"
            # WHEN the agent takes the queued conversation, it is theirs to close
            await agent.send({"action": "take", "conversation_id": queued})
            await agent.until("conversation")
            await agent.send({"action": "close", "conversation_id": queued})
            while (await guests[1].until("state"))["state"] != "closed":
                pass
            assert await _status(http, bob_token, queued) == "closed"


async def test_an_admin_may_close_any_conversation_of_the_tenant(
    gateway: RunningGateway,
) -> None:
    boss = await _staff(gateway, "admin")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        token = await _token(http, boss)
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": "acme-key"})).json()
        async with _ws(gateway, visitor["token"]) as v_raw, _ws(gateway, token) as b_raw:
            guest, admin = Socket(v_raw), Socket(b_raw)
            await guest.send({"action": "message", "client_msg_id": "c-0", "text": "hello"})
            conversation_id = (await guest.until("ack"))["conversation_id"]
            await guest.until("final")
            # WHEN an admin closes a conversation the bot holds
            await admin.send({"action": "close", "conversation_id": conversation_id})
            # THEN it is closed and the visitor is told
            await admin.until("queue")
            while (await guest.until("state"))["state"] != "closed":
                pass
            assert await _status(http, token, conversation_id) == "closed"
