"""👍/👎 under the widget's bot replies, in headless Chromium against a real gateway (offline
engine): a click sends the feedback frame, the server's answer marks the choice, and the
rating is stored with the reply."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.browser.support import TIMEOUT_MS, say
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:widget-feedback:{uuid.uuid4().hex[:8]}:"
    dsn = make_database()
    settings = core_settings(pg_dsn=dsn, redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="fb") as gw:
        gw.dsn = dsn  # type: ignore[attr-defined]
        yield gw


def _ratings(gateway: RunningGateway) -> list[str]:
    with psycopg.connect(gateway.dsn) as conn:  # type: ignore[attr-defined]
        return [r[0] for r in conn.execute("SELECT rating FROM reply_feedback").fetchall()]


async def test_a_visitor_rates_a_reply_down_then_up(browser: Any,
                                                    gateway: RunningGateway) -> None:
    # GIVEN a Chinese-speaking visitor with a bot reply in the widget
    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/")
    await page.locator(".launcher").click()
    await page.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
    await say(page, "怎么退货？")
    reply = page.locator(".row.assistant:not(.streaming)", has=page.locator("button.fb")).first
    down = reply.locator("button.fb[data-rating=down]")
    up = reply.locator("button.fb[data-rating=up]")
    # THEN the reply offers 👍 and 👎, labelled in the visitor's language, neither chosen
    assert await down.get_attribute("aria-label") == "没帮助"
    assert await reply.locator("button.fb.on").count() == 0
    # WHEN the visitor clicks 👎
    await down.click()
    # THEN the server's answer marks it, and the rating is stored
    await reply.locator("button.fb.on[data-rating=down]").wait_for()
    assert _ratings(gateway) == ["down"]
    # WHEN the visitor changes their mind THEN 👍 is marked instead, and stored
    await up.click()
    await reply.locator("button.fb.on[data-rating=up]").wait_for()
    assert await down.get_attribute("class") == "fb"
    assert _ratings(gateway) == ["up"]
    await context.close()
