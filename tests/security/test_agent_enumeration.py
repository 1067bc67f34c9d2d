"""Creating an agent never reveals whether an e-mail address is used by another tenant, and
sign-in stays unambiguous: e-mail addresses are unique per tenant and sign-in names the tenant.

Production configuration, the real admin app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kefu_core.product.tenants.tenants import ROOT_TENANT
from tests.support.production import AdminHarness, production_admin
from tests.support.staff import make_staff, token_for

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def dsn(make_database) -> str:  # type: ignore[no-untyped-def]
    """One database for the module (each test uses its own agents and Redis prefix)."""
    value: str = make_database()
    return value


@pytest.fixture
async def admin(dsn: str, redis_url: str) -> AsyncIterator[AdminHarness]:
    async with production_admin(pg_dsn=dsn, redis_url=redis_url) as harness:
        yield harness


async def test_another_tenants_address_is_not_revealed_on_creation(admin: AdminHarness) -> None:
    # GIVEN an agent of one tenant, and the administrator of another
    await make_staff(admin.deps.pool, tenant_id="acme", email="alice@shared.test",
                     password=PASSWORD)
    outsider = token_for(await make_staff(admin.deps.pool, tenant_id="globex", role="admin"),
                         secret=admin.settings.token_secrets[0])
    headers = {"authorization": f"Bearer {outsider}"}
    async with admin.client() as http:
        # WHEN the outsider creates agents with that address and with an unused one
        taken = await http.post("/v1/admin/agents", headers=headers, json={
            "email": "alice@shared.test", "name": "Probe", "password": "p" * 12})
        unused = await http.post("/v1/admin/agents", headers=headers, json={
            "email": "nobody@shared.test", "name": "Probe", "password": "p" * 12})
        # THEN both answers are the same: created, in the outsider's own tenant
        assert (taken.status_code, unused.status_code) == (201, 201), taken.text
        assert sorted(taken.json()) == sorted(unused.json())
        assert taken.json()["tenant_id"] == "globex"
        assert not {"token_version", "demo", "password_hash"} & set(taken.json())
        # AND only an address already used in the caller's own tenant conflicts
        again = await http.post("/v1/admin/agents", headers=headers, json={
            "email": "ALICE@shared.test", "name": "Twice", "password": "p" * 12})
        assert again.status_code == 409


async def test_the_super_admin_can_give_a_new_tenant_an_address_used_elsewhere(
    admin: AdminHarness,
) -> None:
    await make_staff(admin.deps.pool, tenant_id="acme", email="ops@shared.test", password=PASSWORD)
    root = token_for(await make_staff(admin.deps.pool, tenant_id=ROOT_TENANT, role="admin"),
                     secret=admin.settings.token_secrets[0])
    async with admin.client() as http:
        created = await http.post("/v1/tenants", headers={"authorization": f"Bearer {root}"},
                                  json={"id": "initech", "name": "Initech",
                                        "admin_email": "ops@shared.test",
                                        "admin_password": "another-password"})
    assert created.status_code == 201, created.text


async def test_sign_in_names_the_tenant_so_the_same_address_is_never_ambiguous(
    admin: AdminHarness,
) -> None:
    # GIVEN the same address in two tenants, even with the same password
    acme = await make_staff(admin.deps.pool, tenant_id="acme", email="sam@shared.test",
                            password=PASSWORD)
    globex = await make_staff(admin.deps.pool, tenant_id="globex", email="Sam@shared.test",
                              password=PASSWORD)
    async with admin.client() as http:
        for agent in (acme, globex):
            # WHEN Sam signs in to each tenant
            response = await http.post("/v1/agent/login", json={
                "tenant": agent.tenant_id, "email": "sam@shared.test", "password": PASSWORD})
            # THEN each sign-in reaches that tenant's account and no other
            assert response.status_code == 200, response.text
            assert response.json()["agent"]["id"] == agent.id
        # AND without a tenant there is no sign-in at all
        missing = await http.post("/v1/agent/login", json={
            "email": "sam@shared.test", "password": PASSWORD})
        assert missing.status_code == 422
        # AND a wrong tenant answers exactly like a wrong password
        wrong_tenant = await http.post("/v1/agent/login", json={
            "tenant": "initech", "email": "sam@shared.test", "password": PASSWORD})
        wrong_password = await http.post("/v1/agent/login", json={
            "tenant": "acme", "email": "sam@shared.test", "password": "not-it-at-all"})
        assert wrong_tenant.status_code == wrong_password.status_code == 401
        assert wrong_tenant.json() == wrong_password.json()
