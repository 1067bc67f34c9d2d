"""/docs and /redoc of the admin API as `kefu run`'s gateway serves them in production: every
script, style and icon they load is served by Kefu itself (no CDN), so they work without
internet."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway import RunningGateway
from tests.support.production import production_gateway

CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    with production_gateway(pg_dsn=make_database(), redis_url=redis_url,
                            label="api-docs") as running:
        yield running


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_page_loads_only_what_kefu_serves(gateway: RunningGateway, page: str) -> None:
    # WHEN the page is fetched
    response = httpx.get(f"{gateway.http}{page}", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # THEN it names no other host at all (no CDN, no fonts, no validator)...
    assert re.findall(r"(?:https?:)?//[\w.-]+", html) == []
    # ...its scripts, styles and icon are Kefu's own paths...
    references = _references(html)
    assert len(references) >= 2
    assert all(ref.startswith("/docs/assets/") for ref in references), references
    # ...and each of them is served, with its content type
    for ref in references:
        asset = httpx.get(f"{gateway.http}{ref}", timeout=10)
        assert asset.status_code == 200, ref
        kind = CONTENT_TYPES[ref[ref.rindex("."):]]
        assert kind in asset.headers["content-type"], (ref, asset.headers["content-type"])
        assert len(asset.content) > 1000, ref


def test_swagger_ui_reads_kefus_document_and_never_calls_the_online_validator(
    gateway: RunningGateway,
) -> None:
    html = httpx.get(f"{gateway.http}/docs", timeout=10).text
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html
    bundle = httpx.get(f"{gateway.http}/docs/assets/swagger-ui-bundle.js", timeout=10)
    assert "SwaggerUIBundle" in bundle.text


def test_an_unknown_asset_is_not_found(gateway: RunningGateway) -> None:
    assert httpx.get(f"{gateway.http}/docs/assets/nothing.js", timeout=10).status_code == 404
