"""Images in headless Chromium against a real gateway keeping them on its disk: a visitor sends
a photo from the widget on a phone-sized page and sees the agent's; an agent sends one from the
console at desktop width and sees the visitor's. What reaches the server is checked: drawn
again by the browser (at most 2048 px a side) and without its EXIF/GPS. Screenshots are kept in
docs/screenshots/."""

from __future__ import annotations

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
    Agent,
    Frames,
    Visitor,
    admin_token,
    embed,
    host_page,
    screenshot_path,
    transcript,
)
from tests.support.core import core_settings
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway
from tests.support.images import GPS_MARK, decoded, jpeg_with_exif, png_with_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def gateway(make_database, redis_url, tmp_path_factory) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:images-ui:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix,
                             image_dir=str(tmp_path_factory.mktemp("images")))
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="img") as gw:
        yield gw


async def _fetch(gateway: RunningGateway, url: str) -> bytes:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        got = await http.get(url)
    assert got.status_code == 200, got.text
    return got.content


async def _agent_sends(gateway: RunningGateway, agent: Agent, conversation_id: str,
                       data: bytes) -> None:
    """The agent uploads a PNG with the form the server gives and replies with it."""
    await agent.send({"action": "upload", "client_msg_id": "a-pic", "content_type": "image/png",
                      "size": len(data), "conversation_id": conversation_id})
    form = await agent.first("upload")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        posted = await http.post(form["url"], data=form["fields"],
                                 files={"file": ("p.png", data, "image/png")})
    assert posted.status_code == 204
    await agent.send({"action": "reply", "conversation_id": conversation_id,
                      "client_msg_id": "a-pic", "text": "这是正确的接口位置",
                      "image": form["upload_id"]})


async def test_a_visitor_sends_a_photo_from_a_phone_and_sees_the_agents(
    browser: Any, gateway: RunningGateway,
) -> None:
    async with Agent(gateway, await admin_token(gateway, *DEMO_ADMIN)) as agent:
        await agent.first("queue")
        with host_page(embed(gateway, lang="zh-CN")) as url:
            context = await browser.new_context(viewport={"width": 375, "height": 740},
                                                locale="zh-CN", has_touch=True, is_mobile=True)
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            frames = Frames(page)
            await page.goto(url)
            await frames.wait("history")
            # GIVEN a visitor on a phone who picked a 3000 x 1500 camera photo with GPS in it
            photo = jpeg_with_exif(3000, 1500)
            assert GPS_MARK in photo
            # WHEN they choose it with the image button
            await page.locator("input.pick").set_input_files(
                files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": photo}])
            # THEN it shows at once as a thumbnail, then is delivered
            row = page.locator(".row.visitor").filter(has=page.locator("img.pic")).first
            await row.locator(".dl.ok").wait_for()
            thumb = await row.locator("img.pic").bounding_box()
            assert thumb is not None and thumb["width"] <= 221 and thumb["height"] <= 221
            (ack,) = [f for f in frames.of("ack")]
            # AND what the server keeps was drawn again by the browser: 2048 px wide at most,
            # no EXIF, no GPS
            stored = (await transcript(gateway, ack["conversation_id"]))[0]
            assert stored["text"] == "" and stored["image"]["width"] == 2048
            assert stored["image"]["height"] == 1024
            kept = await _fetch(gateway, stored["image"]["url"])
            assert GPS_MARK not in kept and not decoded(kept).getexif()
            # WHEN they ask for a human and the agent answers with a picture
            await page.locator("button.human").click()
            assigned = await agent.first("assigned")
            await _agent_sends(gateway, agent, assigned["conversation_id"], png_with_text(360, 240))
            # THEN the widget shows the agent's picture, which opens full size over the chat
            theirs = page.locator(".row.agent img.pic")
            await theirs.wait_for()
            await page.wait_for_function(
                f"{WIDGET_JS}.querySelector('.row.agent img.pic').naturalWidth === 360")
            await page.screenshot(path=screenshot_path("widget-images-375"))
            await theirs.click()
            await page.locator(".viewer.show img").wait_for()
            shown = await page.locator(".viewer.show img").bounding_box()
            assert shown is not None and shown["width"] > 300
            await page.screenshot(path=screenshot_path("widget-image-viewer-375"))
            await page.locator(".viewer").click()
            await page.locator(".viewer.show").wait_for(state="detached")
            # WHEN they pick a file that is no picture
            await page.locator("input.pick").set_input_files(
                files=[{"name": "menu.pdf", "mimeType": "application/pdf",
                        "buffer": b"%PDF-1.7 not an image"}])
            # THEN the widget says so and sends nothing
            await page.locator(".sys", has_text="无法读取这张图片").wait_for()
            assert len(frames.of("upload")) == 1
            await context.close()


WIDGET_JS = "document.querySelector('#kefu-widget').shadowRoot"


async def test_an_agent_sees_the_visitors_photo_and_sends_one_from_the_console(
    browser: Any, gateway: RunningGateway,
) -> None:
    async with Visitor(gateway) as visitor:
        # GIVEN a visitor who sent a photo and asked for a human
        photo = jpeg_with_exif(800, 600)
        await visitor.send({"action": "upload", "client_msg_id": "v-pic",
                            "content_type": "image/jpeg", "size": len(photo)})
        form = await visitor.first("upload")
        async with httpx.AsyncClient(base_url=gateway.http) as http:
            posted = await http.post(form["url"], data=form["fields"],
                                     files={"file": ("p.jpg", photo, "image/jpeg")})
        assert posted.status_code == 204
        await visitor.send({"action": "message", "client_msg_id": "v-pic",
                            "text": "插头是这样坏的", "image": form["upload_id"]})
        await visitor.first("ack")
        await visitor.send({"action": "handoff"})
        await visitor.first("state", state="queued")
        # WHEN the administrator signs in to the console at desktop width (and gets it)
        context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                            locale="zh-CN")
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"{gateway.http}/console?tenant=demo")
        await page.fill("input[name=email]", DEMO_ADMIN_EMAIL)
        await page.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
        await page.click("#login-form button[type=submit]")
        await page.locator("#conn", has_text="已连接").wait_for()
        await page.click("[data-tab=mine]")
        await page.locator("#list li").first.click()
        # THEN the visitor's photo shows as a thumbnail beside its text
        theirs = page.locator(".msg.visitor img.pic")
        await theirs.wait_for()
        await page.wait_for_function(
            "document.querySelector('.msg.visitor img.pic').naturalWidth === 800")
        assert await page.locator(".msg.visitor .b", has_text="插头是这样坏的").count() == 1
        # WHEN the agent attaches a 2600 px screenshot with text chunks and sends it
        await page.locator("#pick").set_input_files(
            files=[{"name": "screen.png", "mimeType": "image/png",
                    "buffer": png_with_text(2600, 1300)}])
        # THEN it appears in the console, and the visitor receives it live, redrawn at
        # 2048 px and without the chunks
        mine = page.locator(".msg.agent img.pic")
        await mine.wait_for()
        message = await visitor.first("message", role="agent")
        assert (message["image"]["width"], message["image"]["height"]) == (2048, 1024)
        kept = await _fetch(gateway, message["image"]["url"])
        assert b"tEXt" not in kept and b"iTXt" not in kept and decoded(kept).size == (2048, 1024)
        await page.screenshot(path=screenshot_path("console-images-1280"))
        # AND a click opens the visitor's picture full size
        await theirs.click()
        await page.locator("#viewer:not([hidden]) img").wait_for()
        await page.keyboard.press("Escape")
        await page.locator("#viewer").wait_for(state="hidden")
        await context.close()
