"""The widget as a visitor sees it on a phone and on a desktop, in headless Chromium against a
real gateway: its language, full-screen layout, times and delivery marks, the agent in the
header, the typing dots and ending a chat. Screenshots are kept in docs/screenshots/."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.browser.support import (
    TIMEOUT_MS,
    Agent,
    Frames,
    admin_token,
    embed,
    host_page,
    say,
    screenshot_path,
)
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

pytestmark = pytest.mark.browser
CLOCK = re.compile(r"^\d\d:\d\d$")


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:widget-ui:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="ui") as gw:
        yield gw


async def test_on_a_phone_the_widget_fills_the_screen_in_the_browsers_language(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN an English-speaking visitor on a phone, on the bilingual demo page (data-lang="auto")
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="en-US",
                                        is_mobile=True, has_touch=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/")
    # WHEN they open the chat
    await page.locator(".launcher").click()
    await page.locator(".panel.open").wait_for()
    await page.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
    # THEN it speaks English and covers the whole screen; the launcher is out of the way
    assert await page.locator("button.human").inner_text() == "Talk to a human"
    box = await page.locator(".panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 375, "height": 740}
    assert await page.locator(".launcher").is_hidden()
    # WHEN they ask something
    await say(page, "How long does shipping take?")
    # THEN their message is marked delivered once stored, and every bubble shows its time
    mine = page.locator(".row.visitor").first
    await mine.locator(".meta .dl.ok", has_text="Delivered").wait_for()
    await page.locator(".row.assistant:not(.streaming)").nth(1).wait_for()
    times = await page.locator(".row .meta time").all_inner_texts()
    assert len(times) == 3 and all(CLOCK.match(t) for t in times), times
    await page.screenshot(path=screenshot_path("widget-375"))
    # AND closing it brings the launcher back
    await page.locator("button.x").click()
    await page.locator(".launcher").wait_for()
    await context.close()


async def test_on_a_desktop_the_agent_shows_in_the_header_and_ending_asks_first(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN a Chinese page (<html lang="zh-CN">) visited with an English browser, and an agent
    # online whose name carries markup (names are the tenant's data, shown as text)
    admin = await admin_token(gateway, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD)
    hostile = 'Ann <img src=x onerror="window.__pwned=1">'
    agent = await Agent.create(gateway, admin, hostile)
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    frames = Frames(page)
    async with agent:
        with host_page(embed(gateway, lang="zh-CN", attrs='data-lang="auto"')) as url:
            await page.goto(url)
        await page.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
        # THEN the widget follows the page's language and floats as a card
        assert await page.locator("button.human").inner_text() == "转人工"
        box = await page.locator(".panel").bounding_box()
        assert box is not None and box["width"] == 370 and box["x"] > 800
        # WHEN the visitor writes and asks for a human
        await say(page, "你好")
        await page.locator(".row.visitor .dl.ok").wait_for()
        await page.locator("button.human").click()
        assigned = await agent.first("assigned")
        conversation_id = assigned["conversation_id"]
        # THEN the agent's name and initial replace the company's in the header, as text
        await page.locator("header .name", has_text="Ann").wait_for()
        assert await page.locator("header .name").inner_text() == hostile
        assert await page.locator("header .av").inner_text() == "A"
        assert await page.locator("header img, .log img").count() == 0
        # WHEN the agent types
        await agent.send({"action": "typing", "conversation_id": conversation_id})
        # THEN the visitor sees the animated dots and who is typing
        await page.locator(".typing.show .dots").wait_for()
        assert "Ann" in await page.locator(".typing .tw").inner_text()
        await agent.send({"action": "reply", "conversation_id": conversation_id,
                          "client_msg_id": "a-1", "text": "您好，我是 **Ann**，有什么可以帮您？"})
        await page.locator(".row.agent .b strong", has_text="Ann").wait_for()
        assert await page.locator(".row.agent .meta time").count() == 1
        await page.screenshot(path=screenshot_path("widget-1280"))
        # WHEN the visitor clicks "end chat" and then changes their mind
        await page.locator("button.end").click()
        await page.locator(".card.confirm.show").wait_for()
        await page.locator(".c-cancel").click()
        # THEN nothing ended
        await page.locator(".card.confirm.show").wait_for(state="hidden")
        assert not [f for f in frames.of("state") if f["state"] == "closed"]
        assert await page.locator("form.compose").is_visible()
        # WHEN they end it and confirm
        await page.locator("button.end").click()
        await page.locator(".end-yes").click()
        # THEN the chat is closed, they are asked for a rating and the header is the company's
        await page.locator(".card.rate.show").wait_for()
        await page.locator("header .name", has_text="在线客服").wait_for()
    assert await page.evaluate("window.__pwned === undefined")
    await context.close()
