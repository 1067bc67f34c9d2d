"""A widget key can name the pages allowed to use it: the browser's ``Origin`` is checked when
a visitor token is obtained and again at the WebSocket ``$connect`` (the token names the key
that minted it). CORS of the visitor-token route names the caller's origin, never ``*``; staff
routes answer other origins only when ``ADMIN_ALLOWED_ORIGINS`` lists them."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from kefu_core import lambda_runtime
from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.secret_settings import get_settings
from kefu_core.product.tenants.tenants import TenantStore
from kefu_core.product.tenants.widget_keys import WidgetKeyStore
from kefu_core.security.tokens import issue_token, verify_token
from tests.support.core import ROOT, SECRET, load_event
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import admin_token, production_gateway

SHOP = "https://shop.example.com"
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str) -> Iterator[RunningGateway]:
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"origins-{uuid.uuid4().hex[:6]}",
                            admin_allowed_origins=["https://console.example.com"]) as running:
        yield running


async def _restricted_key(gateway: RunningGateway, *origins: str) -> tuple[str, str]:
    """(admin token, a new widget key allowing ``origins``)."""
    token = await admin_token(gateway, tenant=f"shop-{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        created = await http.post("/v1/admin/widget-keys",
                                  headers={"authorization": f"Bearer {token}"},
                                  json={"label": "shop", "allowed_origins": list(origins)})
    assert created.status_code == 201, created.text
    return token, str(created.json()["key"])


async def _mint(gateway: RunningGateway, key: str, origin: str | None) -> httpx.Response:
    headers = {"origin": origin} if origin else {}
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        return await http.post("/v1/visitor-token", json={"widget_key": key}, headers=headers)


async def _connect_status(gateway: RunningGateway, token: str, origin: str | None) -> int:
    try:
        async with websockets.connect(f"{gateway.ws}?token={token}",
                                      origin=Origin(origin) if origin else None):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_a_restricted_key_serves_only_its_pages(gateway: RunningGateway) -> None:
    # GIVEN a widget key that allows the shop's pages (written as an admin might type it)
    _, key = await _restricted_key(gateway, "HTTPS://Shop.Example.com:443/")
    # WHEN the shop's page asks for a visitor token
    ok = await _mint(gateway, key, SHOP)
    # THEN it gets one, readable by that page only (CORS names the origin, never *)
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert "origin" in ok.headers.get("vary", "").lower()
    assert verify_token(ok.json()["token"], secrets=[SECRET]).widget_key == key
    # AND another site's page, or a request without an Origin, is refused
    for origin in (EVIL, "https://shop.example.com.evil.example", "null", None):
        refused = await _mint(gateway, key, origin)
        assert refused.status_code == 403, origin
        assert refused.json()["detail"] == "origin not allowed for this widget key"


async def test_connect_checks_the_origin_of_the_key_that_minted_the_token(
    gateway: RunningGateway,
) -> None:
    # GIVEN a visitor token minted on the shop's page
    admin, key = await _restricted_key(gateway, SHOP)
    token = (await _mint(gateway, key, SHOP)).json()["token"]
    # WHEN the token is used to connect from the shop, from another site, or with no Origin
    # THEN only the shop's page is accepted
    assert await _connect_status(gateway, token, SHOP) == 101
    assert await _connect_status(gateway, token, EVIL) == 403
    assert await _connect_status(gateway, token, None) == 403
    # WHEN the admin adds the other site to the key
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        changed = await http.patch(f"/v1/admin/widget-keys/{key}",
                                   headers={"authorization": f"Bearer {admin}"},
                                   json={"allowed_origins": [SHOP, EVIL]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["allowed_origins"] == [SHOP, EVIL]
        # THEN it may connect too
        assert await _connect_status(gateway, token, EVIL) == 101
        # WHEN the admin revokes the key
        revoked = await http.delete(f"/v1/admin/widget-keys/{key}",
                                    headers={"authorization": f"Bearer {admin}"})
        assert revoked.status_code == 204
    # THEN the tokens it minted no longer open connections, from anywhere
    assert await _connect_status(gateway, token, SHOP) == 403


async def test_a_key_without_origins_stays_open(gateway: RunningGateway) -> None:
    # GIVEN a key with no allowed origins (the default, and the keys of WIDGET_KEYS)
    for origin in (SHOP, EVIL, None):
        # THEN any page gets a token, and CORS names the caller's origin
        response = await _mint(gateway, "demo-key", origin)
        assert response.status_code == 200
        if origin:
            assert response.headers["access-control-allow-origin"] == origin
        assert await _connect_status(gateway, response.json()["token"], origin) == 101


async def test_preflights(gateway: RunningGateway) -> None:
    preflight = {"access-control-request-method": "POST",
                 "access-control-request-headers": "content-type"}
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        # GIVEN the widget on any page: its preflight is answered for that page
        widget = await http.options("/v1/visitor-token", headers={**preflight, "origin": EVIL})
        assert widget.status_code == 200
        assert widget.headers["access-control-allow-origin"] == EVIL
        # AND a staff route answers only the origins ADMIN_ALLOWED_ORIGINS lists
        staff = await http.options("/v1/agent/login", headers={**preflight, "origin": EVIL})
        assert "access-control-allow-origin" not in staff.headers
        listed = await http.options("/v1/agent/login", headers={
            **preflight, "origin": "https://console.example.com"})
        assert listed.headers["access-control-allow-origin"] == "https://console.example.com"
        simple = await http.get("/healthz", headers={"origin": EVIL})
        assert "access-control-allow-origin" not in simple.headers


async def test_allowed_origins_are_validated(gateway: RunningGateway) -> None:
    admin, key = await _restricted_key(gateway, "https://*.example.com")
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        auth = {"authorization": f"Bearer {admin}"}
        for bad in ("javascript:alert(1)", "https://shop.example.com/path", "shop.example.com",
                    "https://user@shop.example.com", "https://*", "https://*.com",
                    "ftp://shop.example.com"):
            response = await http.patch(f"/v1/admin/widget-keys/{key}", headers=auth,
                                        json={"allowed_origins": [bad]})
            assert response.status_code == 422, bad
        too_many = [f"https://s{i}.example.com" for i in range(21)]
        response = await http.patch(f"/v1/admin/widget-keys/{key}", headers=auth,
                                    json={"allowed_origins": too_many})
        assert response.status_code == 422
    # AND a wildcard covers the subdomains, not the domain itself nor look-alikes
    assert (await _mint(gateway, key, "https://shop.example.com")).status_code == 200
    assert (await _mint(gateway, key, "https://a.b.example.com")).status_code == 200
    assert (await _mint(gateway, key, "https://example.com")).status_code == 403
    assert (await _mint(gateway, key, "https://evilexample.com")).status_code == 403
    assert (await _mint(gateway, key, "http://shop.example.com")).status_code == 403
    # AND an empty list opens the key to every origin again
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        opened = await http.patch(f"/v1/admin/widget-keys/{key}",
                                  headers={"authorization": f"Bearer {admin}"},
                                  json={"allowed_origins": []})
    assert opened.status_code == 200 and opened.json()["allowed_origins"] == []
    assert (await _mint(gateway, key, "https://example.com")).status_code == 200


# -- in a real browser -------------------------------------------------------------------------
@contextlib.contextmanager
def _shop_site() -> Iterator[tuple[str, dict[str, str]]]:
    """A company's site on its own origin; ``pages[path]`` is the HTML served at ``path``."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "not found").encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()


def _embed(gateway: RunningGateway, key: str) -> str:
    return ("<!doctype html><html><body><h1>Shop</h1>"
            f'<script src="{gateway.http}/web/widget.js" data-widget-key="{key}" '
            'data-lang="en" data-open="true" async></script></body></html>')


@pytest.mark.browser
async def test_the_widget_works_on_allowed_pages_only_in_a_browser(
    gateway: RunningGateway,
) -> None:
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/bootstrap --browser)")
    from playwright.async_api import async_playwright

    with _shop_site() as (site, pages):
        # GIVEN a key restricted to the shop's site, and a key restricted to another site
        _, shop_key = await _restricted_key(gateway, site)
        _, other_key = await _restricted_key(gateway, "https://elsewhere.example")
        pages["/allowed"] = _embed(gateway, shop_key)
        pages["/copied"] = _embed(gateway, other_key)
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page()
                page.set_default_timeout(15_000)
                # WHEN the shop's page embeds its own key
                await page.goto(f"{site}/allowed")
                # THEN the widget obtains a token and connects (the preflight, the token
                # request and the WebSocket handshake all carry the shop's origin)
                await page.wait_for_function(
                    "window.__kefuWidget && window.__kefuWidget.state.connected")
                # WHEN a page embeds a key that does not allow it
                page = await browser.new_page()
                statuses: list[int] = []
                page.on("response", lambda r: statuses.append(r.status)
                        if r.url.endswith("/v1/visitor-token") else None)
                await page.goto(f"{site}/copied")
                # THEN the widget gets no token, and never connects
                await page.wait_for_function("() => window.__kefuWidget !== undefined")
                for _ in range(100):
                    if statuses:
                        break
                    await asyncio.sleep(0.1)
                assert statuses and set(statuses) == {403}
                assert not await page.evaluate("window.__kefuWidget.state.connected")
            finally:
                await browser.close()


# -- on AWS: the connect function ---------------------------------------------------------------
@pytest.fixture
def connect_function(make_database: Callable[[], str], redis_url: str, redis_prefix: str,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """functions/connect/app.py in a Lambda-like container (one worker thread), with the
    template's production environment; yields (its database, invoke)."""
    dsn = make_database()
    for name, value in {"KEFU_ENV": "production", "TOKEN_SECRETS": SECRET,
                        "DATABASE_URL": dsn, "REDIS_URL": redis_url,
                        "REDIS_PREFIX": redis_prefix,
                        "WEBSOCKET_MANAGEMENT_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location(
        f"connect_function_{uuid.uuid4().hex[:6]}", ROOT / "functions" / "connect" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    worker = ThreadPoolExecutor(max_workers=1)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = worker.submit(module.lambda_handler, event,
                                               LambdaContext()).result(60)
        return result

    yield dsn, invoke
    worker.submit(lambda_runtime.reset).result(60)
    worker.shutdown()
    get_settings.cache_clear()


class LambdaContext:
    function_name = "kefu-connect"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kefu-connect"
    aws_request_id = "req-1"


async def test_the_connect_function_checks_the_origin(
    connect_function: tuple[str, Any],
) -> None:
    dsn, invoke = connect_function
    # GIVEN a widget key allowing the shop, and a visitor token it minted
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        await migrate(pool)
        await TenantStore(pool).ensure(tenant_id="shop", name="shop")
        key = await WidgetKeyStore(pool).create(tenant_id="shop", allowed_origins=[SHOP])
    finally:
        await pool.close()
    token = issue_token(secrets=[SECRET], tenant_id="shop", subject="v-" + "b" * 32,
                        role="visitor", ttl_s=600, widget_key=key.key)

    def event(origin: str | None) -> dict[str, Any]:
        connect = load_event("connect.json", REPLACE_WITH_TOKEN=token)
        connect["requestContext"]["connectionId"] = f"c-{uuid.uuid4().hex[:10]}="
        for headers in (connect["headers"], connect["multiValueHeaders"]):
            headers.pop("Origin")
            if origin:
                headers["Origin"] = origin if headers is connect["headers"] else [origin]
        return connect

    # WHEN API Gateway hands the connect function the handshake of the shop's page, of
    # another site's page, and of a client sending no Origin
    # THEN only the shop's page is accepted
    assert invoke(event(SHOP))["statusCode"] == 200
    assert invoke(event(EVIL))["statusCode"] == 403
    assert invoke(event(None))["statusCode"] == 403
