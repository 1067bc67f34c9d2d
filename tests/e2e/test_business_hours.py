"""Business hours end to end on a production gateway (``KEFU_ENV=production``): an admin sets
the tenant's hours through the admin API (validated, audited, admins only); outside them the
widget learns it is closed and when it opens, the assistant still answers, a handoff is queued
for the next opening with nobody assigned (an agent in early may take it), and once the hours
open the first console heartbeat assigns the queue. Real WebSockets, Redis and PostgreSQL.

"Now" is never guessed: the closed schedule opens only on a date two days ahead, the open one
is open all day every day, so the outcome does not depend on the time the test runs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets

from kefu_core.infra.db import open_pool
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import admin_token, production_gateway
from tests.support.staff import make_staff, token_for

TENANT = "hours-shop"
KEY = "hours-key"
ZONE = "Asia/Shanghai"
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str) -> Iterator[RunningGateway]:
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"hours-{uuid.uuid4().hex[:6]}",
                            widget_keys=[f"{KEY}:{TENANT}"]) as running:
        yield running


def closed_until_day_after_tomorrow() -> tuple[dict[str, Any], str]:
    """Hours with no weekly interval and one special opening two days ahead (09:00-18:00 in
    Shanghai), and that opening as ISO 8601 UTC."""
    day = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=2)
    opens = datetime(day.year, day.month, day.day, 9, 0, tzinfo=ZoneInfo(ZONE))
    hours = {"enabled": True, "time_zone": ZONE, "weekly": {d: [] for d in WEEK},
             "dates": [{"date": day.isoformat(),
                        "intervals": [{"start": "09:00", "end": "18:00"}]}]}
    return hours, opens.astimezone(UTC).isoformat()


OPEN_ALL_DAY = {"enabled": True, "time_zone": ZONE,
                "weekly": {d: [{"start": "00:00", "end": "24:00"}] for d in WEEK}, "dates": []}


class Peer:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, timeout: float = 15, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if frame.get("type") == kind and all(frame.get(k) == v
                                                     for k, v in match.items()):
                    return frame


@asynccontextmanager
async def _peer(gateway: RunningGateway, token: str) -> AsyncIterator[Peer]:
    async with websockets.connect(f"{gateway.ws}?token={token}", open_timeout=10) as ws:
        yield Peer(ws)


@asynccontextmanager
async def _admin(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    token = await admin_token(gateway, tenant=TENANT)
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30,
                                 headers={"authorization": f"Bearer {token}"}) as client:
        yield client


async def _agent_token(gateway: RunningGateway, name: str) -> str:
    dsn = gateway.gateway.settings.database_url
    assert dsn
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        return token_for(await make_staff(pool, tenant_id=TENANT, name=name))
    finally:
        await pool.close()


async def _set_hours(admin: httpx.AsyncClient, hours: dict[str, Any]) -> None:
    settings = (await admin.get("/v1/admin/settings")).json()
    saved = await admin.put("/v1/admin/settings", json={**settings, "business_hours": hours})
    assert saved.status_code == 200, saved.text


async def _visitor(gateway: RunningGateway) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        got = await http.post("/v1/visitor-token", json={"widget_key": KEY})
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


async def test_hours_are_validated_audited_and_for_admins_only(gateway: RunningGateway) -> None:
    agent = await _agent_token(gateway, "Ann")
    async with _admin(gateway) as admin:
        # GIVEN a tenant that never set hours: open around the clock
        start = (await admin.get("/v1/admin/settings")).json()
        assert start["business_hours"]["enabled"] is False
        # WHEN an agent (not an admin) tries to set them THEN it is refused
        async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
            refused = await http.put("/v1/admin/settings", json={**start, "business_hours": {}},
                                     headers={"authorization": f"Bearer {agent}"})
        assert refused.status_code == 403
        # WHEN an admin sends an unknown zone, a malformed time or too many intervals
        bad_zone = await admin.put("/v1/admin/settings", json={
            **start, "business_hours": {"enabled": True, "time_zone": "Mars/Olympus"}})
        bad_time = await admin.put("/v1/admin/settings", json={
            **start, "business_hours": {"weekly": {"mon": [{"start": "9", "end": "18:00"}]}}})
        too_many = await admin.put("/v1/admin/settings", json={
            **start, "business_hours": {"weekly": {"mon": [{"start": "09:00",
                                                             "end": "10:00"}] * 7}}})
        # THEN each is a 422 that names the field and says what is wrong
        assert bad_zone.status_code == bad_time.status_code == too_many.status_code == 422
        zone_error = bad_zone.json()["detail"][0]
        assert zone_error["loc"][-1] == "time_zone" and "IANA" in zone_error["msg"]
        assert "HH:MM" in json.dumps(bad_time.json())
        assert "at most 6" in json.dumps(too_many.json())
        # WHEN the admin sets valid hours
        hours, _ = closed_until_day_after_tomorrow()
        await _set_hours(admin, hours)
        # THEN they are stored, and a body without them (an older client) keeps them
        kept = await admin.put("/v1/admin/settings", json={"greeting_en": "Hello there"})
        assert kept.status_code == 200
        assert kept.json()["business_hours"]["dates"] == hours["dates"]
        # AND the audit log says the business hours changed, without their content
        audit = (await admin.get("/v1/admin/audit", params={"action": "settings.updated"})
                 ).json()
        entries = audit["entries"] if isinstance(audit, dict) else audit
        assert any(e["detail"].get("fields") == ["business_hours"] for e in entries)
        assert not any("09:00" in json.dumps(e["detail"]) for e in entries)


async def test_closed_tenant_queues_a_handoff_for_the_next_opening(
    gateway: RunningGateway,
) -> None:
    hours, opens_at = closed_until_day_after_tomorrow()
    async with _admin(gateway) as admin:
        await _set_hours(admin, hours)
    agent_token = await _agent_token(gateway, "Early Bird")
    # GIVEN the tenant closed until the day after tomorrow and an agent online in the console
    async with _peer(gateway, agent_token) as agent:
        await agent.send({"action": "presence", "status": "online"})
        await agent.until("queue")
        # WHEN a visitor opens the widget
        visitor = await _visitor(gateway)
        # THEN the widget learns that agents are away and when they are back
        assert visitor["widget"]["hours"] == {"open": False, "next_opening": opens_at,
                                              "time_zone": ZONE}
        async with _peer(gateway, visitor["token"]) as guest:
            await guest.send({"action": "sync", "last_seq": 0})
            await guest.until("history")
            # WHEN the visitor asks a question THEN the assistant still answers
            await guest.send({"action": "message", "client_msg_id": "c-1",
                              "text": "How long does shipping take?"})
            conversation_id = (await guest.until("ack"))["conversation_id"]
            final = await guest.until("final")
            assert final["status"] == "complete" and final["text"]
            # WHEN the visitor asks for a human
            await guest.send({"action": "handoff"})
            # THEN the request is queued and the visitor is told when agents are back
            queued = await guest.until("state", state="queued")
            assert queued["opens_at"] == opens_at and queued["time_zone"] == ZONE
            assert queued["position"] == 1
            # AND a message written meanwhile is stored, not answered by the bot
            await guest.send({"action": "message", "client_msg_id": "c-2",
                              "text": "I need to change my address"})
            kept = await guest.until("ack")
            # AND nobody is assigned although an agent is online: the queue waits for the
            # opening, and the console shows until when
            await agent.send({"action": "ping"})
            await agent.until("pong")
            await agent.send({"action": "queue"})
            lists = await agent.until("queue")
            waiting = {c["id"]: c for c in lists["waiting"]}
            assert waiting[conversation_id]["queued_until"] == opens_at
            assert lists["hours"] == {"open": False, "next_opening": opens_at,
                                      "time_zone": ZONE}
            assert not lists["mine"]
            # WHEN the agent, in early, opens and takes it
            await agent.send({"action": "open", "conversation_id": conversation_id})
            opened = await agent.until("conversation")
            texts = [m.get("text") for m in opened["messages"]]
            assert "I need to change my address" in texts
            assert any(m["role"] == "system" and m.get("opens_at") == opens_at
                       for m in opened["messages"])
            await agent.send({"action": "take", "conversation_id": conversation_id})
            # THEN the visitor is connected to the agent, all their messages kept
            joined = await guest.until("state", state="agent_joined")
            assert joined["agent_name"] == "Early Bird"
            assert kept["seq"] > final["seq"]
            await guest.send({"action": "end"})
            await guest.until("state", state="closed")


async def test_the_queue_is_assigned_once_the_hours_open(gateway: RunningGateway) -> None:
    hours, opens_at = closed_until_day_after_tomorrow()
    async with _admin(gateway) as admin:
        await _set_hours(admin, hours)
        agent_token = await _agent_token(gateway, "Opener")
        # GIVEN a visitor queued while the tenant is closed, and an agent online
        async with _peer(gateway, agent_token) as agent:
            await agent.send({"action": "presence", "status": "online"})
            await agent.until("queue")
            visitor = await _visitor(gateway)
            async with _peer(gateway, visitor["token"]) as guest:
                await guest.send({"action": "handoff"})
                queued = await guest.until("state", state="queued")
                assert queued["opens_at"] == opens_at
                # WHEN the hours open (here: the admin sets hours open all day)
                await _set_hours(admin, OPEN_ALL_DAY)
                # AND the console's next heartbeat comes
                await agent.send({"action": "ping"})
                # THEN the waiting conversation is assigned as on any open day
                assigned = await agent.until("assigned")
                assert assigned["conversation_id"] == queued["conversation_id"]
                joined = await guest.until("state", state="agent_joined")
                assert joined["agent_name"] == "Opener"
                # AND a new visitor's widget sees the tenant open
                assert (await _visitor(gateway))["widget"]["hours"]["open"] is True
                await guest.send({"action": "end"})
                await guest.until("state", state="closed")
