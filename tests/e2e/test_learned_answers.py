"""Learning from human agents end to end: an agent resolves a handed-off conversation, Kefu
proposes a question/answer pair (PII redacted) into the review list, an admin approves it and
only then does a visitor asking the question get the answer.

Production configuration, a real gateway (the close asks for the proposal as a background
task, as Lambda's asynchronous invoke does), real WebSocket clients, the admin API over HTTP.
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
QUESTION = "发票抬头开错了，能重开吗？我电话 13912345678"
ANSWER = "可以重开：在订单详情页点击“申请换开发票”，填写正确抬头，3个工作日内寄出新发票。"


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:learned:{uuid.uuid4().hex[:8]}:"
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


async def _token(http: httpx.AsyncClient, agent: Agent) -> dict[str, str]:
    response = await http.post("/v1/agent/login", json={
        "tenant": "acme", "email": agent.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['token']}"}


def _ws(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


async def _resolved_by_an_agent(gw: RunningGateway, http: httpx.AsyncClient, agent: Agent,
                                question: str, answer: str) -> str:
    """A visitor asks ``question``, hands off; the agent takes it, answers, closes it."""
    token = (await _token(http, agent))["authorization"].removeprefix("Bearer ")
    visitor = (await http.post("/v1/visitor-token", json={"widget_key": "acme-key"})).json()
    async with _ws(gw, visitor["token"]) as v_raw, _ws(gw, token) as a_raw:
        guest, staff = Socket(v_raw), Socket(a_raw)
        await guest.send({"action": "message", "client_msg_id": "q1", "text": question})
        conversation_id: str = (await guest.until("ack"))["conversation_id"]
        await guest.until("final")  # the bot's try
        await guest.send({"action": "handoff"})
        while (await guest.until("state"))["state"] != "queued":
            pass
        await staff.send({"action": "take", "conversation_id": conversation_id})
        await staff.until("conversation")
        await staff.send({"action": "reply", "conversation_id": conversation_id,
                          "client_msg_id": "a1", "text": answer})
        await staff.until("ack")
        await staff.send({"action": "close", "conversation_id": conversation_id})
        while (await guest.until("state"))["state"] != "closed":
            pass
    return conversation_id


async def _proposal(http: httpx.AsyncClient, admin: dict[str, str],
                    conversation_id: str) -> dict[str, Any]:
    """The pending proposal made from ``conversation_id`` (made in the background)."""
    async with asyncio.timeout(15):
        while True:
            listed = (await http.get("/v1/admin/learned-answers", headers=admin)).json()
            mine = [p for p in listed if p["conversation_id"] == conversation_id]
            if mine:
                return dict(mine[0])
            await asyncio.sleep(0.05)


async def test_an_agents_answer_is_proposed_redacted_and_reaches_visitors_only_once_approved(
    gateway: RunningGateway,
) -> None:
    agent, boss = await _staff(gateway, "agent"), await _staff(gateway, "admin")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        admin = await _token(http, boss)
        # GIVEN a conversation an agent resolved after a handoff
        conversation_id = await _resolved_by_an_agent(gateway, http, agent, QUESTION, ANSWER)
        # THEN the review list proposes the visitor's question and the agent's answer, the
        # phone number redacted, made without an engine (the tenant configured none)
        proposal = await _proposal(http, admin, conversation_id)
        assert proposal["status"] == "pending" and proposal["method"] == "extractive"
        assert "13912345678" not in proposal["question"]
        assert proposal["question"].startswith("发票抬头开错了，能重开吗？")
        assert "[PHONE_1]" in proposal["question"]
        assert proposal["answer"] == ANSWER and proposal["agent_id"] == agent.id
        # AND nothing reaches visitors yet: no curated answer exists
        curated = await http.get("/v1/admin/curated-answers", headers=admin)
        assert curated.json() == []
        # WHEN an admin approves it with the question reworded
        approved = await http.post(
            f"/v1/admin/learned-answers/{proposal['id']}/approve", headers=admin,
            json={"target": "curated", "question": "发票抬头开错了能重开吗？"})
        # THEN it became a curated answer, and the proposal names it
        assert approved.status_code == 200, approved.text
        body = approved.json()
        assert body["status"] == "approved" and body["target"] == "curated" and body["edited"]
        (answer,) = (await http.get("/v1/admin/curated-answers", headers=admin)).json()
        assert str(answer["id"]) == body["target_ref"]
        assert (answer["question"], answer["answer"]) == ("发票抬头开错了能重开吗？", ANSWER)
        # AND it left the pending list; approving it again finds nothing
        pending = (await http.get("/v1/admin/learned-answers", headers=admin)).json()
        assert all(p["id"] != proposal["id"] for p in pending)
        again = await http.post(f"/v1/admin/learned-answers/{proposal['id']}/approve",
                                headers=admin, json={"target": "curated"})
        assert again.status_code == 404
        # AND the audit log has the approval without the texts
        audit = (await http.get("/v1/admin/audit", headers=admin)).text
        assert "learned_answer.approved" in audit and "13912345678" not in audit


async def test_a_rejected_proposal_never_becomes_an_answer(gateway: RunningGateway) -> None:
    agent, boss = await _staff(gateway, "agent"), await _staff(gateway, "admin")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        admin = await _token(http, boss)
        # GIVEN a proposal from a resolved conversation
        conversation_id = await _resolved_by_an_agent(gateway, http, agent, "能开专票吗？",
                                                      "可以，请提供税号。")
        proposal = await _proposal(http, admin, conversation_id)
        before = len((await http.get("/v1/admin/curated-answers", headers=admin)).json())
        # WHEN an admin rejects it
        rejected = await http.post(f"/v1/admin/learned-answers/{proposal['id']}/reject",
                                   headers=admin)
        # THEN it is listed as rejected, cannot be edited or approved, and no answer was made
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        listed = (await http.get("/v1/admin/learned-answers?status=rejected",
                                 headers=admin)).json()
        assert [p["id"] for p in listed if p["conversation_id"] == conversation_id] == \
            [proposal["id"]]
        edit = await http.put(f"/v1/admin/learned-answers/{proposal['id']}", headers=admin,
                              json={"answer": "x"})
        approve = await http.post(f"/v1/admin/learned-answers/{proposal['id']}/approve",
                                  headers=admin, json={"target": "curated"})
        assert (edit.status_code, approve.status_code) == (404, 404)
        after = len((await http.get("/v1/admin/curated-answers", headers=admin)).json())
        assert after == before
