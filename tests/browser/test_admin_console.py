"""The admin console (web/admin.html) in headless Chromium against a production gateway.

A shop owner signs in with organisation, e-mail and password and uses each screen; what the
screen did is checked through the admin API (or the agent console it affects). The tests write
the screenshots of the main screens to docs/images/ so they stay current.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.infra.db import open_pool
from kefu_core.product.tenants.agents import Agent
from tests.support.documents import pdf_bytes
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway
from tests.support.production import production_settings
from tests.support.staff import make_staff

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
PASSWORD = "correct-horse-battery"
ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1360, "height": 900}


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:admin-console:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(
        pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix,
        widget_keys=["acme-key:acme"], memory_enabled=True,
        data_encryption_key=["admin-console-test-key-0123456789-abcdef"])
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


async def _staff(gw: RunningGateway, role: str, name: str, email: str | None = None) -> Agent:
    pool = await open_pool(gw.gateway.settings.database_url or "", max_size=1)
    try:
        return await make_staff(pool, tenant_id="acme", role=role,  # type: ignore[arg-type]
                                name=name, email=email, password=PASSWORD)
    finally:
        await pool.close()


async def _admin_console(browser: Any, gw: RunningGateway, admin: Agent, *,
                         locale: str = "en-US", screen: str = "team") -> Any:
    context = await browser.new_context(viewport=VIEWPORT, locale=locale)
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


async def _api(gw: RunningGateway, email: str, password: str = PASSWORD) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.http) as http:
        return await http.post("/v1/agent/login", json={"tenant": "acme", "email": email,
                                                       "password": password})


async def _get(gw: RunningGateway, admin: Agent, path: str) -> Any:
    token = (await _api(gw, admin.email)).json()["token"]
    async with httpx.AsyncClient(base_url=gw.http) as http:
        response = await http.get(path, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def _patch(path: str) -> Any:
    return lambda r: path in r.url and r.request.method == "PATCH"


def _post(path: str) -> Any:
    return lambda r: r.url.endswith(path) and r.request.method == "POST"


def _put(path: str) -> Any:
    return lambda r: path in r.url and r.request.method == "PUT"


def _row(page: Any, attr: str, value: str) -> Any:
    return page.locator(f"tr[data-{attr}={json.dumps(value)}]")


async def test_team_invite_role_change_password_reset_and_deactivation(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Wang", "owner@acme.example")
    agent = await _staff(gateway, "agent", "Li Na", "li.na@acme.example")
    # GIVEN the agent working in the agent console and the owner in the admin console
    console = await (await browser.new_context(viewport=VIEWPORT, locale="en-US")).new_page()
    console.set_default_timeout(TIMEOUT_MS)
    await console.goto(f"{gateway.http}/console?tenant=acme")
    await console.fill("input[name=email]", agent.email)
    await console.fill("input[name=password]", PASSWORD)
    await console.click("#login-form button[type=submit]")
    await console.locator("#conn", has_text="Connected").wait_for()
    page = await _admin_console(browser, gateway, owner)
    # THEN the revocation rules are on the screen
    assert "ends all of their sessions" in await page.locator("#revocation-rules").inner_text()

    # WHEN the owner adds a member
    await page.fill("form.stack input[name=name]", "Zhang Mei")
    await page.fill("form.stack input[name=email]", "mei@acme.example")
    await page.fill("form.stack input[name=password]", "first-password-123")
    await page.click("button[data-action=add]")
    # THEN she is listed and can sign in
    await _row(page, "email", "mei@acme.example").wait_for()
    assert (await _api(gateway, "mei@acme.example", "first-password-123")).status_code == 200

    # WHEN the owner makes the working agent an admin
    async with page.expect_response(_patch("/v1/admin/agents/")) as changed:
        await _row(page, "email", agent.email).locator("select[name=role]").select_option(
            "admin")
    assert (await changed.value).status == 200
    # THEN the agent's console is signed out at its next action
    await console.select_option("#presence", "away")
    await console.locator("#login-error", has_text="signed out").wait_for()
    agents = {a["email"]: a for a in await _get(gateway, owner, "/v1/admin/agents")}
    assert agents[agent.email]["role"] == "admin"

    # WHEN the owner sets a new password for Mei
    mei = _row(page, "email", "mei@acme.example")
    await mei.locator("button[data-action=resetPassword]").click()
    await mei.locator("input[name=password]").fill("second-password-456")
    await mei.locator("button[type=submit]").click()
    await page.locator("#toast", has_text="New password set").wait_for()
    # THEN only the new one works
    assert (await _api(gateway, "mei@acme.example", "first-password-123")).status_code == 401
    assert (await _api(gateway, "mei@acme.example", "second-password-456")).status_code == 200

    # WHEN the owner deactivates her
    await _row(page, "email", "mei@acme.example").locator(
        "button[data-action=deactivate]").click()
    # THEN she is shown deactivated and cannot sign in
    await _row(page, "email", "mei@acme.example").locator(".pill.off").wait_for()
    assert (await _api(gateway, "mei@acme.example", "second-password-456")).status_code == 401
    await page.screenshot(path=str(IMAGES / "admin-team.png"))
    await console.context.close()
    await page.context.close()


async def test_widget_keys_origins_appearance_snippet_and_live_preview(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Chen")
    page = await _admin_console(browser, gateway, owner, screen="widget")
    # WHEN the owner creates a key for the shop's site
    await page.fill("form.new-key input[name=label]", "shop")
    await page.fill("form.new-key textarea[name=origins]", "https://shop.example.com")
    async with page.expect_response(_post("/v1/admin/widget-keys")) as created:
        await page.click("form.new-key button[type=submit]")
    key = (await (await created.value).json())["key"]
    await _row(page, "key", key).wait_for()
    keys = {k["label"]: k for k in await _get(gateway, owner, "/v1/admin/widget-keys")}
    # THEN it is stored with its origin and the snippet embeds it
    assert keys["shop"]["allowed_origins"] == ["https://shop.example.com"]
    assert f'data-widget-key="{key}"' in await page.locator("#snippet").inner_text()

    # WHEN the owner allows this console's origin too, sets a greeting and colour, and previews
    row = _row(page, "key", key)
    await row.locator("textarea[name=origins]").fill(f"https://shop.example.com\n{gateway.http}")
    async with page.expect_response(_patch("/v1/admin/widget-keys/")):
        await row.locator("button[data-action=save]").click()
    await page.fill("input[name=greeting_en]", "Welcome to Acme! Ask me anything.")
    await page.locator("input[name=color]").fill("#0a7d4f")
    await page.locator("input[name=offline_message_enabled]").uncheck()
    assert not await page.locator("input[name=images_to_model]").is_checked()  # off by default
    await page.locator("input[name=images_to_model]").check()
    async with page.expect_response(_put("/v1/admin/settings")):
        await page.locator("section.card", has_text="Appearance").locator(
            "button[data-action=save]").click()
    await _row(page, "key", key).locator("button[data-action=preview]").click()
    # THEN the stored settings changed and the live widget shows the greeting
    preview = page.frame_locator("#widget-preview")
    await preview.get_by_text("Welcome to Acme! Ask me anything.").wait_for()
    settings = await _get(gateway, owner, "/v1/admin/settings")
    assert settings["greeting_en"] == "Welcome to Acme! Ask me anything."
    assert settings["color"] == "#0a7d4f" and settings["offline_message_enabled"] is False
    assert settings["images_to_model"] is True
    keys = {k["label"]: k for k in await _get(gateway, owner, "/v1/admin/widget-keys")}
    assert keys["shop"]["allowed_origins"] == ["https://shop.example.com", gateway.http]
    await page.set_viewport_size({"width": VIEWPORT["width"], "height": 1900})
    await page.screenshot(path=str(IMAGES / "admin-widget.png"))

    # WHEN the owner revokes the key
    await _row(page, "key", key).locator("button[data-action=revoke]").click()
    # THEN it is shown revoked and no longer buys a visitor token
    await _row(page, "key", key).locator("text=Revoked").wait_for()
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        refused = await http.post("/v1/visitor-token", json={"widget_key": key},
                                  headers={"origin": gateway.http})
    assert refused.status_code == 403
    await page.context.close()


async def test_engine_chain_order_and_write_only_keys(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Liu")
    page = await _admin_console(browser, gateway, owner, screen="engines")
    # WHEN the owner adds two engines, the second naming a key not stored yet, and moves it up
    for name, url, model in (("backup", "https://backup.example.com/v1", "small"),
                             ("main", "https://api.example.com/v1", "big")):
        await page.click("button[data-action=addEngine]")
        last = page.locator("table.grid").first.locator("tbody tr").last
        await last.locator("input[name=name]").fill(name)
        await last.locator("input[name=base_url]").fill(url)
        await last.locator("input[name=model]").fill(model)
    last = page.locator("table.grid").first.locator("tbody tr").last
    await last.locator("input[name=key_ref]").fill("main-key")
    await last.locator("input[name=first_token_timeout_s]").fill("4.5")
    await last.locator("button[data-action=up]").click()
    await page.click("button[data-action=saveChain]")
    # THEN the chain is stored in that order, and the missing key is pointed out
    await page.locator(".warn", has_text="main-key").wait_for()
    view = await _get(gateway, owner, "/v1/admin/engines")
    assert [(e["name"], e["model"], e.get("key_ref"), e.get("first_token_timeout_s"))
            for e in view["chain"]] == [("main", "big", "main-key", 4.5),
                                        ("backup", "small", None, None)]

    # WHEN the owner stores the key
    await page.fill("input[name=name][pattern]", "main-key")
    await page.fill("input[name=secret]", "sk-live-very-secret-value")
    await page.click("button[data-action=setSecret]")
    # THEN it is listed by name only and the warning is gone
    await page.locator("code", has_text="main-key").wait_for()
    await page.locator(".warn").wait_for(state="hidden")
    assert "sk-live-very-secret-value" not in await page.content()
    assert "sk-live" not in json.dumps(await _get(gateway, owner, "/v1/admin/engines"))

    # WHEN the owner points an engine at a loopback address
    first = page.locator("table.grid").first.locator("tbody tr").first
    await first.locator("input[name=base_url]").fill("http://127.0.0.1:9/v1")
    await page.click("button[data-action=saveChain]")
    # THEN the API refuses it and says why
    await page.locator("#toast", has_text="base_url").wait_for()
    await page.context.close()


async def test_knowledge_base_upload_chunks_search_replace_and_delete(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Zhao")
    page = await _admin_console(browser, gateway, owner, screen="knowledge")
    # WHEN the owner uploads a PDF, a Markdown page and an FAQ CSV
    faq = "question,answer\n怎么退货?,收到商品 7 天内可在订单页申请退货。\n"
    await page.set_input_files("input[name=files]", files=[
        {"name": "warranty.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes(
            ["Warranty: every blender is covered for two years.",
             "Repairs under warranty are free of charge."])},
        {"name": "shipping.md", "mimeType": "text/markdown",
         "buffer": "# 发货\n\n下单后 24 小时内发货。".encode()},
        {"name": "faq.csv", "mimeType": "text/csv", "buffer": faq.encode()}])
    await page.click("button[data-action=upload]")
    # THEN all three are listed with their chunk counts, and stored
    for name in ("faq.csv", "shipping.md", "warranty.pdf"):
        await _row(page, "name", name).wait_for()
    assert (await _get(gateway, owner, "/v1/admin/knowledge"))["documents"] == [
        "faq.csv", "shipping.md", "warranty.pdf"]
    # WHEN the owner previews the PDF's chunks
    await _row(page, "name", "warranty.pdf").locator("button[data-action=viewChunks]").click()
    # THEN its text is shown as the assistant will retrieve it
    await page.locator("#chunks .chunk", has_text="covered for two years").first.wait_for()
    # WHEN the owner asks the search tester a question the PDF answers
    await page.fill("input[name=question]", "How long is the blender warranty?")
    await page.click("button[data-action=search]")
    # THEN the PDF's passage comes first, with its score
    best = page.locator("#hits .hit").first
    await best.wait_for()
    assert "warranty.pdf" in await best.inner_text()
    assert float(await best.locator(".score").inner_text()) > 0
    await page.set_viewport_size({"width": VIEWPORT["width"], "height": 1300})
    await page.screenshot(path=str(IMAGES / "admin-knowledge.png"))
    version = (await _get(gateway, owner, "/v1/admin/knowledge"))["version"]

    # WHEN the owner replaces a document with a new file
    async with page.expect_response(_post("/v1/admin/knowledge/files")):
        await _row(page, "name", "shipping.md").locator("input[name=again]").set_input_files(
            files=[{"name": "new.md", "mimeType": "text/markdown",
                    "buffer": "# 发货\n\n下单后 12 小时内发货。".encode()}])
    # THEN the knowledge base changed version under the same document name
    await page.locator("#toast", has_text="Imported shipping.md").wait_for()
    after = await _get(gateway, owner, "/v1/admin/knowledge")
    assert after["documents"] == ["faq.csv", "shipping.md", "warranty.pdf"]
    assert after["version"] != version

    # WHEN the owner deletes the FAQ
    await _row(page, "name", "faq.csv").locator("button[data-action=remove]").click()
    # THEN it is gone
    await _row(page, "name", "faq.csv").wait_for(state="detached")
    assert (await _get(gateway, owner, "/v1/admin/knowledge"))["documents"] == [
        "shipping.md", "warranty.pdf"]
    await page.context.close()


async def _chat(gw: RunningGateway, text: str, widget_key: str = "acme-key") -> str:
    """A visitor asks one question through the widget's API and rates the conversation; the
    visitor's id."""
    async with httpx.AsyncClient(base_url=gw.http) as http:
        token = (await http.post("/v1/visitor-token", json={"widget_key": widget_key})).json()
    async with websockets.connect(f"{gw.ws}?token={token['token']}", open_timeout=10) as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-" + uuid.uuid4().hex[:8],
                                  "text": text}))
        while json.loads(await ws.recv())["type"] != "final":
            pass
        await ws.send(json.dumps({"action": "csat", "score": 4, "comment": "quick"}))
        while json.loads(await ws.recv())["type"] != "csat_saved":
            pass
    return str(token["visitor_id"])


async def test_conversations_audit_log_and_reports(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Sun")
    # GIVEN a visitor who asked about a refund and rated the chat
    marker = f"refund {uuid.uuid4().hex[:6]}"
    await _chat(gateway, f"How do I get a {marker}?")
    page = await _admin_console(browser, gateway, owner, screen="conversations")
    # WHEN the owner searches the conversations for the question and opens it
    await page.fill("input[name=q]", marker)
    await page.click("form.filters button[type=submit]")
    await page.locator("tr.clickable").first.click()
    # THEN the transcript shows the question, the answer and the rating
    transcript = page.locator("#transcript")
    await transcript.get_by_text(f"How do I get a {marker}?").wait_for()
    assert "Assistant" in await transcript.inner_text()
    await transcript.locator(".csat", has_text="★★★★").wait_for()
    # AND the CSV export holds the conversation
    async with page.expect_download() as download:
        await page.click("button[data-action=exportCsv]")
    saved = Path(await (await download.value).path())
    exported = await asyncio.to_thread(saved.read_text)
    assert marker in exported and exported.startswith("conversation_id,")
    await page.screenshot(path=str(IMAGES / "admin-conversations.png"))

    # WHEN the owner filters the audit log by action
    await page.click("#nav a[data-screen=audit]")
    await page.fill("input[name=action]", "conversations.exported")
    await page.click("form.filters button[type=submit]")
    # THEN only that action is listed, with its actor
    rows = page.locator("#screen tbody tr")
    await rows.first.wait_for()
    assert await rows.count() == 1
    assert "Owner Sun" in await rows.first.inner_text()
    # WHEN the owner opens the entry THEN the whole entry is shown, its actor's id included
    await rows.first.click()
    entry = page.locator("#screen tr.entry pre")
    await entry.wait_for()
    assert json.loads(await entry.inner_text())["actor_id"] == owner.id

    # WHEN the owner opens the reports
    await page.click("#nav a[data-screen=reports]")
    # THEN the rating and today's conversation are counted, numbers beside the bars
    figures = page.locator(".figures")
    await figures.get_by_text("4.00").wait_for()
    overview = page.locator("section.card", has_text="Overview")
    assert int(await overview.locator(".figure b").first.inner_text()) >= 1
    # AND the question the knowledge base could not answer is listed
    unanswered = page.locator("section.card", has_text="Unanswered questions")
    await unanswered.get_by_text(f"How do I get a {marker}?").wait_for()
    today = await page.evaluate("new Date().toLocaleDateString('sv')")
    bars = page.locator("section.card", has_text="Conversations per day").locator("svg.bars")
    label = bars.locator("text", has_text=today)
    await label.wait_for()
    value = await bars.evaluate(
        "(svg, day) => { const t = [...svg.querySelectorAll('text')];"
        " const i = t.findIndex(x => x.textContent === day); return t[i + 1].textContent; }",
        today)
    assert int(value) >= 1
    await page.set_viewport_size({"width": VIEWPORT["width"], "height": 1300})
    await page.screenshot(path=str(IMAGES / "admin-reports.png"))
    await page.context.close()


async def test_a_customer_is_exported_and_erased_and_retention_is_set(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Zhao")
    # GIVEN a visitor who asked about their order and rated the chat
    marker = f"order {uuid.uuid4().hex[:6]}"
    visitor = await _chat(gateway, f"Where is my {marker}?")
    page = await _admin_console(browser, gateway, owner, screen="privacy")
    # WHEN the owner exports the visitor's data
    await page.fill("input[name=customer]", visitor)
    async with page.expect_download() as download:
        await page.click("#privacy-lookup button[data-action=exportData]")
    # THEN the downloaded archive holds the conversation, and its summary is on the screen
    saved = Path(await (await download.value).path())
    archive = json.loads(await asyncio.to_thread(saved.read_text))
    assert archive["format"] == "kefu.personal-data/1" and archive["visitor_id"] == visitor
    texts = [m["text"] for c in archive["conversations"] for m in c["messages"]]
    assert f"Where is my {marker}?" in texts
    summary = page.locator("#privacy-result .summary-text")
    assert await summary.inner_text() == archive["summary"]["text_en"]
    assert archive["summary"]["conversations"] == 1

    # WHEN the owner asks to erase the visitor, and types the id wrong
    await page.click("#privacy-lookup button[data-action=eraseData]")
    dialog = page.locator("#erase-dialog")
    await dialog.locator("input[name=confirm]").fill(visitor[:-1])
    # THEN the erasure cannot be confirmed
    assert await dialog.locator("button[data-action=eraseNow]").is_disabled()
    # WHEN the owner types the id again
    await dialog.locator("input[name=confirm]").fill(visitor)
    async with page.expect_response(_post("/v1/admin/personal-data/erase")) as erased:
        await dialog.locator("button[data-action=eraseNow]").click()
    assert (await erased.value).status == 200
    # THEN the result counts the conversation and says how long other processes' copies live
    report = page.locator("#privacy-result .erasure-report")
    await report.wait_for()
    assert "Conversations" in await report.locator(".figure").first.inner_text()
    assert (await report.locator(".figure b").first.inner_text()) == "1"
    assert "expire within 600 s" in await report.locator(".residual").inner_text()
    await page.screenshot(path=str(IMAGES / "admin-privacy.png"))
    # AND the conversation is gone from the conversations screen
    await page.click("#nav a[data-screen=conversations]")
    await page.fill("input[name=q]", marker)
    async with page.expect_response(lambda r: "/v1/conversations?" in r.url and "q=" in r.url):
        await page.click("form.filters button[type=submit]")
    await page.locator("#screen table.grid").wait_for()
    assert await page.locator("#screen tbody tr").count() == 0
    assert await _get(gateway, owner, f"/v1/conversations?visitor_id={visitor}") == []

    # WHEN the owner sets the retention to 180, 90 and 30 days
    await page.click("#nav a[data-screen=privacy]")
    retention = page.locator("#retention")
    await retention.locator("input[name=transcripts_days]").fill("180")
    await retention.locator("input[name=facts_days]").fill("90")
    await retention.locator("input[name=offline_messages_days]").fill("30")
    async with page.expect_response(_put("/v1/admin/retention")):
        await retention.locator("button[type=submit]").click()
    # THEN the API holds them, and the screen shows them when opened again
    assert await _get(gateway, owner, "/v1/admin/retention") == {
        "transcripts_days": 180, "facts_days": 90, "offline_messages_days": 30}
    await page.reload()
    await page.locator("#retention input[name=offline_messages_days][value='30']").wait_for()
    assert await retention.locator("input[name=transcripts_days]").input_value() == "180"
    assert await retention.locator("input[name=facts_days]").input_value() == "90"
    await page.context.close()


async def test_an_export_too_large_for_one_answer_points_at_the_command_line(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Li")
    # GIVEN a visitor with more conversations than one answer carries (5,000)
    visitor = f"v-{uuid.uuid4().hex}"
    pool = await open_pool(gateway.gateway.settings.database_url or "", max_size=1)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO conversations (id, tenant_id, visitor_id, status) SELECT"
                " gen_random_uuid(), 'acme', %s, 'closed' FROM generate_series(1, 5001)",
                (visitor,))
    finally:
        await pool.close()
    page = await _admin_console(browser, gateway, owner, screen="privacy")
    # WHEN the owner exports the visitor's data
    await page.fill("input[name=customer]", visitor)
    async with page.expect_response(_post("/v1/admin/personal-data/export")) as answer:
        await page.click("#privacy-lookup button[data-action=exportData]")
    # THEN the answer is 413 and the screen gives the command that exports it
    assert (await answer.value).status == 413
    command = page.locator("#privacy-result .too-big pre")
    await command.wait_for()
    assert await command.inner_text() == (f"kefu personal-data export --tenant acme "
                                          f"--visitor-id {visitor} --output personal-data.json")
    await page.context.close()


async def test_the_super_admin_erases_a_customer_of_a_chosen_tenant(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Qian")
    pool = await open_pool(gateway.gateway.settings.database_url or "", max_size=1)
    try:
        root = await make_staff(pool, tenant_id="_root", role="admin",
                                name="Operator", email=f"op-{uuid.uuid4().hex[:6]}@kefu.example",
                                password=PASSWORD)
    finally:
        await pool.close()
    # GIVEN a visitor of acme who chatted, and the super-admin in the console
    visitor = await _chat(gateway, f"Is my parcel {uuid.uuid4().hex[:6]} lost?")
    page = await (await browser.new_context(viewport=VIEWPORT, locale="en-US")).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/admin?tenant=_root#privacy")
    await page.fill("input[name=email]", root.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    # WHEN the super-admin picks acme and erases the visitor, typing the id again
    await page.locator("select[name=tenant] option[value=acme]").wait_for(state="attached")
    await page.select_option("select[name=tenant]", "acme")
    await page.fill("input[name=customer]", visitor)
    await page.click("#privacy-lookup button[data-action=eraseData]")
    await page.fill("#erase-dialog input[name=confirm]", visitor)
    async with page.expect_response(_post("/v1/tenants/acme/personal-data/erase")) as erased:
        await page.click("#erase-dialog button[data-action=eraseNow]")
    assert (await erased.value).status == 200
    # THEN the result is shown, acme has no conversation of the visitor left, and the
    # retention of a tenant is left to its administrators
    await page.locator("#privacy-result .erasure-report").wait_for()
    assert await _get(gateway, owner, f"/v1/conversations?visitor_id={visitor}") == []
    assert await page.locator("#retention").count() == 0
    await page.context.close()


async def test_the_console_speaks_chinese_and_refreshes_its_token(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "王老板")
    page = await _admin_console(browser, gateway, owner, locale="zh-CN")
    # THEN the screens are in Chinese
    await page.locator("#nav a", has_text="团队").wait_for()
    await page.locator("#nav a[data-screen=privacy]", has_text="个人数据").wait_for()
    assert "账号权限变更规则" in await page.locator("#revocation-rules").inner_text()
    # GIVEN a session whose token is about to expire
    session = "JSON.parse(sessionStorage.getItem('kefu.admin.session'))"
    before = await page.evaluate(session)
    await page.evaluate(f"(() => {{ const s = {session}; s.expiresAt = Date.now() + 125000;"
                        " sessionStorage.setItem('kefu.admin.session', JSON.stringify(s)); })()")
    await page.reload()
    # WHEN its refresh time comes THEN it holds a fresh token that the API accepts
    await page.wait_for_function(f"{session}.token !== {before['token']!r}")
    token = (await page.evaluate(session))["token"]
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        me = await http.get("/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["id"] == owner.id
    # WHEN the owner is deactivated by someone else THEN the next call signs the console out
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        other = await _staff(gateway, "admin", "Other Admin")
        boss = (await _api(gateway, other.email)).json()["token"]
        await http.patch(f"/v1/admin/agents/{owner.id}", json={"active": False},
                         headers={"authorization": f"Bearer {boss}"})
    await page.click("#nav a[data-screen=widget]")
    await page.locator("#login-error", has_text="您已退出").wait_for()
    assert await page.evaluate("sessionStorage.getItem('kefu.admin.session')") is None
    await page.context.close()


async def test_an_agent_is_not_let_in(gateway: RunningGateway, browser: Any) -> None:
    agent = await _staff(gateway, "agent", "Plain Agent")
    context = await browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/admin?tenant=acme")
    await page.fill("input[name=email]", agent.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator("#login-error", has_text="not an administrator").wait_for()
    assert await page.evaluate("sessionStorage.getItem('kefu.admin.session')") is None
    await context.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_site() -> Iterator[str]:
    """web/ served as plain static files from another origin (as a bucket or CDN would)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Quiet, directory=str(ROOT)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def remote_api(make_database, redis_url, static_site) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    """A deployment whose admin API allows the static site's origin (ADMIN_ALLOWED_ORIGINS)."""
    prefix = f"kefu-test:admin-console-remote:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(pg_dsn=make_database(), redis_url=redis_url,
                                   redis_prefix=prefix, admin_allowed_origins=[static_site])
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


async def _sign_in_elsewhere(browser: Any, site: str, api: str, admin: Agent) -> Any:
    page = await (await browser.new_context(viewport=VIEWPORT, locale="en-US")).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{site}/web/admin.html?tenant=acme")
    await page.click(".api-box summary")
    await page.fill("input[name=api]", api)
    await page.fill("input[name=email]", admin.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    return page


async def test_a_console_hosted_elsewhere_uses_the_admin_api_url(
    gateway: RunningGateway, remote_api: RunningGateway, static_site: str, browser: Any,
) -> None:
    owner = await _staff(remote_api, "admin", "Remote Owner", "remote@acme.example")
    # GIVEN the console served from another origin than the admin API, which allows that origin
    # WHEN the owner signs in with the admin API's URL
    page = await _sign_in_elsewhere(browser, static_site, remote_api.http, owner)
    # THEN the screens work against that API, and the URL is remembered for the next sign-in
    await _row(page, "email", "remote@acme.example").wait_for()
    assert await page.locator("#me-org").inner_text() == f"acme · {remote_api.http}"
    assert await page.evaluate("localStorage.getItem('kefu.admin.api')") == remote_api.http
    await page.context.close()
    # WHEN the admin API does not allow the console's origin
    other = await _staff(gateway, "admin", "Other Owner")
    page = await _sign_in_elsewhere(browser, static_site, gateway.http, other)
    # THEN the browser refuses the call and the form says the API cannot be reached
    await page.locator("#login-error", has_text="Cannot reach the admin API").wait_for()
    assert await page.evaluate("sessionStorage.getItem('kefu.admin.session')") is None
    await page.context.close()


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1, tokens_per_s=40) as server:
        yield server


@pytest.fixture(scope="module")
def llm_gateway(make_database, redis_url, fake_llm) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    """A deployment whose operator lets tenants' engines reach this machine (the fake LLM)."""
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:admin-console-llm:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(
        pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix,
        widget_keys=["tea-key:acme"], memory_enabled=True, outbound_allow_private=True,
        cache_ttl_s=0, data_encryption_key=["admin-console-test-key-0123456789-abcdef"])
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


def _systems(fake: FakeOpenAI) -> list[str]:
    return [next(m["content"] for m in r["messages"] if m["role"] == "system")
            for r in fake.requests]


async def test_an_engine_is_tested_from_its_row(
    llm_gateway: RunningGateway, fake_llm: FakeOpenAI, browser: Any,
) -> None:
    owner = await _staff(llm_gateway, "admin", "Owner Qian")
    token = (await _api(llm_gateway, owner.email)).json()["token"]
    async with httpx.AsyncClient(base_url=llm_gateway.http,
                                 headers={"authorization": f"Bearer {token}"}) as http:
        await http.put("/v1/admin/engines/secrets/llm", json={"secret": "sk-tea"})
        await http.put("/v1/admin/engines", json={"chain": [{
            "name": "tea-llm", "kind": "openai", "base_url": fake_llm.base_url,
            "model": "tea", "key_ref": "llm"}]})
    page = await _admin_console(browser, llm_gateway, owner, screen="engines")
    # WHEN the owner tests the engine of the chain's first row
    fake_llm.reset()
    await page.locator("table.grid").first.locator("tbody tr").first.locator(
        "button[data-action=testEngine]").click()
    # THEN its streamed answer and the verdict are shown, and only that engine was asked
    verdict = page.locator("#engine-trial small[data-done]")
    await verdict.wait_for()
    assert (await verdict.inner_text()).startswith("works · complete · tea-llm")
    assert "OK." in await page.locator("#engine-trial .answer").inner_text()
    assert [r["model"] for r in fake_llm.requests] == ["tea"]
    await page.screenshot(path=str(IMAGES / "admin-engines.png"))
    await page.context.close()


async def test_the_workbench_compares_publishes_and_rolls_back_and_the_widget_follows(
    llm_gateway: RunningGateway, fake_llm: FakeOpenAI, browser: Any,
) -> None:
    gw = llm_gateway
    owner = await _staff(gw, "admin", "Owner Lin", "lin@acme.example")
    token = (await _api(gw, owner.email)).json()["token"]
    async with httpx.AsyncClient(base_url=gw.http,
                                 headers={"authorization": f"Bearer {token}"}) as http:
        await http.put("/v1/admin/engines/secrets/llm", json={"secret": "sk-tea"})
        chain = await http.put("/v1/admin/engines", json={"chain": [{
            "name": "tea-llm", "kind": "openai", "base_url": fake_llm.base_url,
            "model": "tea", "key_ref": "llm"}]})
        assert chain.status_code == 200, chain.text
    page = await _admin_console(browser, gw, owner, screen="workbench")
    await page.locator("#draft-status", has_text="No draft").wait_for()
    # WHEN the owner writes a new prompt, turns emoji off and compares the answers
    await page.fill("textarea[name=system_prompt]", "You are Lin, the tea shop's host. LIN-V1")
    await page.select_option("select[name=emoji_frequency]", "none")
    fake_llm.reset()
    await page.fill("input[name=question]", "Which green tea do you have?")
    await page.click("button[data-action=compareAnswers]")
    # THEN both answers stream in, side by side, and only the draft used the new prompt
    for side in ("published", "draft"):
        await page.locator(f"#answer-{side} small[data-done]").wait_for()
        assert "green tea" in await page.locator(f"#answer-{side} .answer").inner_text()
    systems = _systems(fake_llm)
    assert len(systems) == 2 and sum("LIN-V1" in s for s in systems) == 1
    await page.set_viewport_size({"width": VIEWPORT["width"], "height": 1250})
    await page.screenshot(path=str(IMAGES / "admin-workbench.png"))

    # WHEN the owner publishes it
    await page.fill("input[name=note]", "Lin persona")
    await page.click("button[data-action=publish]")
    await _row(page, "version", "1").wait_for()
    # THEN the widget's next answer is asked with it
    fake_llm.reset()
    await _chat(gw, "Hello?", widget_key="tea-key")
    assert "LIN-V1" in _systems(fake_llm)[-1] and "Do not use emoji" in _systems(fake_llm)[-1]

    # WHEN the owner publishes a second version, then rolls back to the first
    await page.fill("textarea[name=system_prompt]", "LIN-V2: be brief.")
    await page.click("button[data-action=publish]")
    await _row(page, "version", "2").wait_for()
    await _row(page, "version", "1").locator("button[data-action=rollback]").click()
    # THEN version 3 is version 1 again, and the widget follows it
    await _row(page, "version", "3").wait_for()
    assert "rollback to v1" in await _row(page, "version", "3").inner_text()
    fake_llm.reset()
    await _chat(gw, "Still there?", widget_key="tea-key")
    assert "LIN-V1" in _systems(fake_llm)[-1]
    # AND the publishes are in the audit log
    entries = await _get(gw, owner, "/v1/admin/audit?target_type=prompt")
    assert [e["action"] for e in entries if e["action"].startswith("prompt.")] == [
        "prompt.rolled_back", "prompt.published", "prompt.published"]
    await page.context.close()


async def test_an_admin_edits_the_canned_replies_in_the_widget_settings(
    gateway: RunningGateway, browser: Any,
) -> None:
    owner = await _staff(gateway, "admin", "Owner Zhao")
    page = await _admin_console(browser, gateway, owner, screen="widget")
    canned = page.locator("#canned")
    await canned.wait_for()
    # WHEN the owner adds two canned replies and saves them
    for shortcut, text in (("refund", "Refunds take 3-5 working days."),
                           ("退款", "退款将在 3-5 个工作日内原路退回。")):
        await canned.locator("button[data-action=addCanned]").click()
        line = canned.locator(".canned-row").last
        await line.locator("input[name=shortcut]").fill(shortcut)
        await line.locator("textarea[name=text]").fill(text)
    async with page.expect_response(_put("/v1/admin/settings")) as saved:
        await canned.locator("button[data-action=saveCanned]").click()
    assert (await saved.value).status == 200
    # THEN agents read them, in order
    assert await _get(gateway, owner, "/v1/canned-replies") == [
        {"shortcut": "refund", "text": "Refunds take 3-5 working days."},
        {"shortcut": "退款", "text": "退款将在 3-5 个工作日内原路退回。"}]
    # WHEN the owner then saves the appearance form
    async with page.expect_response(_put("/v1/admin/settings")):
        await page.locator("section.card", has_text="Appearance").locator(
            "button[data-action=save]").click()
    # THEN the canned replies are kept
    assert len(await _get(gateway, owner, "/v1/canned-replies")) == 2
    # WHEN the owner reloads, removes the first and gives the second an invalid shortcut
    await page.reload()
    await canned.locator(".canned-row").nth(1).wait_for()
    assert await canned.locator("input[name=shortcut]").first.input_value() == "refund"
    await canned.locator(".canned-row").first.locator("button[data-action=remove]").click()
    await canned.locator("input[name=shortcut]").first.fill("no spaces")
    async with page.expect_response(_put("/v1/admin/settings")) as refused:
        await canned.locator("button[data-action=saveCanned]").click()
    # THEN the server refuses it and nothing changes
    assert (await refused.value).status == 422
    assert len(await _get(gateway, owner, "/v1/canned-replies")) == 2
    # WHEN the shortcut is fixed and saved
    await canned.locator("input[name=shortcut]").first.fill("refund-zh")
    async with page.expect_response(_put("/v1/admin/settings")):
        await canned.locator("button[data-action=saveCanned]").click()
    # THEN only that reply is left
    assert await _get(gateway, owner, "/v1/canned-replies") == [
        {"shortcut": "refund-zh", "text": "退款将在 3-5 个工作日内原路退回。"}]
    await page.context.close()
