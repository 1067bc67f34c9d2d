"""Markdown in assistant and agent messages, in headless Chromium.

The renderer (web/markdown.js) on its own, then a reply the model streams in Markdown, with
HTML, a script and a javascript: link inside, as the visitor's widget and the agent console
show it. Screenshots go to /tmp/kefu-browser-*.png for a human look.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kefu_core.infra.db import open_pool
from kefu_core.product.tenants.agents import Agent
from tests.browser.support import ARGS, CHROMIUM
from tests.browser.test_widget_console import TIMEOUT_MS, Frames, _host_page
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway
from tests.support.production import production_settings
from tests.support.staff import make_staff

pytestmark = pytest.mark.browser

WEB = Path(__file__).resolve().parents[2] / "web"
LINK = 'target="_blank" rel="noopener noreferrer"'
PASSWORD = "correct-horse-battery"

# What a model writes, and what an attacker would like it to write (prompt injection).
REPLY = (
    "**退货**很简单：\n\n"
    "1. 打开*我的订单*\n"
    "2. 点击 `申请退货`\n\n"
    "- 运费：卖家承担\n"
    "- 详见[退货政策](https://shop.example.com/returns)\n\n"
    "<img src=x onerror=\"window.__kefuPwned='img'\"> "
    "<script>window.__kefuPwned='script'</script> "
    "[点我](javascript:window.__kefuPwned='link')"
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
async def renderer(browser: Any) -> AsyncIterator[Any]:
    """A blank page with web/markdown.js loaded, as the console loads it."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.set_content("<!doctype html><meta charset=utf-8><body></body>")
    await page.add_script_tag(path=str(WEB / "markdown.js"))
    yield page
    await context.close()


async def _html(page: Any, text: str) -> str:
    return str(await page.evaluate(
        "t => { const d = document.createElement('div'); d.appendChild(KefuMarkdown.render(t));"
        " return d.innerHTML; }", text))


CASES = [
    ("**bold** and *it* and `code`",
     "<p><strong>bold</strong> and <em>it</em> and <code>code</code></p>"),
    ("__bold__ _it_", "<p><strong>bold</strong> <em>it</em></p>"),
    ("***both***", "<p><strong><em>both</em></strong></p>"),
    ("这是**重要**的，“**引号**”也行",
     "<p>这是<strong>重要</strong>的，“<strong>引号</strong>”也行</p>"),
    ("line one\nline two\n\nnext paragraph", "<p>line one<br>line two</p><p>next paragraph</p>"),
    ("- a\n- b\n* c", "<ul><li>a</li><li>b</li><li>c</li></ul>"),
    ("1. a\n2) b", "<ol><li>a</li><li>b</li></ol>"),
    ("1. a\n\n2. b\n\n3. c", "<ol><li>a</li><li>b</li><li>c</li></ol>"),
    ("3. c\n4. d", '<ol start="3"><li>c</li><li>d</li></ol>'),
    ("- a\n  - a1\n  - a2\n- b", "<ul><li>a<ul><li>a1</li><li>a2</li></ul></li><li>b</li></ul>"),
    ("1. step\n   more about it\n- bullet",
     "<ol><li>step<br>more about it</li></ol><ul><li>bullet</li></ul>"),
    ("Steps:\n1. one\n\nDone.", "<p>Steps:</p><ol><li>one</li></ol><p>Done.</p>"),
    ("### 退货须知", "<p><strong>退货须知</strong></p>"),
    ("a\n\n---\n\nb", "<p>a</p><hr><p>b</p>"),
    ("```\n<b>x</b>\n  y\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;\n  y</code></pre>"),
    ("[site](https://example.com/x)", f'<p><a href="https://example.com/x" {LINK}>site</a></p>'),
    ("[**bold** link](http://example.com)",
     f'<p><a href="http://example.com/" {LINK}><strong>bold</strong> link</a></p>'),
    ("[mail us](mailto:help@example.com)",
     f'<p><a href="mailto:help@example.com" {LINK}>mail us</a></p>'),
    ("see https://example.com/a_(b). Or https://example.com/c）",
     f'<p>see <a href="https://example.com/a_(b)" {LINK}>https://example.com/a_(b)</a>. Or '
     f'<a href="https://example.com/c" {LINK}>https://example.com/c</a>）</p>'),
    ("**https://example.com/x**",
     f'<p><strong><a href="https://example.com/x" {LINK}>https://example.com/x</a></strong></p>'),
    # What must stay text
    ("<img src=x onerror=alert(1)><script>alert(2)</script>",
     "<p>&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;</p>"),
    ("[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>"),
    ("[x](JaVaScRiPt:alert(1)) [y](data:text/html,<b>hi</b>) [z](vbscript:x) [w](/relative)",
     "<p>[x](JaVaScRiPt:alert(1)) [y](data:text/html,&lt;b&gt;hi&lt;/b&gt;) [z](vbscript:x) "
     "[w](/relative)</p>"),
    ("[x](http:javascript:alert(1))", "<p>[x](http:javascript:alert(1))</p>"),
    ('[x](https://e.com/"onmouseover="alert(1))',
     f'<p><a href="https://e.com/%22onmouseover=%22alert(1)" {LINK}>x</a></p>'),
    ("javascript:alert(1)", "<p>javascript:alert(1)</p>"),
    ("&lt;b&gt; &amp;", "<p>&amp;lt;b&amp;gt; &amp;amp;</p>"),
    ("**unclosed bold", "<p>**unclosed bold</p>"),
    ("*unclosed [link](https://exa", "<p>*unclosed [link](<a href=\"https://exa/\" "
     f'{LINK}>https://exa</a></p>'),
    ("2 * 3 * 4 and a*b", "<p>2 * 3 * 4 and a*b</p>"),
    ("snake_case_name and __init__.py", "<p>snake_case_name and <strong>init</strong>.py</p>"),
    ("\\*not italic\\* \\`x\\`", "<p>*not italic* `x`</p>"),
    ("`` a `tick` ``", "<p><code>a `tick`</code></p>"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "html"), CASES)
async def test_renderer_formats_the_safe_subset_and_shows_everything_else_as_text(
    renderer: Any, text: str, html: str,
) -> None:
    assert await _html(renderer, text) == html


async def test_every_prefix_of_a_hostile_reply_renders_only_allowed_nodes(renderer: Any) -> None:
    # GIVEN a reply streamed character by character (each prefix is one possible repaint)
    # WHEN each prefix is rendered
    report = await renderer.evaluate(
        """text => {
          const allowed = new Set(["P", "BR", "STRONG", "EM", "CODE", "PRE", "UL", "OL", "LI",
                                   "A", "HR"]);
          const bad = [];
          for (let n = 0; n <= text.length; n++) {
            const d = document.createElement("div");
            d.appendChild(KefuMarkdown.render(text.slice(0, n)));
            for (const e of d.querySelectorAll("*")) {
              if (!allowed.has(e.tagName)) bad.push(n + ": " + e.tagName);
              for (const a of e.attributes) {
                const ok = (e.tagName === "A" && ["href", "target", "rel"].includes(a.name)) ||
                           (e.tagName === "OL" && a.name === "start");
                if (!ok) bad.push(n + ": " + e.tagName + " " + a.name);
              }
              if (e.tagName === "A" && !/^(https?:|mailto:)/.test(e.href)) {
                bad.push(n + ": " + e.href);
              }
            }
          }
          const d = document.createElement("div");
          d.appendChild(KefuMarkdown.render(text));
          return {bad, text: d.textContent, pwned: window.__kefuPwned || null};
        }""", REPLY)
    # THEN no prefix ever produced an element or attribute outside the subset
    assert report["bad"] == []
    # AND the HTML and the javascript: link are shown as text, and nothing ran
    assert "<img src=x onerror=" in report["text"]
    assert "<script>window.__kefuPwned='script'</script>" in report["text"]
    assert "[点我](javascript:window.__kefuPwned='link')" in report["text"]
    assert report["pwned"] is None


async def test_hostile_delimiter_floods_render_as_text(renderer: Any) -> None:
    # GIVEN long runs of unclosed delimiters (each one would rescan the rest of a naive parser)
    text = "*a _b `c [d](e " * 2000 + "**x" * 2000 + "[" * 5000 + ("- x\n  " * 300)
    # WHEN it is rendered THEN it comes back (the test's timeout bounds it) with its text intact
    shown = await renderer.evaluate(
        "t => { const d = document.createElement('div'); d.appendChild(KefuMarkdown.render(t));"
        " return d.textContent.length; }", text)
    assert shown > 20_000


@pytest.fixture(scope="module")
def markdown_gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    """A production gateway whose model streams REPLY in small pieces (about 25 a second)."""
    prefix = f"kefu-test:browser-md:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(pg_dsn=make_database(), redis_url=redis_url,
                                   redis_prefix=prefix, widget_keys=["md-key:acme"])
    with FakeOpenAI(reply=REPLY, chunk_chars=3, tokens_per_s=25, first_token_ms=50) as fake:
        engines = [{"name": "md", "provider": "md", "base_url": fake.base_url,
                    "model": "fake", "api_keys": ["sk-test"]}]
        env = {"ENGINES": json.dumps(engines), "CACHE_TTL_S": "0", "FIRST_TOKEN_TIMEOUT_S": "30"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # read once, when the gateway builds its router
        try:
            with redis_prefix_removed(redis_url, prefix), \
                    run_gateway(settings, replica_id="browser-md") as running:
                assert running.gateway.deps is not None
                assert running.gateway.deps.router is not None  # built now, with ENGINES set
                _restore(saved)
                yield running
        finally:
            _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# Records whether a reply was ever shown formatted while still streaming (in the widget's shadow
# root when given its host's selector, else in the document).
WATCH_STREAMING = """host => {
  const root = host ? document.querySelector(host).shadowRoot : document;
  window.__kefuStreamedFormatted = false;
  new MutationObserver(() => {
    if (root.querySelector(".streaming .b.md strong")) window.__kefuStreamedFormatted = true;
  }).observe(root, {childList: true, subtree: true, attributes: true});
}"""


async def _staff(gw: RunningGateway) -> Agent:
    pool = await open_pool(gw.gateway.settings.database_url or "", max_size=1)
    try:
        return await make_staff(pool, tenant_id="acme", role="agent",
                                password=PASSWORD)
    finally:
        await pool.close()


async def _check_rendered(bubble: Any) -> None:
    """The reply's formatting is there; its HTML and javascript: link are text."""
    assert await bubble.locator("strong").first.inner_text() == "退货"
    assert await bubble.locator("ol > li").all_inner_texts() == ["打开我的订单", "点击 申请退货"]
    assert await bubble.locator("ol em").inner_text() == "我的订单"
    assert await bubble.locator("ol code").inner_text() == "申请退货"
    assert await bubble.locator("ul > li").count() == 2
    links = bubble.locator("a")
    assert await links.count() == 1
    assert await links.get_attribute("href") == "https://shop.example.com/returns"
    assert await links.get_attribute("target") == "_blank"
    assert await links.get_attribute("rel") == "noopener noreferrer"
    assert await links.inner_text() == "退货政策"
    assert await bubble.locator("img, script").count() == 0
    text = await bubble.inner_text()
    assert "<img src=x onerror=" in text and "<script>" in text
    assert "[点我](javascript:window.__kefuPwned='link')" in text


async def test_widget_and_console_render_a_streamed_markdown_reply_and_run_nothing(
    browser: Any, markdown_gateway: RunningGateway,
) -> None:
    gateway = markdown_gateway
    # GIVEN a visitor on a company page that embeds the widget, open
    page_html = (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Acme</h1>"
        f'<script src="{gateway.http}/web/widget.js" data-widget-key="md-key" data-lang="zh" '
        'data-open="true" async></script></body></html>')
    context = await browser.new_context(viewport={"width": 1200, "height": 800}, locale="zh-CN")
    visitor = await context.new_page()
    visitor.set_default_timeout(TIMEOUT_MS)
    frames = Frames(visitor)
    with _host_page(page_html) as url:
        await visitor.goto(url)
    await visitor.wait_for_function("window.__kefuWidget && window.__kefuWidget.state.connected")
    # WHEN they write Markdown and HTML themselves, and the model answers in Markdown
    mine = "请问 **怎么** 退货？<b>急</b>"
    await visitor.evaluate(WATCH_STREAMING, "#kefu-widget")
    box = visitor.locator("form.compose textarea")
    await box.fill(mine)
    await box.press("Enter")
    await frames.wait("final")
    reply = visitor.locator(".row.assistant:not(.streaming) .b").nth(1)
    await reply.locator("a").wait_for()
    # THEN the reply arrived as several deltas and its final text is the model's, unchanged
    assert len(frames.of("delta")) >= 3
    assert frames.of("final")[-1]["text"] == REPLY
    # AND it was already formatted while it streamed (repainted from its text so far)
    assert await visitor.evaluate("window.__kefuStreamedFormatted") is True
    # AND the widget shows it formatted, with the HTML and the javascript: link as text
    await _check_rendered(reply)
    assert await reply.get_attribute("class") == "b md"
    # AND the visitor's own message is plain text
    own = visitor.locator(".row.visitor .b")
    assert await own.inner_text() == mine
    assert await own.locator("*").count() == 0
    # AND nothing ran
    assert await visitor.evaluate("window.__kefuPwned === undefined")
    await visitor.screenshot(path="/tmp/kefu-browser-9-widget-markdown.png")

    # GIVEN an agent who opens the conversation (handled by the bot) in the console
    staff = await _staff(gateway)
    a_context = await browser.new_context(viewport={"width": 1400, "height": 850},
                                          locale="zh-CN")
    agent = await a_context.new_page()
    agent.set_default_timeout(TIMEOUT_MS)
    a_frames = Frames(agent)
    await agent.goto(f"{gateway.http}/console?tenant=acme")
    await agent.fill("input[name=email]", staff.email)
    await agent.fill("input[name=password]", PASSWORD)
    await agent.click("#login-form button[type=submit]")
    await agent.locator("#conn", has_text="已连接").wait_for()
    await agent.click(".tabs button[data-tab=bot]")
    await agent.locator("#list li").first.click()
    # THEN the stored reply is rendered the same way
    await agent.locator("#log .msg.assistant .b a").first.wait_for()
    await _check_rendered(agent.locator("#log .msg.assistant .b").first)
    visitor_in_console = agent.locator("#log .msg.visitor .b").first
    assert await visitor_in_console.inner_text() == mine
    assert await visitor_in_console.locator("*").count() == 0
    # WHEN the visitor asks again while the agent watches
    await agent.evaluate(WATCH_STREAMING, None)
    await box.fill("还有呢")
    await box.press("Enter")
    # THEN the console renders the reply as it streams in, and the finished reply formatted
    await a_frames.wait("delta")
    await a_frames.wait("final")
    second = agent.locator("#log .msg.assistant .b").nth(1)
    await second.locator("a").wait_for()
    await _check_rendered(second)
    assert await agent.evaluate("window.__kefuStreamedFormatted") is True
    assert await agent.evaluate("window.__kefuPwned === undefined")
    assert await visitor.evaluate("window.__kefuPwned === undefined")
    await agent.screenshot(path="/tmp/kefu-browser-10-console-markdown.png")
    await a_context.close()
    await context.close()
