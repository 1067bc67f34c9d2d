"""Service reports from real conversations: a gateway with the offline engine, a visitor the
assistant helps alone, another it cannot answer who then asks for a human, an agent who replies
and a rating; the figures come from PostgreSQL (kefu_core.product.reports)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.infra.db import open_pool
from kefu_core.product.reports import Report, ReportStore
from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

UNKNOWN = "Can I pay with zorkmids on Mars?"


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:reports:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


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


async def _visitor(http: httpx.AsyncClient) -> str:
    token: str = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})
                  ).json()["token"]
    return token


async def _ask(guest: Client, text: str) -> dict[str, Any]:
    await guest.send({"action": "message", "client_msg_id": f"c-{uuid.uuid4().hex[:8]}",
                      "text": text})
    return await guest.until("final")


async def test_a_report_counts_deflection_handoffs_response_times_ratings_and_refusals(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        admin = (await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD})).json()
        added = await http.post(
            "/v1/admin/knowledge", headers={"authorization": f"Bearer {admin['token']}"},
            json={"name": "returns.md", "content": "# 退货\n\n收到商品 7 天内可在订单页申请退货。"})
        assert added.status_code == 201, added.text
        # GIVEN a visitor the assistant helps alone from the knowledge base
        async with _ws(gateway, await _visitor(http)) as ws:
            helped = Client(ws)
            assert (await _ask(helped, "怎么退货？"))["status"] == "complete"
        # AND a visitor it cannot answer, who asks for a human, gets a reply, ends and rates
        async with _ws(gateway, admin["token"]) as a_ws, \
                _ws(gateway, await _visitor(http)) as v_ws:
            agent, guest = Client(a_ws), Client(v_ws)
            await agent.send({"action": "presence", "status": "online"})
            await agent.until("queue")
            await _ask(guest, UNKNOWN)
            await guest.send({"action": "handoff"})
            assigned = await agent.until("assigned")
            await agent.send({"action": "reply", "conversation_id": assigned["conversation_id"],
                              "client_msg_id": "a-1", "text": "Only cards, sorry."})
            await guest.until("message", role="agent")
            await guest.send({"action": "end"})
            await guest.until("state", state="closed")
            await guest.send({"action": "csat", "score": 5, "comment": "helpful human"})
            await guest.until("csat_saved")
    # WHEN the admin asks the admin API for today's report, in Shanghai days, and its CSV
    now = datetime.now(UTC)
    period = {"since": (now - timedelta(days=1)).isoformat(),
              "until": (now + timedelta(minutes=1)).isoformat()}
    auth = {"authorization": f"Bearer {admin['token']}"}
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        answer = await http.get("/v1/admin/reports", headers=auth,
                                params={**period, "tz": "Asia/Shanghai"})
        exported = await http.get("/v1/admin/reports/export", headers=auth, params=period)
        audit = (await http.get("/v1/admin/audit", headers=auth,
                                params={"action": "reports.exported"})).json()
    assert answer.status_code == 200, answer.text
    report = Report.model_validate(answer.json())
    pool = await open_pool(gateway.gateway.settings.database_url or "", max_size=1)
    try:
        other = await ReportStore(pool).report(
            tenant_id="acme", since=now - timedelta(days=1), until=now + timedelta(minutes=1))
    finally:
        await pool.close()
    # THEN it counts both conversations, one deflected and one handed off by the button
    assert (report.conversations, report.deflected, report.handed_off) == (2, 1, 1)
    assert report.handoff_rate == 0.5 and report.deflection_rate == 0.5
    assert report.handoff_reasons == [{"reason": "button", "count": 1}]
    assert sum(d.conversations for d in report.days) == 2
    # AND the human's first response and the resolution were measured once each
    assert report.first_response.count == 1 and report.first_response.median_s is not None
    assert report.resolution.count == 1 and report.resolution.average_s is not None
    assert report.resolution.average_s >= report.first_response.average_s  # type: ignore[operator]
    # AND the rating, its comment and the unanswered question are there
    assert [(d.ratings, d.csat_average) for d in report.days if d.ratings] == [(1, 5.0)]
    assert [c["comment"] for c in report.csat_comments] == ["helpful human"]
    assert [(u["question"], u["count"]) for u in report.unanswered] == [(UNKNOWN, 1)]
    # AND the CSV has a row per day with the same counts, and the export is audited
    lines = exported.text.strip().splitlines()
    assert lines[0] == ("day,conversations,handed_off,deflected,ratings,csat_average,"
                        "bot_resolved,bot_replies,curated_hits,grounding_checked,grounded,"
                        "thumbs_down")
    assert sum(int(line.split(",")[1]) for line in lines[1:]) == 2
    assert len(audit) == 1
    # AND another tenant's report holds none of it
    assert other.conversations == 0 and other.unanswered == [] and other.csat_comments == []
