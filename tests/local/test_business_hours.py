"""Business hours in the deployed shape: the admin function stores a tenant's hours, the
visitor-token route and the message function read them with the zone database the CoreLayer
ships (the ``tzdata`` package, so a runtime image without zone files knows the zones too)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kefu_core.product.tenants.tenants import ROOT_TENANT
from tests.local.conftest import SUPER_EMAIL, SUPER_PASSWORD
from tests.local.helpers import Client, admin_client, bearer, connect, login
from tests.support.local_stack import BUILD, LocalStackProcess

pytestmark = pytest.mark.timeout(300)
ZONE = "America/Sao_Paulo"


async def test_a_closed_tenant_queues_a_handoff_for_its_next_opening(
    local_stack: LocalStackProcess,
) -> None:
    tenant = f"hours-{uuid.uuid4().hex[:6]}"
    day = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=2)
    opens = datetime(day.year, day.month, day.day, 8, 30, tzinfo=ZoneInfo(ZONE))
    async with admin_client(local_stack) as http:
        # GIVEN a tenant whose admin sets hours open only on a day two days ahead
        root = await login(http, ROOT_TENANT, SUPER_EMAIL, SUPER_PASSWORD)
        created = await http.post("/v1/tenants", headers=bearer(root["token"]), json={
            "id": tenant, "name": "Hours", "admin_email": f"admin@{tenant}.test",
            "admin_password": "hours-admin-password"})
        assert created.status_code == 201, created.text
        admin = bearer((await login(http, tenant, f"admin@{tenant}.test",
                                    "hours-admin-password"))["token"])
        settings = (await http.get("/v1/admin/settings", headers=admin)).json()
        hours = {"enabled": True, "time_zone": ZONE,
                 "weekly": {d: [] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
                 "dates": [{"date": day.isoformat(),
                            "intervals": [{"start": "08:30", "end": "17:00"}]}]}
        saved = await http.put("/v1/admin/settings", headers=admin,
                               json={**settings, "business_hours": hours})
        assert saved.status_code == 200, saved.text
        # WHEN a visitor's widget asks for a token
        visitor = (await http.post("/v1/visitor-token", json={
            "widget_key": created.json()["widget_key"]["key"]})).json()
    # THEN it is told the tenant is closed and when it opens
    expected = opens.astimezone(UTC).isoformat()
    assert visitor["widget"]["hours"] == {"open": False, "next_opening": expected,
                                          "time_zone": ZONE}
    # WHEN the visitor asks for a human through the message function
    async with connect(local_stack, visitor["token"]) as ws:
        guest = Client(ws)
        await guest.send({"action": "handoff"})
        queued = await guest.until("state", state="queued")
    # THEN the request is queued for that opening
    assert queued["opens_at"] == expected and queued["time_zone"] == ZONE
    # AND the zone database came with the CoreLayer
    assert (BUILD.parent / "CoreLayer" / "python" / "tzdata" / "zoneinfo" / "America"
            / "Sao_Paulo").is_file()
