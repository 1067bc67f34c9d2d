"""Fuzzing the admin/public HTTP API from its own OpenAPI document (/openapi.json) with
schemathesis, anonymously, as a tenant admin and as the super-admin: no 5xx, response bodies
that match the documented schemas, and the gateway stays up. Derandomized, so a failure
reproduces exactly.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from kefu_core.infra.db import open_pool
from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.gateway import RunningGateway
from tests.support.staff import make_staff, token_for

FUZZ = settings(max_examples=12, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _bearer(tenant: str, role: str = "admin") -> dict[str, str]:
    """A token that is not any agent's (refused: staff tokens must name a current agent)."""
    token = issue_token(secrets=[SECRET], tenant_id=tenant, subject=f"fuzz-{uuid.uuid4().hex[:8]}",
                        role=role, ttl_s=600, version=1)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def _staff(dsn: str, tenant: str) -> dict[str, str]:
    """The bearer header of a real administrator of ``tenant``."""

    async def make() -> str:
        pool = await open_pool(dsn, max_size=1)
        try:
            return token_for(await make_staff(pool, tenant_id=tenant, role="admin"))
        finally:
            await pool.close()

    return {"Authorization": f"Bearer {asyncio.run(make())}"}


@pytest.fixture(scope="module")
def fuzz_tenant(fuzz_gateway: RunningGateway, fuzz_db: str) -> str:
    """A real tenant, created through the API by the super-admin."""
    tenant = f"fuzz-{uuid.uuid4().hex[:8]}"
    r = httpx.post(f"{fuzz_gateway.http}/v1/tenants", headers=_staff(fuzz_db, "_root"),
                   timeout=10,
                   json={"id": tenant, "name": "Fuzz", "admin_email": f"admin@{tenant}.test",
                         "admin_password": "fuzz-password-0123"})
    assert r.status_code == 201, r.text
    return tenant


def _fuzz(gw: RunningGateway, tenant: str, dsn: str, **validate: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{gw.http}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the admin API documents its operations"
    # signing out everywhere revokes the caller's token: last, so every other route is tried
    operations.sort(key=lambda op: op.path == "/v1/agent/sign-out")
    # anonymous, the tenant's administrator, the super-admin
    for headers in ({}, _staff(dsn, tenant), _staff(dsn, "_root")):
        for operation in operations:
            strategy = operation.as_strategy()

            _check(strategy, headers, validate)


def _check(strategy: Any, headers: dict[str, str], validate: dict[str, Any]) -> None:
    @FUZZ
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, **validate)

    check()


# Three callers times every operation: over the suite's 120 s on a busy two-core machine.
@pytest.mark.timeout(600)
def test_admin_api_never_fails_and_answers_in_its_documented_shapes(
    fuzz_gateway: RunningGateway, fuzz_tenant: str, fuzz_db: str
) -> None:
    # WHEN any request the schema allows (and some it does not) is sent by anyone, THEN the
    # answer is never a server error
    _fuzz(fuzz_gateway, fuzz_tenant, fuzz_db, checks=[not_a_server_error])


def test_visitor_token_conforms_to_its_openapi_document(fuzz_gateway: RunningGateway) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_gateway.http}/openapi.json")
    _check(schema["/v1/visitor-token"]["POST"].as_strategy(), {}, {})


def test_admin_token_of_unknown_tenant_is_a_client_error(fuzz_gateway: RunningGateway) -> None:
    r = httpx.post(f"{fuzz_gateway.http}/v1/admin/agents", headers=_bearer("no-such-tenant"),
                   json={"email": "a@b", "name": "A", "password": "password-0123456"}, timeout=10)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


def test_nul_in_widget_key_is_a_client_error(fuzz_gateway: RunningGateway) -> None:
    r = httpx.post(f"{fuzz_gateway.http}/v1/visitor-token",
                   json={"widget_key": "demo\x00key"}, timeout=10)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


def test_gateway_is_up_after_the_admin_fuzz(fuzz_gateway: RunningGateway) -> None:
    assert httpx.get(f"{fuzz_gateway.http}/healthz", timeout=10).json() == {"status": "ok"}
