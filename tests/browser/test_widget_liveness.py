"""Dead connections in the widget, in headless Chromium against a real gateway: the network
going away (Chromium's offline emulation) and a path that stalls without closing (a TCP proxy
that stops forwarding). The widget must notice, say so, mark what was not acknowledged as not
sent with a retry, reconnect, and still store every message exactly once."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.support import (
    TIMEOUT_MS,
    StallingProxy,
    embed,
    host_page,
    say,
    screenshot_path,
    transcript,
)
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

pytestmark = pytest.mark.browser
# Short liveness deadlines so a dead connection is found within seconds.
FAST = 'data-lang="en" data-ping-interval="3" data-reply-timeout="2"'
CONNECTED = "window.__kefuWidget && window.__kefuWidget.state.connected"


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:widget-live:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="live") as gw:
        yield gw


async def _chatting(page: Any, url: str) -> str:
    """Open the page, say hello, wait for the answer; the conversation's id."""
    await page.goto(url)
    await page.wait_for_function(CONNECTED)
    await say(page, "hello")
    await page.locator(".row.visitor .dl.ok").wait_for()
    await page.locator(".row.assistant:not(.streaming)").nth(1).wait_for()
    return str(await page.evaluate("window.__kefuWidget.state.conversationId"))


async def _visitor_texts(gateway: RunningGateway, conversation_id: str) -> list[str]:
    return [m["text"] for m in await transcript(gateway, conversation_id) if m["role"] == "visitor"]


async def test_the_network_going_away_is_shown_and_the_message_goes_out_once_it_is_back(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN a visitor on a phone chatting
    context = await browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    with host_page(embed(gateway, attrs=FAST)) as url:
        conversation_id = await _chatting(page, url)
        # WHEN the network goes away
        await context.set_offline(True)
        # THEN the header says the widget is reconnecting, no longer "online"
        await page.locator(".panel.down .st", has_text="reconnecting").wait_for()
        await page.locator(".netbar", has_text="Connection lost").wait_for()
        assert not await page.evaluate("window.__kefuWidget.state.connected")
        # WHEN the visitor writes anyway
        await say(page, "are you there?")
        # THEN the message is first sending, then marked not sent, with a retry
        failed = page.locator(".row.visitor.failed", has_text="are you there?")
        await failed.locator(".dl.bad", has_text="Not sent").wait_for()
        assert await failed.locator("button.retry").is_visible()
        assert (await page.evaluate("window.__kefuWidget.state"))["outbox"] == 1
        await page.screenshot(path=screenshot_path("widget-375-offline"))
        # WHEN the network is back
        await context.set_offline(False)
        # THEN the widget reconnects by itself, the message is delivered and answered
        await page.locator(".row.visitor", has_text="are you there?").locator(
            ".dl.ok").wait_for()
        await page.locator(".row.assistant:not(.streaming)").nth(2).wait_for()
        await page.wait_for_function("window.__kefuWidget.state.outbox === 0")
        assert not await page.locator(".panel.down").count()
        assert await page.locator(".netbar").is_hidden()
        # AND it was stored exactly once
        assert await _visitor_texts(gateway, conversation_id) == ["hello", "are you there?"]
        assert await page.locator(".row.visitor").count() == 2
    await context.close()


async def test_a_connection_that_stalls_without_closing_is_replaced(
    browser: Any, gateway: RunningGateway,
) -> None:
    async with StallingProxy(gateway.port) as proxy:
        # GIVEN a visitor chatting through a network path that will stall
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        attrs = f'{FAST} data-ws="{proxy.ws}" data-api="{gateway.http}"'
        with host_page(embed(gateway, attrs=attrs)) as url:
            conversation_id = await _chatting(page, url)
            # WHEN the path stops carrying anything, without closing (new connections too)
            proxy.stall()
            await say(page, "still there?")
            # THEN the unanswered message is marked not sent, the widget stops calling itself
            # online and tries to reconnect, though the browser never saw the socket close
            failed = page.locator(".row.visitor.failed", has_text="still there?")
            await failed.locator("button.retry").wait_for()
            await page.locator(".panel.down .st", has_text="reconnecting").wait_for()
            assert proxy.frozen, "the old connection is held open, not closed"
            await page.screenshot(path=screenshot_path("widget-1280-stalled"))
            # WHEN the visitor presses retry while the path is still stalled
            await failed.locator("button.retry").click()
            # THEN the message is sending again on a fresh attempt, and fails again in time
            await page.locator(".row.visitor.pending", has_text="still there?").wait_for()
            await failed.locator("button.retry").wait_for()
            # WHEN the path works again
            proxy.resume()
            # THEN the widget's next attempt carries the message: delivered and answered, once
            await page.locator(".row.visitor", has_text="still there?").locator(
                ".dl.ok").wait_for(timeout=45_000)
            await page.wait_for_function(CONNECTED)
            await page.locator(".row.assistant:not(.streaming)").nth(2).wait_for()
            assert await _visitor_texts(gateway, conversation_id) == ["hello", "still there?"]
            assert await page.locator(".row.visitor").count() == 2
        await context.close()
