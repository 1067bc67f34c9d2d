"""The widget and the agent console in headless Chromium against a real gateway.

Debian's chromium (``scripts/bootstrap --browser``) driven by Playwright; one browser per
module, one context per person. Screenshots go to /tmp/kefu-browser-*.png for a human look.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.support.core import core_settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway, run_gateway

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:browser:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with run_gateway(settings, replica_id="browser") as running:
        yield running
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def slow_gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    """A gateway whose model streams ten pieces a second: replies take seconds."""
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:browser-slow:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with FakeOpenAI(tokens_per_s=10, first_token_ms=50) as fake:
        engines = [{"name": "slow", "provider": "slow", "base_url": fake.base_url,
                    "model": "fake", "api_keys": ["sk-test"]}]
        # A generous first-token deadline: a busy machine must not turn this into a fallback.
        env = {"ENGINES": json.dumps(engines), "CACHE_TTL_S": "0", "FIRST_TOKEN_TIMEOUT_S": "30"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # read once, when the gateway builds its router
        try:
            with run_gateway(settings, replica_id="browser-slow") as running:
                assert running.gateway.deps is not None
                assert running.gateway.deps.router is not None  # built now, with ENGINES set
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                yield running
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@contextlib.contextmanager
def _host_page(html: str) -> Iterator[str]:
    """A company's page on another origin (another port) that embeds the widget."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/shop"
    finally:
        server.shutdown()
        server.server_close()


class Frames:
    """Every WebSocket frame the page received, parsed."""

    def __init__(self, page: Any) -> None:
        self.items: list[dict[str, Any]] = []
        self._events: dict[str, asyncio.Event] = {}
        page.on("websocket", self._attach)

    def _event(self, kind: str) -> asyncio.Event:
        return self._events.setdefault(kind, asyncio.Event())

    async def wait(self, kind: str, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            await self._event(kind).wait()

    def _attach(self, ws: Any) -> None:
        ws.on("framereceived", self._add)

    def _add(self, payload: Any) -> None:
        try:
            frame = json.loads(payload)
        except (ValueError, TypeError):
            return
        self.items.append(frame)
        self._event(str(frame.get("type"))).set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.items if f.get("type") == kind]


async def _visitor_page(browser: Any, gateway: RunningGateway) -> tuple[Any, Any, Frames]:
    context = await browser.new_context(viewport={"width": 1200, "height": 800}, locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    frames = Frames(page)
    await page.goto(f"{gateway.http}/")
    await page.locator(".launcher").click()
    await page.locator(".panel.open").wait_for()
    await page.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
    return context, page, frames


async def _say(page: Any, text: str) -> None:
    box = page.locator("form.compose textarea")
    await box.fill(text)
    await box.press("Enter")


async def _wait_last_bot_reply(page: Any, count: int) -> str:
    rows = page.locator(".row.assistant:not(.streaming) .b")
    await page.wait_for_function(
        "n => document.querySelector('#kefu-widget').shadowRoot"
        ".querySelectorAll('.row.assistant:not(.streaming)').length >= n", arg=count)
    return str(await rows.nth(count - 1).inner_text())


async def test_visitor_chats_asks_for_a_human_agent_takes_over_and_hands_back(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN a visitor on the sample host page with the widget open
    v_context, visitor, v_frames = await _visitor_page(browser, gateway)
    assert await visitor.locator(".row.assistant .b").first.inner_text()  # the greeting
    # WHEN they ask a question
    await _say(visitor, "你好，怎么退货？")
    reply = await _wait_last_bot_reply(visitor, 2)
    # THEN the reply streamed in as deltas and the bubble shows the whole final text
    finals = v_frames.of("final")
    assert v_frames.of("delta") and finals and finals[-1]["text"] == reply
    await visitor.screenshot(path="/tmp/kefu-browser-1-visitor-bot.png")

    # GIVEN an agent signed in to the console in a second browser context
    a_context = await browser.new_context(viewport={"width": 1400, "height": 850},
                                          locale="zh-CN")
    agent = await a_context.new_page()
    agent.set_default_timeout(TIMEOUT_MS)
    await agent.goto(f"{gateway.http}/console?tenant=demo")  # the organisation, prefilled
    await agent.fill("input[name=email]", DEMO_ADMIN_EMAIL)
    await agent.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
    await agent.click("#login-form button[type=submit]")
    await agent.locator("#conn", has_text="已连接").wait_for()
    # WHEN the visitor asks for a human
    await visitor.locator("button.human").click()
    # THEN the agent (online, with capacity) gets it, and the visitor sees the agent join
    await visitor.locator(".st", has_text="已接入").wait_for()
    await agent.locator("#conv-state", has_text="人工接待中").wait_for()
    await agent.locator("#log .msg.visitor", has_text="怎么退货").wait_for()
    # WHEN the agent asks for a suggested reply (this tenant has no knowledge base, so the
    # offline engine has nothing to answer from)
    await agent.click("#suggest")
    # THEN the console says there is no suggestion and offers no "don't know" draft
    await agent.locator("#toast", has_text="暂时没有建议").wait_for()
    assert await agent.input_value("#text") == ""
    assert await agent.is_enabled("#suggest")
    # WHEN the agent writes a reply and sends it
    await agent.fill("#text", "您好，我是人工客服，请提供订单号。")
    await agent.press("#text", "Enter")
    # THEN the visitor sees the agent's message
    await visitor.locator(".row.agent .b", has_text="请提供订单号").wait_for()
    await _say(visitor, "订单号 A123")
    await agent.locator("#log .msg.visitor", has_text="A123").wait_for()
    await agent.fill("#note-text", "客户要求退货")
    await agent.click("#note-form button")
    await agent.locator("#notes li", has_text="客户要求退货").wait_for()
    await visitor.screenshot(path="/tmp/kefu-browser-2-visitor-agent.png")
    await agent.screenshot(path="/tmp/kefu-browser-3-console.png")
    # AND while the human owns it the bot stays silent
    assert len(v_frames.of("final")) == len(finals)
    # WHEN the agent hands it back to the bot
    await agent.click("#release")
    await visitor.locator(".sys", has_text="智能助手继续为您服务").wait_for()
    await _say(visitor, "谢谢，还有运费问题")
    await _wait_last_bot_reply(visitor, 3)
    # THEN the bot answers again; WHEN the visitor ends the chat they can rate it
    await visitor.locator("button.end").click()
    await visitor.locator(".end-yes").click()  # ending asks first
    await visitor.locator(".card.rate.show").wait_for()
    await visitor.locator(".stars button").nth(4).click()
    await visitor.locator(".r-send").click()
    await visitor.locator(".card.rate h4", has_text="感谢").wait_for()
    await visitor.screenshot(path="/tmp/kefu-browser-4-visitor-rated.png")
    assert not v_frames.of("note") and not v_frames.of("suggestion")
    await a_context.close()
    await v_context.close()


async def _drop_server_side(gateway: RunningGateway, conversation_id: str) -> int:
    """Close the visitor's sockets from the server side (the management API's DELETE)."""
    prefix = gateway.gateway.settings.redis_prefix
    client = redis.Redis.from_url(gateway.gateway.settings.redis_url or "")
    members = [m.decode() for m in client.smembers(f"{prefix}conv:{conversation_id}:conns")]
    client.close()
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        for connection_id in members:
            await http.delete(f"/prod/@connections/{connection_id}")
    return len(members)


async def test_reconnects_mid_reply_and_resends_the_outbox_after_going_offline(
    browser: Any, slow_gateway: RunningGateway,
) -> None:
    gateway = slow_gateway
    context, visitor, frames = await _visitor_page(browser, gateway)
    # GIVEN a reply that is streaming (the model sends ten pieces a second)
    await _say(visitor, "请详细介绍一下你们的退货政策和运费规则")
    await frames.wait("delta")
    state = await visitor.evaluate("window.__kefuWidget.state")
    # WHEN the connection is dropped by the server mid-reply
    assert await _drop_server_side(gateway, state["conversationId"]) >= 1
    assert not frames.of("final"), "the drop must happen while the reply streams"
    before = len(frames.of("delta"))
    # THEN the widget reconnects, resumes from its last sequence number and shows the whole
    # reply exactly once
    await visitor.wait_for_function("window.__kefuWidget.state.connected")
    reply = await _wait_last_bot_reply(visitor, 2)
    syncs = [f for f in frames.of("history")]
    assert len(syncs) >= 2
    history = await _transcript(gateway, state["conversationId"])
    assert reply == history[-1]["text"] and reply.startswith("OK. ")
    assert await visitor.locator(".row.visitor").count() == 1
    assert await visitor.locator(".row.assistant").count() == 2  # the greeting and the reply
    assert len(frames.of("delta")) > before  # the rest streamed to the new connection

    # WHEN the network goes away and the visitor writes anyway
    await context.set_offline(True)
    await _drop_server_side(gateway, state["conversationId"])
    await visitor.wait_for_function("!window.__kefuWidget.state.connected")
    await _say(visitor, "离线时发的消息")
    await visitor.locator(".row.visitor.pending").wait_for()
    assert (await visitor.evaluate("window.__kefuWidget.state"))["outbox"] == 1
    await visitor.screenshot(path="/tmp/kefu-browser-5-offline.png")
    # AND the page is reloaded while the chat service is still unreachable
    async def unreachable(route: Any) -> None:
        await route.abort()

    await context.route("**/v1/visitor-token", unreachable)
    await context.set_offline(False)
    await visitor.reload()
    await visitor.locator(".row.visitor.pending", has_text="离线时发的消息").wait_for()
    # WHEN the service is reachable again
    await context.unroute("**/v1/visitor-token", unreachable)
    await visitor.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected",
                                    timeout=30_000)
    # THEN the message kept in the outbox is sent once (same client_msg_id) and answered
    await visitor.wait_for_function("window.__kefuWidget.state.outbox === 0")
    await _wait_last_bot_reply(visitor, 3)
    history = await _transcript(gateway, state["conversationId"])
    sent = [m for m in history if m["role"] == "visitor"]
    assert [m["text"] for m in sent] == ["请详细介绍一下你们的退货政策和运费规则", "离线时发的消息"]
    assert await visitor.locator(".row.visitor").count() == 2
    # AND the page shows the conversation in order
    shown = await visitor.locator(".row.visitor .b").all_inner_texts()
    assert shown == ["请详细介绍一下你们的退货政策和运费规则", "离线时发的消息"]
    await visitor.screenshot(path="/tmp/kefu-browser-6-reconnected.png")
    await context.close()


async def _transcript(gateway: RunningGateway, conversation_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        login = await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD})
        token = login.json()["token"]
        for _ in range(100):
            body = (await http.get(f"/v1/conversations/{conversation_id}",
                                   headers={"authorization": f"Bearer {token}"})).json()
            messages: list[dict[str, Any]] = body["messages"]
            if messages and messages[-1]["status"] != "streaming":
                return messages
            await asyncio.sleep(0.1)
    raise AssertionError("the reply never finished")


async def test_widget_embedded_cross_origin_in_english_takes_an_offline_message(
    browser: Any, gateway: RunningGateway,
) -> None:
    # GIVEN a company page on another origin embedding the widget: English, left, green
    page_html = (
        "<!doctype html><html><head><title>Shop</title><style>body{font:16px serif;"
        "background:#fffbe6} button{all:unset}</style></head><body><h1>Example shop</h1>"
        f'<script src="{gateway.http}/web/widget.js" data-widget-key="demo-key" '
        'data-lang="en" data-color="#0f9d58" data-position="left" data-open="true" '
        'data-greeting="Hello from Example shop!" async></script></body></html>'
    )
    context = await browser.new_context(viewport={"width": 1000, "height": 760})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    with _host_page(page_html) as url:
        await page.goto(url)
    await page.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
    assert not page.url.startswith(gateway.http)
    # THEN the widget is themed and speaks English, unaffected by the page's CSS
    assert await page.locator(".row.assistant .b").first.inner_text() == "Hello from Example shop!"
    panel = page.locator(".panel")
    assert await panel.evaluate("e => getComputedStyle(e).left") == "20px"
    assert await page.locator("button.human").inner_text() == "Talk to a human"
    # WHEN the visitor asks for a human while nobody is online
    await page.locator("button.human").click()
    await page.locator(".banner.show", has_text="No agent is online").wait_for()
    await page.locator(".banner button.leave").click()
    await page.locator(".o-name").fill("Ann")
    await page.locator(".o-contact").fill("ann@example.com")
    await page.locator(".o-text").fill("Please call me back about order 778")
    await page.locator(".o-send").click()
    # THEN the message is left for the team
    await page.locator(".card.offline .done", has_text="Message sent").wait_for()
    await page.screenshot(path="/tmp/kefu-browser-7-english-offline.png")
    await context.close()
    # AND an agent finds it in the console, in English
    console_context = await browser.new_context(viewport={"width": 1400, "height": 850},
                                                locale="en-US")
    agent = await console_context.new_page()
    agent.set_default_timeout(TIMEOUT_MS)
    await agent.goto(f"{gateway.http}/console")
    await agent.fill("input[name=tenant]", "demo")
    await agent.fill("input[name=email]", DEMO_ADMIN_EMAIL)
    await agent.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
    await agent.click("#login-form button[type=submit]")
    await agent.locator("#conn", has_text="Connected").wait_for()
    # (the queued conversation is assigned to the agent as soon as they come online)
    await agent.locator("#conv-state", has_text="Handled by a human").wait_for()
    await agent.click(".tabs button[data-tab=offline]")
    await agent.locator("#list li", has_text="order 778").wait_for()
    await agent.locator("#list li", has_text="order 778").click()
    await agent.locator("#log .sys", has_text="asked for a human").wait_for()
    await agent.screenshot(path="/tmp/kefu-browser-8-console-offline.png")
    await console_context.close()
