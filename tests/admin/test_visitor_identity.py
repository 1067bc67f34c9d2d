"""Visitor tokens: widget keys from the database, and the signed identity of a logged-in
customer verified with the tenant's identity secret."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from kefu_core.admin import create_admin_app
from kefu_core.deps import Deps
from kefu_core.security.tokens import verify_token
from tests.support.core import SECRET, core_settings, make_deps
from tests.support.gateway import redis_prefix_removed
from tests.support.staff import make_staff, token_for


@pytest.fixture(scope="module")
async def client(make_database, redis_url) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:identity:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix,
                             widget_keys=["shop-key:shop"], memory_enabled=False)
    deps, _, _ = await make_deps(settings)

    async def provide() -> Deps:
        return deps

    app = create_admin_app(settings, deps_provider=provide)
    _ADMIN["token"] = token_for(await make_staff(deps.pool, tenant_id="shop",
                                                 role="admin"))
    with redis_prefix_removed(redis_url, prefix):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://admin") as http:
            yield http
        await deps.aclose()


_ADMIN: dict[str, str] = {}


def _admin() -> dict[str, str]:
    return {"authorization": f"Bearer {_ADMIN['token']}"}


def _identity(secret: str, **claims: Any) -> str:
    body = {"sub": "42", "name": "李女士", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


async def test_identity_is_refused_until_the_tenant_has_a_secret(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/visitor-token", json={
        "widget_key": "shop-key", "identity": _identity("x" * 40)})
    assert response.status_code == 403


async def test_signed_identity_makes_an_identified_visitor(client: httpx.AsyncClient) -> None:
    # GIVEN the tenant's admin created an identity secret (shown once)
    rotated = await client.post("/v1/admin/identity-secret", headers=_admin())
    secret = rotated.json()["identity_secret"]
    # WHEN the widget sends the identity the company's backend signed
    response = await client.post("/v1/visitor-token", json={
        "widget_key": "shop-key", "identity": _identity(secret),
        "visitor_id": "v-" + "0" * 32})
    # THEN the visitor token names the customer, whatever visitor id the browser had
    body = response.json()
    assert response.status_code == 200 and body["identified"] is True
    assert body["visitor_id"] == "cust:42"
    identity = verify_token(body["token"], secrets=[SECRET])
    assert identity.subject == "cust:42" and identity.name == "李女士"
    assert identity.tenant_id == "shop" and identity.role == "visitor"
    # AND a forged or expired identity is refused, never downgraded to anonymous
    for bad in (_identity("y" * 40), _identity(secret, exp=int(time.time()) - 10)):
        refused = await client.post("/v1/visitor-token",
                                    json={"widget_key": "shop-key", "identity": bad})
        assert refused.status_code == 403


async def test_revoked_widget_keys_stop_working(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/admin/widget-keys", headers=_admin(), json={"label": "x"})
    key = created.json()["key"]
    assert (await client.post("/v1/visitor-token", json={"widget_key": key})).status_code == 200
    assert (await client.delete(f"/v1/admin/widget-keys/{key}",
                                headers=_admin())).status_code == 204
    assert (await client.post("/v1/visitor-token", json={"widget_key": key})).status_code == 403

