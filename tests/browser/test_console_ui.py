"""The agent console as an agent sees it, in headless Chromium against a real gateway: readable
names for anonymous visitors, translated handoff reasons, message times and waiting times,
sound and tab-title alerts with a mute switch, and a layout that works down to a tablet.
Screenshots are kept in docs/screenshots/."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.browser.support import (
    DEMO_ADMIN,
    TIMEOUT_MS,
    Visitor,
    admin_token,
    embed,
    host_page,
    say,
    screenshot_path,
)
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

pytestmark = pytest.mark.browser
LABEL = re.compile(r"^\w{1,2}色\w{1,3} #[0-9A-F]{4}$")  # 蓝色狐狸 #3F2A
CLOCK = re.compile(r"\d\d:\d\d$")


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:console-ui:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="cui") as gw:
        yield gw


async def _signed_in(browser: Any, gateway: RunningGateway, width: int, height: int) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/console?tenant=demo")
    await page.fill("input[name=email]", DEMO_ADMIN_EMAIL)
    await page.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator("#conn", has_text="已连接").wait_for()
    return page


async def _alerts(page: Any) -> list[dict[str, Any]]:
    return list(await page.evaluate("window.__kefuConsole.alerts"))


async def test_waiting_visitors_have_names_reasons_times_and_alert_the_agent(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN an agent in the console who is away (so a handoff waits in the queue)
    page = await _signed_in(browser, gateway, 1280, 800)
    await page.select_option("#presence", "away")
    await page.locator("#mute[aria-pressed=false]").wait_for()
    # AND who is looking at another tab
    await page.evaluate("document.hasFocus = () => false")
    async with Visitor(gateway) as visitor:
        # WHEN an anonymous visitor writes and asks for a human
        await visitor.say("我的快递三天没动了")
        await visitor.first("final")
        await visitor.send({"action": "handoff"})
        await visitor.first("state", state="queued")
        # THEN the waiting list names them with a friendly label, says how long they wait
        # and why, and the agent is alerted with a sound and in the tab's title
        item = page.locator("#list li").first
        await item.locator(".wait", has_text="已等待").wait_for()
        label = await item.locator(".name").inner_text()
        assert LABEL.match(label), label
        assert label.endswith("#" + visitor.visitor_id[-4:].upper())
        assert "访客点击转人工" in await item.locator(".wait").inner_text()
        alerts = await _alerts(page)
        assert [a["kind"] for a in alerts] == ["queued"] and alerts[0]["sound"]
        assert (await page.title()).startswith("(1) ")
        # WHEN the agent opens it
        await item.click()
        # THEN the title is the same label, the state says why in words, every message has a time
        await page.locator("#conv-title", has_text=label).wait_for()
        state = await page.locator("#conv-state").inner_text()
        assert "排队等待人工" in state and "访客点击转人工" in state and "button" not in state
        times = await page.locator("#log time").all_inner_texts()
        assert len(times) >= 3 and all(CLOCK.search(t) for t in times), times
        await page.screenshot(path=screenshot_path("console-1280"))
        # WHEN the agent mutes the sound and the visitor writes again
        await page.click("#mute")
        await page.locator("#mute[aria-pressed=true]").wait_for()
        await visitor.say("还在吗？")
        # THEN the new message alerts in the title only
        await page.wait_for_function("window.__kefuConsole.alerts.length === 2")
        alerts = await _alerts(page)
        assert alerts[1]["kind"] == "message" and not alerts[1]["sound"]
        assert (await page.title()).startswith("(2) ")
        # WHEN the agent comes back to the tab
        await page.evaluate("document.hasFocus = () => true;"
                            "window.dispatchEvent(new Event('focus'))")
        # THEN the title is plain again, and the mute choice survives a reload
        assert await page.title() == "Kefu 客服工作台"
        await page.reload()
        await page.locator("#mute[aria-pressed=true]").wait_for()
        # AND the label is stable: the same visitor, the same name
        await page.locator("#list li .name", has_text=label).wait_for()
    await page.context.close()


async def test_the_console_fits_a_tablet_with_the_customer_panel_as_a_drawer(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN an agent on a 768 px wide tablet with a conversation open
    page = await _signed_in(browser, gateway, 768, 1024)
    async with Visitor(gateway) as visitor:
        await visitor.say("How long does shipping take?")
        await visitor.first("final")
        await page.click(".tabs button[data-tab=bot]")
        await page.locator("#list li").first.click()
        await page.locator("#log .msg.visitor", has_text="shipping").wait_for()
        # THEN nothing runs off the screen: the list and the conversation share it
        assert await page.evaluate("document.documentElement.scrollWidth") <= 768
        assert await page.locator("#list").is_visible()
        assert await page.locator("#log").is_visible()
        box = await page.locator("#compose, #take").first.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 768
        await page.screenshot(path=screenshot_path("console-768"))
        # AND the customer panel is a drawer behind a button
        assert await page.locator("#side").is_hidden()
        await page.click("#toggle-side")
        await page.locator("#side").wait_for()
        await page.click("#close-side")
        await page.locator("#side").wait_for(state="hidden")
    await page.context.close()


async def test_a_new_conversation_shows_up_live_with_the_visitors_page_as_text(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN an agent looking at the bot-handled list
    page = await _signed_in(browser, gateway, 1280, 800)
    await page.click(".tabs button[data-tab=bot]")
    listed = "els => els.map(e => e.dataset.id)"
    before = await page.locator("#list li").evaluate_all(listed)
    # AND a visitor on a shop page whose title carries markup (page titles are the page's)
    title = '<img src=x onerror="window.__pwned=1"> Sale'
    visitor = await (await browser.new_context(locale="en-US")).new_page()
    visitor.set_default_timeout(TIMEOUT_MS)
    with host_page(embed(gateway, title=title.replace("<", "&lt;"))) as url:
        await visitor.goto(url)
        await visitor.wait_for_function(
            "window.__kefuWidget && window.__kefuWidget.state.connected")
        # WHEN the visitor writes
        await say(visitor, "Do you ship to Berlin?")
        await visitor.locator(".row.visitor .dl.ok").wait_for()
        # THEN the conversation appears in the agent's list without a reload
        await page.locator("#list li").nth(len(before)).wait_for()
        # (found by its id: its preview turns into the assistant's reply when that comes)
        new = [i for i in await page.locator("#list li").evaluate_all(listed) if i not in before]
        assert len(new) == 1, new
        await page.locator(f'#list li[data-id="{new[0]}"]').click()
        # AND its page, browser, language and time zone show beside it, the title as text
        visit = page.locator("#customer .kv.visit")
        await visit.locator(".page b", has_text="Sale").wait_for()
        assert await visit.locator(".page b").inner_text() == title
        assert await visit.locator(".page a").get_attribute("href") == url
        text = await visit.inner_text()
        assert "Chrome" in text and "en-US" in text
        assert await page.locator("#customer img").count() == 0
        await page.screenshot(path=screenshot_path("console-1280-visit"))
    assert await page.evaluate("window.__pwned === undefined")
    await visitor.context.close()
    await page.context.close()


async def test_an_agent_inserts_a_canned_reply_with_a_slash_shortcut(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN canned replies set by an admin, kept when a client saves settings without them
    canned = [{"shortcut": "refund", "text": "退款将在 3-5 个工作日内原路退回。<b>谢谢</b>"},
              {"shortcut": "hours", "text": "我们的服务时间是 9:00-21:00。"}]
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        admin = {"authorization": "Bearer " + await admin_token(gateway, *DEMO_ADMIN)}
        settings = (await http.get("/v1/admin/settings", headers=admin)).json()
        put = await http.put("/v1/admin/settings", headers=admin,
                             json={**settings, "canned_replies": canned})
        assert put.status_code == 200, put.text
        settings.pop("canned_replies")
        await http.put("/v1/admin/settings", headers=admin, json=settings)
        assert (await http.get("/v1/canned-replies", headers=admin)).json() == canned
        # AND a visitor's token cannot read them
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})).json()
        denied = await http.get("/v1/canned-replies",
                                headers={"authorization": f"Bearer {visitor['token']}"})
        assert denied.status_code in (401, 403)
    page = await _signed_in(browser, gateway, 1280, 800)
    async with Visitor(gateway) as guest:
        await guest.say("我要退款")
        await guest.first("final")
        # AND the agent has taken the visitor's conversation over
        await page.click(".tabs button[data-tab=bot]")
        await page.locator("#list li").first.click()  # the newest activity comes first
        await page.locator("#log .msg.visitor", has_text="我要退款").wait_for()
        await page.click("#take")
        await page.locator("#compose").wait_for()
        # WHEN the agent types "/ref"
        await page.fill("#text", "/ref")
        await page.dispatch_event("#text", "input")
        # THEN the matching reply is offered, its text shown as text
        offer = page.locator("#canned li.on")
        await offer.wait_for()
        assert await offer.locator("b").inner_text() == "/refund"
        assert "<b>谢谢</b>" in await offer.locator("span").inner_text()
        # WHEN they press Enter, then Enter again
        await page.press("#text", "Enter")
        assert await page.input_value("#text") == canned[0]["text"]
        await page.press("#text", "Enter")
        # THEN the visitor gets the canned reply
        got = await guest.first("message", role="agent")
        assert got["text"] == canned[0]["text"]
    await page.context.close()



@pytest.mark.parametrize("width", [1280, 768])
async def test_the_conversation_closed_line_is_centred_like_the_other_system_lines(
    browser: Any, gateway: RunningGateway, width: int,
) -> None:
    # GIVEN an agent who took a visitor's conversation over (a "joined" system line)
    page = await _signed_in(browser, gateway, width, 800)
    async with Visitor(gateway) as guest:
        await guest.say("你好")
        await guest.first("final")
        await page.click(".tabs button[data-tab=bot]")
        await page.locator("#list li").first.click()
        await page.locator("#log .msg.visitor", has_text="你好").wait_for()
        await page.click("#take")
        await page.locator("#compose").wait_for()
        # WHEN the visitor ends the conversation
        await guest.send({"action": "end"})
        await page.locator("#log .sys", has_text="对话已结束").wait_for()
        # THEN the 「对话已结束」 line, its time included, is centred in the log like the
        # "joined" line (within a pixel)
        centres = await page.evaluate("""() => {
            const log = document.getElementById('log').getBoundingClientRect();
            return [...document.querySelectorAll('#log .sys')].map(n => {
                const a = n.firstChild.getBoundingClientRect();
                const b = n.lastChild.getBoundingClientRect();
                const centre = (a.left + b.right) / 2 - (log.left + log.right) / 2;
                return [n.firstChild.textContent, centre];
            });
        }""")
    assert [text for text, _ in centres] == ["Demo admin 已接入", "对话已结束"], centres
    assert all(abs(offset) <= 1 for _, offset in centres), centres
    await page.context.close()
