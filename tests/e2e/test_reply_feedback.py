"""👍/👎 on bot replies end to end: visitors on real WebSockets through the self-hosted gateway,
real Redis and PostgreSQL, the offline engine answering (no LLM configured)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
import redis
import websockets

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, run_gateway


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:feedback:{uuid.uuid4().hex[:8]}:"
    dsn = make_database()
    settings = core_settings(pg_dsn=dsn, redis_url=redis_url, redis_prefix=prefix)
    with run_gateway(settings, replica_id="feedback") as running:
        running.dsn = dsn  # type: ignore[attr-defined]
        yield running
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


class Visitor:
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

    async def rate(self, seq: int, rating: str, reason: str = "") -> dict[str, Any]:
        await self.send({"action": "feedback", "seq": seq, "rating": rating, "reason": reason})
        return await self.until("feedback_saved", "error")


@asynccontextmanager
async def _visitor(gw: RunningGateway) -> AsyncIterator[Visitor]:
    async with httpx.AsyncClient(base_url=gw.http) as http:
        token = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})).json()
    async with websockets.connect(f"{gw.ws}?token={token['token']}", open_timeout=10) as ws:
        yield Visitor(ws)  # the first message starts the conversation


async def _asked(visitor: Visitor, text: str) -> tuple[int, int]:
    """The visitor asks; (the question's seq, the bot reply's seq)."""
    await visitor.send({"action": "message", "client_msg_id": uuid.uuid4().hex, "text": text})
    ack = await visitor.until("ack")
    final = await visitor.until("final")
    return ack["seq"], final["seq"]


def _stored(gw: RunningGateway, seq: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(gw.dsn) as conn:  # type: ignore[attr-defined]
        return conn.execute("SELECT rating, reason, engine, changes FROM reply_feedback"
                            " WHERE seq = %s ORDER BY updated_at", (seq,)).fetchall()


async def test_a_visitor_rates_a_reply_and_changes_its_mind(gateway: RunningGateway) -> None:
    async with _visitor(gateway) as visitor:
        # GIVEN a bot reply
        _, reply = await _asked(visitor, "怎么退货？")
        # WHEN the visitor rates it down with a reason
        saved = await visitor.rate(reply, "down", "没有回答我的问题")
        # THEN it is saved, with the reply's engine read from the reply
        assert saved == {"type": "feedback_saved", "conversation_id": saved["conversation_id"],
                         "seq": reply, "rating": "down"}
        (row,) = [r for r in _stored(gateway, reply) if r[1] == "没有回答我的问题"]
        assert row[0] == "down" and row[2] and row[3] == 0
        # WHEN the visitor rates it up instead THEN the one row changes
        assert (await visitor.rate(reply, "up", "现在明白了"))["rating"] == "up"
        assert [r for r in _stored(gateway, reply) if r[0] == "up" and r[3] == 1]
    # AND the transcript staff read shows the rating and its reason by the reply
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        login = await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD})
        transcript = (await http.get(
            f"/v1/conversations/{saved['conversation_id']}",
            headers={"authorization": f"Bearer {login.json()['token']}"})).json()
    (rating,) = transcript["feedback"]
    assert (rating["seq"], rating["rating"], rating["reason"]) == (reply, "up", "现在明白了")


async def test_only_bot_replies_of_the_visitors_own_conversation_can_be_rated(
    gateway: RunningGateway,
) -> None:
    async with _visitor(gateway) as alice, _visitor(gateway) as mallory:
        # GIVEN a visitor who has not said anything yet: there is nothing to rate
        assert (await mallory.rate(2, "down"))["code"] == "no_conversation"
        # GIVEN Alice's two questions and their replies, and Mallory's one
        await _asked(alice, "运费怎么算？")
        question, reply = await _asked(alice, "多久发货？")
        await _asked(mallory, "可以开发票吗？")
        # WHEN Alice rates her own message, or a seq that does not exist THEN not found
        assert (await alice.rate(question, "down"))["code"] == "not_found"
        assert (await alice.rate(reply + 100, "down"))["code"] == "not_found"
        # WHEN Mallory rates Alice's second reply's seq THEN it names nothing in her own
        # conversation, and Alice's reply is untouched
        assert (await mallory.rate(reply, "down", "MALLORY"))["code"] == "not_found"
        assert not [r for r in _stored(gateway, reply) if r[1] == "MALLORY"]


@pytest.mark.parametrize("frame", [
    {"action": "feedback", "seq": 2, "rating": "up", "reason": "x" * 501},
    {"action": "feedback", "seq": 2, "rating": "meh"},
    {"action": "feedback", "seq": 0, "rating": "up"},
    {"action": "feedback", "seq": "2", "rating": "up"},
])
async def test_malformed_feedback_is_refused(gateway: RunningGateway,
                                             frame: dict[str, Any]) -> None:
    async with _visitor(gateway) as visitor:
        # WHEN a visitor sends feedback with a long reason, a bad rating or seq
        await visitor.send(frame)
        # THEN the frame is refused as invalid
        assert (await visitor.until("error"))["code"] == "invalid_frame"


async def test_a_rating_changes_a_bounded_number_of_times(gateway: RunningGateway) -> None:
    async with _visitor(gateway) as visitor:
        # GIVEN a reply rated, then changed ten times
        _, reply = await _asked(visitor, "多久发货？")
        for i in range(11):
            assert (await visitor.rate(reply, "up" if i % 2 else "down"))["type"] == \
                "feedback_saved"
        # WHEN it is changed once more THEN it is refused
        assert (await visitor.rate(reply, "down"))["code"] == "too_many_changes"
