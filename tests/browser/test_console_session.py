"""The agent console's session in headless Chromium against a production gateway: it refreshes
its short-lived token before expiry and stays connected, and an agent whose access is revoked
is sent back to the sign-in form.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kefu_core.infra.db import open_pool
from kefu_core.product.tenants.agents import Agent
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway
from tests.support.production import production_settings
from tests.support.staff import make_staff

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
PASSWORD = "correct-horse-battery"
SESSION = "JSON.parse(sessionStorage.getItem('kefu.console.session') || 'null')"


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    prefix = f"kefu-test:console-session:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(pg_dsn=make_database(), redis_url=redis_url,
                                   redis_prefix=prefix, widget_keys=["acme-key:acme"])
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


async def _staff(gw: RunningGateway, role: str) -> Agent:
    pool = await open_pool(gw.gateway.settings.database_url or "", max_size=1)
    try:
        return await make_staff(pool, tenant_id="acme", role=role,  # type: ignore[arg-type]
                                password=PASSWORD)
    finally:
        await pool.close()


async def _signed_in_console(browser: Any, gateway: RunningGateway, agent: Agent) -> Any:
    context = await browser.new_context(viewport={"width": 1400, "height": 850}, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{gateway.http}/console?tenant=acme")
    await page.fill("input[name=email]", agent.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.locator("#conn", has_text="Connected").wait_for()
    return page


async def test_the_console_refreshes_its_token_before_it_expires(
    gateway: RunningGateway, browser: Any,
) -> None:
    agent = await _staff(gateway, "agent")
    page = await _signed_in_console(browser, gateway, agent)
    # GIVEN a console whose token expires in a little over two minutes
    before = await page.evaluate(SESSION)
    await page.evaluate(f"(() => {{ const s = {SESSION}; s.expiresAt = Date.now() + 125000;"
                        " sessionStorage.setItem('kefu.console.session', JSON.stringify(s)); })()")
    await page.reload()
    await page.locator("#conn", has_text="Connected").wait_for()
    # WHEN its refresh time comes
    await page.wait_for_function(f"{SESSION}.token !== {before['token']!r}")
    # THEN it holds a fresh token for another full lifetime, still connected and working
    after = await page.evaluate(SESSION)
    assert after["expiresAt"] - before["expiresAt"] > 0
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        me = await http.get("/v1/me", headers={"authorization": f"Bearer {after['token']}"})
    assert me.status_code == 200 and me.json()["id"] == agent.id
    await page.locator("#conn", has_text="Connected").wait_for()
    await page.screenshot(path="/tmp/kefu-browser-console-refreshed.png")
    await page.context.close()


async def test_a_revoked_agent_is_sent_back_to_the_sign_in_form(
    gateway: RunningGateway, browser: Any,
) -> None:
    boss, agent = await _staff(gateway, "admin"), await _staff(gateway, "agent")
    page = await _signed_in_console(browser, gateway, agent)
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        login = await http.post("/v1/agent/login", json={
            "tenant": "acme", "email": boss.email, "password": PASSWORD})
        # WHEN an administrator deactivates the agent while the console is open
        response = await http.patch(
            f"/v1/admin/agents/{agent.id}", json={"active": False},
            headers={"authorization": f"Bearer {login.json()['token']}"})
        assert response.status_code == 200
    # AND the agent does anything
    await page.select_option("#presence", "away")
    # THEN the console is back at the sign-in form, saying why, and holds no token
    await page.locator("#login-error", has_text="signed out").wait_for()
    assert await page.locator("#login").is_visible()
    assert await page.evaluate(SESSION) is None
    await page.screenshot(path="/tmp/kefu-browser-console-revoked.png")
    await page.context.close()
