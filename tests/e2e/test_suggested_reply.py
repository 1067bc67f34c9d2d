"""The agent console's suggested reply with the offline engine: grounded in the passages the
bot would use for the visitor's last question, and not offered when it would only refuse."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.support.core import ROOT
from tests.support.gateway import RunningGateway, gateway_for_test


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    # A generous recall deadline: a busy machine must not drop the knowledge search.
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name="suggest",
                          knowledge_dir=str(ROOT / "knowledge" / "demo"),
                          knowledge_tenant="demo", recall_deadline_ms=5000) as running:
        yield running


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(15):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                self.seen.append(frame)
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame


def _ws(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


async def _suggestion_after(gw: RunningGateway, questions: list[str]) -> dict[str, Any]:
    """A visitor asks ``questions`` (the first to the bot, the rest once a human took over);
    the agent on the chat asks for a suggested reply."""
    async with httpx.AsyncClient(base_url=gw.http) as http:
        admin = (await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD})).json()
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})).json()
    async with _ws(gw, admin["token"]) as a_ws, _ws(gw, visitor["token"]) as v_ws:
        agent, guest = Client(a_ws), Client(v_ws)
        await agent.send({"action": "presence", "status": "online"})
        await agent.until("queue")
        await guest.send({"action": "message", "client_msg_id": "c-0", "text": questions[0]})
        await guest.until("final")
        await guest.send({"action": "handoff"})
        conversation_id = (await agent.until("assigned"))["conversation_id"]
        for i, text in enumerate(questions[1:], start=1):
            await guest.send({"action": "message", "client_msg_id": f"c-{i}", "text": text})
            await agent.until("message", role="visitor", text=text)
        await agent.send({"action": "suggest", "conversation_id": conversation_id})
        suggestion = await agent.until("suggestion")
        assert not [f for f in guest.seen if f.get("type") == "suggestion"]
        return suggestion


@pytest.mark.parametrize(("questions", "expected"), [
    (["你好", "电池保修多久？"], "六个月"),  # asked once the agent joined
    (["How long does shipping take?"], "16:00"),  # asked the bot, then a human was asked for
])
async def test_the_suggestion_answers_from_the_knowledge_base_once_a_human_is_on_the_chat(
    gateway: RunningGateway, questions: list[str], expected: str
) -> None:
    # GIVEN the demo knowledge base, and a visitor with an agent on the chat whose last
    # question it answers
    # WHEN the agent asks for a suggested reply
    suggestion = await _suggestion_after(gateway, questions)
    # THEN the offline engine drafts the answer from the knowledge base
    assert suggestion["status"] == "complete", suggestion
    assert expected in suggestion["text"], suggestion


async def test_no_suggestion_is_offered_when_the_knowledge_base_does_not_answer(
    gateway: RunningGateway,
) -> None:
    # GIVEN a visitor whose last question the knowledge base does not answer
    # WHEN the agent asks for a suggested reply
    suggestion = await _suggestion_after(gateway, ["你好", "Can I pay with zorkmids on Mars?"])
    # THEN no draft is offered (no "don't know" line for the agent to send)
    assert suggestion["status"] == "none", suggestion
    assert suggestion["text"] == ""
