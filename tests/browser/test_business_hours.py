"""Business hours in headless Chromium against a real gateway: the widget of a closed tenant
says when agents are back (in the visitor's time zone, named) and offers the offline-message
form, a handoff is queued until the opening; the console shows the queue waiting for the
opening with nobody assigned; the admin console edits the hours. Also the reason a visitor may
give with 👎. Screenshots at 375 px and 1280 px are kept in docs/.

The tenant is closed until a date two days ahead (no weekly hours), so nothing depends on the
time of day the tests run."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
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
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:hours:{uuid.uuid4().hex[:8]}:"
    dsn = make_database()
    settings = core_settings(pg_dsn=dsn, redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="hrs") as gw:
        gw.dsn = dsn  # type: ignore[attr-defined]
        yield gw


async def _closed_until_day_after_tomorrow(gateway: RunningGateway) -> datetime:
    """Set the demo tenant's hours: closed but for 09:00-18:00 Shanghai time two days ahead;
    return that opening."""
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=2)
    hours = {"enabled": True, "time_zone": "Asia/Shanghai", "weekly": {d: [] for d in WEEK},
             "dates": [{"date": day.isoformat(),
                        "intervals": [{"start": "09:00", "end": "18:00"}]}]}
    await _put_hours(gateway, hours)
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


async def _put_hours(gateway: RunningGateway, hours: dict[str, Any]) -> None:
    token = await admin_token(gateway, *DEMO_ADMIN)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=gateway.http, headers=headers) as http:
        settings = (await http.get("/v1/admin/settings")).json()
        put = await http.put("/v1/admin/settings", json={**settings, "business_hours": hours})
        assert put.status_code == 200, put.text


def _weekday(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%A")


async def test_a_closed_tenants_widget_says_when_agents_are_back_and_takes_a_message(
    browser: Any, gateway: RunningGateway,
) -> None:
    opens = await _closed_until_day_after_tomorrow(gateway)
    # GIVEN a visitor on a phone whose clock is on UTC, on a page in English
    context = await browser.new_context(viewport={"width": 375, "height": 740},
                                        locale="en-US", timezone_id="UTC",
                                        is_mobile=True, has_touch=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    with host_page(embed(gateway, lang="en")) as site:
        # WHEN they open the widget while the tenant is closed
        await page.goto(site)
        await page.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
        banner = page.locator(".banner.show.closed")
        # THEN it says so, with the opening in the visitor's own time zone, named
        # (09:00 in Shanghai is 01:00 UTC)
        await banner.wait_for()
        text = await banner.inner_text()
        assert "We're closed now — agents are back" in text, text
        assert _weekday(opens) in text and "01:00 UTC" in text, text
        # AND it offers to leave a message
        await banner.locator("button.leave", has_text="Leave a message").click()
        card = page.locator(".card.offline.show")
        await card.locator(".o-name").fill("Mei")
        await card.locator(".o-contact").fill("mei@example.com")
        await card.locator(".o-text").fill("Please call me back about order 1042.")
        await page.screenshot(path=screenshot_path("widget-closed-375"))
        await card.locator(".o-send").click()
        # THEN the message is taken
        await card.locator(".done", has_text="Message sent").wait_for()
        # WHEN the visitor asks for a human anyway
        await say(page, "Hello?")
        await page.locator(".row.assistant:not(.streaming) button.fb").first.wait_for()
        await page.locator("button.human").click()
        # THEN they are queued, told when agents are back, and the chat stays open to write in
        queued = page.locator(".banner.show.closed", has_text="You're in the queue")
        await queued.wait_for()
        queued_text = await queued.inner_text()
        assert _weekday(opens) in queued_text and "01:00 UTC" in queued_text, queued_text
        notice = page.locator(".sys", has_text="You're in the queue")
        await notice.wait_for()
        assert await page.locator("form.compose").is_visible()
        assert await page.locator(".st").inner_text() == "Queued until agents are back"
        await page.screenshot(path=screenshot_path("widget-queued-closed-375"))
    with psycopg.connect(gateway.dsn) as conn:  # type: ignore[attr-defined]
        left = conn.execute("SELECT name, text FROM offline_messages").fetchall()
    assert ("Mei", "Please call me back about order 1042.") in left
    await context.close()


async def test_the_closed_notice_goes_once_the_opening_passes_on_the_page(
    browser: Any, gateway: RunningGateway,
) -> None:
    opens = await _closed_until_day_after_tomorrow(gateway)
    # GIVEN a visitor reading the closed notice, the page's clock under the test's control
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.clock.install()
    with host_page(embed(gateway, lang="zh")) as site:
        await page.goto(site)
        notice = page.locator(".banner.show.closed", has_text="现在是非工作时间")
        await notice.wait_for()
        # WHEN the page's clock passes the opening
        ahead = opens - datetime.now(ZoneInfo("UTC")) + timedelta(minutes=1)
        await page.clock.fast_forward(int(ahead.total_seconds() * 1000))
        # THEN the notice goes without a reload
        await notice.wait_for(state="hidden")
    await context.close()


async def test_the_console_shows_the_queue_waiting_for_the_opening(
    browser: Any, gateway: RunningGateway,
) -> None:
    await _closed_until_day_after_tomorrow(gateway)
    # GIVEN an agent online in the console on a desktop, outside business hours
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/console?tenant=demo")
    await page.fill("input[name=email]", DEMO_ADMIN_EMAIL)
    await page.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator("#conn", has_text="已连接").wait_for()
    # THEN above the lists it says the tenant is closed and when it opens
    note = page.locator("#hours-note")
    await note.wait_for()
    assert "非工作时间" in await note.inner_text() and "09:00" in await note.inner_text()
    async with Visitor(gateway) as visitor:
        # WHEN a visitor asks for a human
        await visitor.say("我要退货")
        await visitor.first("final")
        await visitor.send({"action": "handoff"})
        queued = await visitor.first("state", state="queued")
        assert queued["opens_at"]
        # THEN the conversation waits with its "queued until", though an agent is online
        item = page.locator(f"#list li[data-id='{queued['conversation_id']}']")
        await item.locator(".until", has_text="排队至").wait_for()
        assert "09:00" in await item.locator(".until").inner_text()
        assert not [f for f in visitor.frames if f.get("state") == "agent_joined"]
        await item.click()
        # AND the conversation's own line says it was queued until the opening
        await page.locator("#log .sys", has_text="排队至").wait_for()
        await page.screenshot(path=screenshot_path("console-hours-1280"))
        # WHEN the agent, in early, takes it THEN the visitor is connected to them
        await page.locator("#take").click()
        await visitor.first("state", state="agent_joined")
    await context.close()


async def test_the_admin_console_edits_the_business_hours(
    browser: Any, gateway: RunningGateway,
) -> None:
    await _put_hours(gateway, {"enabled": False})
    # GIVEN an administrator on the business hours screen, in English
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/admin?tenant=demo#hours")
    await page.fill("input[name=email]", DEMO_ADMIN_EMAIL)
    await page.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator("#screen[data-screen=hours] #hours:not([hidden])").wait_for()
    # THEN it shows the tenant's hours: off, with a usual week to start from
    assert not await page.locator("input[name=enabled]").is_checked()
    assert await page.locator("input[name=day-mon]").input_value() == "09:00-18:00"
    # WHEN the admin writes a malformed interval and saves
    await page.locator("input[name=enabled]").check()
    await page.fill("input[name=day-sat]", "10-14")
    await page.click("button[data-action=saveHours]")
    # THEN nothing is sent and the field says what is wrong
    assert not await page.evaluate(
        "document.querySelector('input[name=day-sat]').checkValidity()")
    # WHEN the admin sets Saturday, a late Friday, a holiday and a special Sunday
    await page.fill("input[name=time_zone]", "Europe/Berlin")
    await page.fill("input[name=day-sat]", "10:00-14:00")
    await page.fill("input[name=day-fri]", "09:00-18:00, 20:00-02:00")
    await page.fill("textarea[name=dates]", "2026-12-25\n2026-12-27 10:00-14:00")
    async with page.expect_response(lambda r: r.url.endswith("/v1/admin/settings")
                                    and r.request.method == "PUT") as saved:
        await page.click("button[data-action=saveHours]")
    assert (await saved.value).status == 200
    await page.screenshot(path=str(IMAGES / "admin-hours.png"), full_page=True)
    # THEN the tenant's settings hold them
    token = await admin_token(gateway, *DEMO_ADMIN)
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        hours = (await http.get("/v1/admin/settings",
                                headers={"authorization": f"Bearer {token}"})).json()[
            "business_hours"]
    assert hours["enabled"] and hours["time_zone"] == "Europe/Berlin"
    assert hours["weekly"]["fri"] == [{"start": "09:00", "end": "18:00"},
                                      {"start": "20:00", "end": "02:00"}]
    assert hours["weekly"]["sat"] == [{"start": "10:00", "end": "14:00"}]
    assert hours["dates"] == [{"date": "2026-12-25", "intervals": []},
                              {"date": "2026-12-27",
                               "intervals": [{"start": "10:00", "end": "14:00"}]}]
    # WHEN the admin names a zone that does not exist
    await page.fill("input[name=time_zone]", "Mars/Olympus")
    async with page.expect_response(lambda r: r.url.endswith("/v1/admin/settings")
                                    and r.request.method == "PUT") as refused:
        await page.click("button[data-action=saveHours]")
    # THEN the server refuses it and the console says why
    assert (await refused.value).status == 422
    await page.locator("#toast", has_text="unknown time zone").wait_for()
    await context.close()
    await _put_hours(gateway, {"enabled": False})


async def test_a_visitor_says_why_a_reply_did_not_help(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN a visitor with a bot reply in the widget
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    with host_page(embed(gateway, lang="en")) as site:
        await page.goto(site)
        await page.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
        await say(page, "How long does shipping take?")
        reply = page.locator(".row.assistant:not(.streaming)",
                             has=page.locator("button.fb")).first
        # WHEN they click 👎
        await reply.locator("button.fb[data-rating=down]").click()
        # THEN the rating is saved at once and a short form asks why (optional)
        await reply.locator("button.fb.on[data-rating=down]").wait_for()
        why = reply.locator(".why")
        await why.locator("h5", has_text="What went wrong?").wait_for()
        # WHEN they pick a reason, add a few words and send
        await why.locator(".chips button", has_text="Wrong answer").click()
        await why.locator("textarea").fill("It says 3 days, my order took 9")
        await page.screenshot(path=screenshot_path("widget-feedback-reason-375"))
        await why.locator("button.w-send").click()
        await reply.locator(".why", has_text="Thanks").wait_for()
        conversation_id = await page.evaluate("window.__kefuWidget.state.conversationId")
    # THEN the reason is stored with the rating
    expected = "Wrong answer — It says 3 days, my order took 9"
    for _ in range(100):
        with psycopg.connect(gateway.dsn) as conn:  # type: ignore[attr-defined]
            rows = conn.execute("SELECT rating, reason FROM reply_feedback").fetchall()
        if ("down", expected) in rows:
            break
        await page.wait_for_timeout(100)
    assert ("down", expected) in rows
    await context.close()
    # AND the admin console's transcript shows it under the reply
    admin = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = await admin.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/admin?tenant=demo#conversations")
    await page.fill("input[name=email]", DEMO_ADMIN_EMAIL)
    await page.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator(f"tr[data-id='{conversation_id}']").click()
    shown = page.locator("#transcript .line.assistant .feedback.down")
    await shown.wait_for()
    assert await shown.inner_text() == f"👎 {expected}"
    await admin.close()
