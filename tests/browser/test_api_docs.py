"""/docs (Swagger UI) and /redoc in headless Chromium with no way out: every request to another
host is refused, as on a machine without internet. A staff member authorises with a token from
/v1/agent/login and calls a route from the page."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from kefu_core.infra.db import open_pool
from tests.browser.support import ARGS, CHROMIUM
from tests.support.gateway import RunningGateway
from tests.support.production import production_gateway
from tests.support.staff import make_staff

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
PASSWORD = "correct-horse-battery"
# ReDoc's sidebar shows Redocly's logo from its CDN and hides it when it cannot load: the only
# request either page makes to another host, and nothing depends on it.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    with production_gateway(pg_dsn=make_database(), redis_url=redis_url,
                            label="api-docs-browser") as running:
        yield running


@pytest.fixture
async def offline(gateway: RunningGateway) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page whose requests to any host but the gateway's are refused, and those requests."""
    from playwright.async_api import async_playwright

    refused: list[str] = []

    async def only_local(route: Any) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(gateway.http).netloc:
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await context.route("**/*", only_local)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        yield page, refused
        await browser.close()


async def _token(gateway: RunningGateway) -> str:
    pool = await open_pool(gateway.gateway.settings.database_url or "", max_size=1)
    try:
        agent = await make_staff(pool, tenant_id="docs-shop", role="admin",
                                 password=PASSWORD)
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        login = await http.post("/v1/agent/login", json={
            "tenant": "docs-shop", "email": agent.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return str(login.json()["token"])


async def test_swagger_ui_works_offline_and_authorizes_with_a_bearer_token(
    gateway: RunningGateway, offline: tuple[Any, list[str]],
) -> None:
    page, refused = offline
    token = await _token(gateway)
    # GIVEN /docs opened with no way to the internet
    await page.goto(f"{gateway.http}/docs")
    # THEN Swagger UI renders every operation of the document
    await page.locator(".opblock").first.wait_for()
    assert await page.locator(".opblock").count() >= 30
    # WHEN the user authorises with a staff token (the bearer scheme's dialog)
    await page.click("button.authorize")
    dialog = page.locator(".auth-container")
    assert "bearer" in (await dialog.inner_text())
    await dialog.locator("input").fill(token)
    await dialog.locator("button.authorize").click()
    await page.click("button.btn-done")
    # AND calls GET /v1/me from the page
    operation = page.locator("#operations-session-me_v1_me_get")
    await operation.locator(".opblock-summary").click()
    await operation.locator("button.try-out__btn").click()
    await operation.locator("button.execute").click()
    # THEN the call carried the token and was answered 200
    status = operation.locator(".live-responses-table tr.response .response-col_status")
    await status.wait_for()
    assert (await status.inner_text()).strip() == "200"
    # AND nothing was asked of any other host
    assert refused == []


async def test_redoc_works_offline(
    gateway: RunningGateway, offline: tuple[Any, list[str]],
) -> None:
    page, refused = offline
    # GIVEN /redoc opened with no way to the internet
    await page.goto(f"{gateway.http}/redoc")
    # THEN ReDoc renders the document: its title and the operations in the menu
    await page.locator("h1", has_text="Kefu admin API").wait_for()
    await page.locator("[role=menu] li", has_text="Search conversations").first.wait_for()
    # AND it asked no other host for anything it needs
    assert set(refused) <= {REDOC_LOGO}, refused
