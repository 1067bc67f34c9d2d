"""The service report routes' rules in production configuration: admins only, a bounded
period, a real time zone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.production import AdminHarness, production_admin
from tests.support.staff import make_staff, token_for


@pytest.fixture
async def harness(make_database, redis_url) -> AsyncIterator[AdminHarness]:  # type: ignore[no-untyped-def]
    async with production_admin(pg_dsn=make_database(), redis_url=redis_url) as h:
        yield h


async def _headers(h: AdminHarness, role: str) -> dict[str, str]:
    staff = await make_staff(h.deps.pool, tenant_id="shop", role=role)  # type: ignore[arg-type]
    return {"authorization": f"Bearer {token_for(staff, secret=h.settings.token_secrets[0])}"}


async def test_an_empty_tenant_gets_zeros_for_the_last_two_weeks(harness: AdminHarness) -> None:
    async with harness.client() as client:
        answer = await client.get("/v1/admin/reports", headers=await _headers(harness, "admin"))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["conversations"], body["handoff_rate"], body["days"]) == (0, None, [])
    assert body["time_zone"] == "UTC"


@pytest.mark.parametrize("params", [
    {"tz": "Mars/Olympus_Mons"},
    {"tz": "../../etc/passwd"},
    {"since": "2026-01-01T00:00:00Z", "until": "2027-06-01T00:00:00Z"},
    {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    {"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00"},
])
async def test_a_bad_period_or_time_zone_is_refused(harness: AdminHarness,
                                                    params: dict[str, str]) -> None:
    async with harness.client() as client:
        answer = await client.get("/v1/admin/reports", headers=await _headers(harness, "admin"),
                                  params=params)
    assert answer.status_code == 422


async def test_agents_get_no_report(harness: AdminHarness) -> None:
    headers = await _headers(harness, "agent")
    async with harness.client() as client:
        statuses = [(await client.get(path, headers=headers)).status_code
                    for path in ("/v1/admin/reports", "/v1/admin/reports/export")]
    assert statuses == [403, 403]
