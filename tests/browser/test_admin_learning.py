"""The admin console's learning loop in headless Chromium against a production gateway: the
review list of answers learned from agents, the missing-knowledge queue, curated answers with
their versions and match tester, and the workbench's regression replay.

What each screen did is checked through the admin API. The screenshots go to docs/images/.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.chat.conversations import ConversationStore
from kefu_core.infra.db import open_pool
from kefu_core.product.learned_answers import LearnedAnswerStore
from kefu_core.product.tenants.agents import Agent
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway
from tests.support.production import production_settings
from tests.support.staff import make_staff

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
PASSWORD = "correct-horse-battery"
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
VIEWPORT = {"width": 1360, "height": 1000}
UNCOVERED = "你们支持花呗分期吗？"


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:admin-learning:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(
        pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix,
        widget_keys=["acme-key:acme"], memory_enabled=True,
        data_encryption_key=["admin-learning-test-key-0123456789-abcdef"])
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


async def _admin(gw: RunningGateway) -> Agent:
    pool = await open_pool(gw.gateway.settings.database_url or "", max_size=1)
    try:
        return await make_staff(pool, tenant_id="acme", role="admin",
                                name="Owner", password=PASSWORD)
    finally:
        await pool.close()


async def _proposal(gw: RunningGateway, question: str, answer: str) -> int:
    """A closed conversation an agent answered, and the pair proposed from it."""
    pool = await open_pool(gw.gateway.settings.database_url or "", max_size=1)
    try:
        conversations = ConversationStore(pool)
        conversation = await conversations.open_for_visitor(tenant_id="acme",
                                                            visitor_id=f"v-{uuid.uuid4().hex[:6]}")
        await conversations.append(tenant_id="acme", conversation_id=conversation.id,
                                   role="visitor", text=question, client_msg_id="q")
        await conversations.append(tenant_id="acme", conversation_id=conversation.id,
                                   role="agent", author="agent-1", text=answer,
                                   client_msg_id="a")
        await conversations.close(tenant_id="acme", conversation_id=conversation.id)
        proposed = await LearnedAnswerStore(pool).propose(
            tenant_id="acme", conversation_id=conversation.id, agent_id="agent-1",
            question=question, answer=answer, method="extractive")
        assert proposed is not None
        return proposed.id
    finally:
        await pool.close()


async def _ask(gw: RunningGateway, text: str) -> None:
    """A visitor asks one question the bot cannot answer (the offline engine refuses)."""
    async with httpx.AsyncClient(base_url=gw.http) as http:
        token = (await http.post("/v1/visitor-token", json={"widget_key": "acme-key"})).json()
    async with websockets.connect(f"{gw.ws}?token={token['token']}", open_timeout=10) as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1", "text": text}))
        while json.loads(await ws.recv())["type"] != "final":
            pass


async def _get(gw: RunningGateway, admin: Agent, path: str) -> Any:
    async with httpx.AsyncClient(base_url=gw.http) as http:
        token = (await http.post("/v1/agent/login", json={
            "tenant": "acme", "email": admin.email, "password": PASSWORD})).json()["token"]
        response = await http.get(path, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def _console(browser: Any, gw: RunningGateway, admin: Agent, screen: str) -> Any:
    context = await browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    async def accept(dialog: Any) -> None:
        await dialog.accept()

    page.on("dialog", accept)
    await page.goto(f"{gw.http}/admin?tenant=acme#{screen}")
    await page.fill("input[name=email]", admin.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator(f"#screen[data-screen={screen}]").wait_for()
    return page


async def test_the_learning_screen_reviews_proposals_answers_the_queue_and_curates(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _admin(gateway)
    # GIVEN a pair proposed from a conversation an agent resolved, and a question the bot
    # could not answer
    proposal = await _proposal(gateway, "能开专票吗？", "可以，请提供税号。")
    rejected = await _proposal(gateway, "你好", "您好，请问有什么可以帮您？")
    await _ask(gateway, UNCOVERED)
    page = await _console(browser, gateway, owner, "learning")
    card = page.locator(f".proposal[data-id='{proposal}']")
    await card.wait_for()
    await page.locator("details.cluster", has_text=UNCOVERED).wait_for()
    await page.screenshot(path=str(IMAGES / "admin-learning.png"), full_page=True)

    # WHEN the owner edits the proposed answer and approves it as a curated answer
    await card.locator("textarea[name=answer]").fill("可以开增值税专用发票，请提供税号和开户行。")
    await card.locator("button[data-action=approveCurated]").click()
    # THEN it is a curated answer with the edited text, and it left the review list
    await card.wait_for(state="detached")
    row = page.locator("tr", has_text="能开专票吗？")
    await row.wait_for()
    (curated,) = await _get(gateway, owner, "/v1/admin/curated-answers")
    assert (curated["question"], curated["answer"]) == ("能开专票吗？",
                                                        "可以开增值税专用发票，请提供税号和开户行。")
    # WHEN the owner rejects the other one
    await page.locator(f".proposal[data-id='{rejected}'] button[data-action=reject]").click()
    # THEN it is listed as rejected and became nothing
    await page.locator(f".proposal[data-id='{rejected}']").wait_for(state="detached")
    listed = await _get(gateway, owner, "/v1/admin/learned-answers?status=rejected")
    assert [p["id"] for p in listed] == [rejected]

    # WHEN the owner edits the curated answer and opens its versions
    await row.locator("button[data-action=edit]").click()
    await row.locator("textarea[name=answer]").fill("可以开专票：请在订单页提交税号。")
    await row.locator("button[data-action=save]").click()
    await page.locator("tr", has_text="v2").first.wait_for()
    await page.locator("tr", has_text="能开专票吗？").locator(
        "button[data-action=history]").click()
    # THEN both versions are shown
    history = page.locator("#curated-history")
    await history.locator("tr", has_text="v1").wait_for()
    assert await history.locator("tbody tr").count() == 2
    # AND the match tester says a visitor asking it gets it
    await page.fill("input[name=match]", "能开专票吗？")
    await page.click("button[data-action=matchTest]")
    await page.locator("#match-result", has_text="visitors get this answer").wait_for()

    # WHEN the owner writes the answer for the queue's cluster once
    cluster = page.locator("details.cluster", has_text=UNCOVERED)
    await cluster.locator("summary").click()
    await cluster.locator("textarea[name=answer]").fill("支持，订单满 300 元可选花呗 3 期免息。")
    await cluster.locator("button[data-action=writeAnswer]").click()
    # THEN it is a curated answer and the cluster leaves the queue
    await cluster.wait_for(state="detached")
    questions = {c["question"] for c in await _get(gateway, owner, "/v1/admin/curated-answers")}
    assert UNCOVERED in questions
    await page.context.close()


async def test_the_workbench_replays_recent_questions_on_the_draft(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _admin(gateway)
    # GIVEN recent visitor questions the bot answered
    await _ask(gateway, "你们周末发货吗？")
    page = await _console(browser, gateway, owner, "workbench")
    # WHEN the owner runs the replay on the draft being edited
    await page.fill("textarea[name=system_prompt]", "请简短回答。")
    await page.click("button[data-action=runReplay]")
    # THEN the figures of the published version and of the draft are shown side by side
    report = page.locator("#replay-report")
    await report.locator("tr[data-figure=refusal_rate]").wait_for()
    cells = await report.locator("tr[data-figure=refusals] td").all_text_contents()
    assert cells[0] == "Refusals" and cells[1] == cells[2] and int(cells[1]) >= 1
    await page.locator("#replay-report").scroll_into_view_if_needed()
    await page.screenshot(path=str(IMAGES / "admin-replay.png"))
    await page.context.close()


async def test_the_reports_show_resolution_feedback_and_each_knowledge_base_version(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _admin(gateway)
    # GIVEN a visitor who rated a bot reply 👎
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        token = (await http.post("/v1/visitor-token", json={"widget_key": "acme-key"})).json()
    async with websockets.connect(f"{gateway.ws}?token={token['token']}",
                                  open_timeout=10) as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1",
                                  "text": "退款多久到账？"}))
        while (frame := json.loads(await ws.recv()))["type"] != "final":
            pass
        await ws.send(json.dumps({"action": "feedback", "seq": frame["seq"], "rating": "down",
                                  "reason": "没回答"}))
        while json.loads(await ws.recv())["type"] != "feedback_saved":
            pass
    report = await _get(gateway, owner, "/v1/admin/reports")
    # WHEN the owner opens the reports
    page = await _console(browser, gateway, owner, "reports")
    section = page.locator("section.card", has_text="Resolution and answer quality")
    # THEN the resolution figures are shown with how "resolved" is defined, the 👎 counted
    thumbs = section.locator(".figure", has_text="Rated down").locator("b")
    await thumbs.wait_for()
    assert int(await thumbs.inner_text()) == report["thumbs_down"] >= 1
    await section.get_by_text("did not come back within 7 days").wait_for()
    # AND each knowledge-base version has its row
    versions = section.locator("#by-kb-version tbody tr")
    await versions.first.wait_for()
    assert await versions.count() == len(report["kb_versions"]) >= 1
    await section.scroll_into_view_if_needed()
    await page.screenshot(path=str(IMAGES / "admin-resolution.png"))
    await page.context.close()
