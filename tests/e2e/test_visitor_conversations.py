"""A visitor's conversation starts with its first message (or a handoff, or an offline
message), not with the page view; the visitor's context and earlier conversations reach the
console; the consoles' lists and ratings are live. Through the self-hosted gateway with real
WebSockets, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
      " Chrome/131.0.0.0 Safari/537.36")
HOSTILE_TITLE = '<img src=x onerror="alert(1)"> Sale'


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:visitor-conv:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="vc") as gw:
        yield gw


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame


async def _token(http: httpx.AsyncClient, visitor_id: str | None = None) -> dict[str, Any]:
    body = {"widget_key": "demo-key", **({"visitor_id": visitor_id} if visitor_id else {})}
    got: dict[str, Any] = (await http.post("/v1/visitor-token", json=body)).json()
    return got


def _visitor(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10,
                              additional_headers={"User-Agent": UA, "CF-IPCountry": "de"})


async def _conversations(http: httpx.AsyncClient, admin: str, visitor_id: str) -> list[Any]:
    got = await http.get("/v1/conversations", params={"visitor_id": visitor_id},
                         headers={"authorization": f"Bearer {admin}"})
    assert got.status_code == 200, got.text
    listed: list[Any] = got.json()
    return listed


async def test_a_page_view_starts_nothing_the_first_message_starts_a_conversation_with_context(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        admin = (await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD,
        })).json()["token"]
        visitor = await _token(http)
        async with websockets.connect(f"{gateway.ws}?token={admin}") as a_ws, \
                _visitor(gateway, visitor["token"]) as v_ws:
            agent, guest = Client(a_ws), Client(v_ws)
            await agent.send({"action": "presence", "status": "away"})
            await agent.until("queue")
            # GIVEN a page view: the widget connects, syncs, says where it is and pings
            await guest.send({"action": "sync", "last_seq": 0})
            history = await guest.until("history")
            await guest.send({"action": "context", "url": "https://shop.example/p/7?ref=ad#top",
                              "title": HOSTILE_TITLE, "referrer": "javascript:alert(1)",
                              "language": "de-DE", "time_zone": "Europe/Berlin"})
            await guest.send({"action": "ping"})
            await guest.until("pong")
            # THEN no conversation exists
            assert history["conversation_id"] is None and history["messages"] == []
            assert await _conversations(http, admin, visitor["visitor_id"]) == []
            # WHEN the visitor writes
            await guest.send({"action": "message", "client_msg_id": "c-1", "text": "你好"})
            ack = await guest.until("ack")
            conversation_id = ack["conversation_id"]
            # THEN it exists, and the consoles hear of it at once (the bot list is live)
            changed = await agent.until("queue_changed", event="created")
            assert changed["conversation_id"] == conversation_id
            await agent.send({"action": "queue"})
            lists = await agent.until("queue")
            assert conversation_id in [c["id"] for c in lists["bot"]]
            await guest.until("final")
            # WHEN the agent opens it
            await agent.send({"action": "open", "conversation_id": conversation_id})
            opened = await agent.until("conversation")
            # THEN the visitor's context is there: cleaned addresses, the title as sent (the
            # console shows it as text), the browser and country from the handshake
            assert opened["visitor_context"] == {
                "url": "https://shop.example/p/7?ref=ad", "title": HOSTILE_TITLE,
                "referrer": "", "language": "de-DE", "time_zone": "Europe/Berlin",
                "browser": "Chrome 131 · macOS", "country": "DE"}
            assert opened["earlier"] == []
            # WHEN the visitor ends the chat and rates it
            await guest.send({"action": "end"})
            await guest.until("state", state="closed")
            await guest.send({"action": "csat", "score": 4, "comment": "ok"})
            await guest.until("csat_saved")
            # THEN the agent watching it sees the rating live
            rating = await agent.until("csat", conversation_id=conversation_id)
            assert (rating["score"], rating["comment"]) == (4, "ok")
        # WHEN the same visitor comes back another day and asks for a human straight away
        again = await _token(http, visitor["visitor_id"])
        async with websockets.connect(f"{gateway.ws}?token={admin}") as a_ws, \
                _visitor(gateway, again["token"]) as v_ws:
            agent, guest = Client(a_ws), Client(v_ws)
            await guest.send({"action": "sync", "last_seq": 0})
            assert (await guest.until("history"))["conversation_id"] is None
            await guest.send({"action": "handoff"})
            queued = await guest.until("state", state="queued")
            # THEN the handoff started a new conversation, and it lists the earlier one
            second = queued["conversation_id"]
            assert second != conversation_id
            await agent.send({"action": "open", "conversation_id": second})
            opened = await agent.until("conversation")
            assert [c["id"] for c in opened["earlier"]] == [conversation_id]
            assert opened["earlier"][0]["status"] == "closed"
        listed = await _conversations(http, admin, visitor["visitor_id"])
        assert sorted(c["id"] for c in listed) == sorted([conversation_id, second])


async def test_a_context_frame_is_limited(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        visitor = await _token(http)
        async with _visitor(gateway, visitor["token"]) as v_ws:
            guest = Client(v_ws)
            # WHEN a context frame carries a title over its limit
            await guest.send({"action": "context", "title": "x" * 301})
            # THEN it is refused, naming the field, and nothing else happens
            error = await guest.until("error")
            assert error["code"] == "invalid_frame" and "title" in error["message"]
