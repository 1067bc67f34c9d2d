"""A history too large for one admin API answer: the API refuses it with 413 and says how to
export it; ``kefu personal-data export`` writes all of it to a file only its owner reads."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from kefu_core.cli import main
from kefu_core.deps import Deps
from kefu_core.flows.personal_data import CustomerRef, ExportTooLarge, export_customer
from kefu_core.flows.personal_data import export as export_module
from kefu_core.infra.secret_settings import get_settings
from tests.support.core import SECRET, core_settings, make_deps


@pytest.fixture
def pg_dsn(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
async def deps(pg_dsn: str, redis_url: str, redis_prefix: str) -> AsyncIterator[Deps]:
    built, _, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix))
    await built.load_memory()
    yield built
    await built.aclose()


async def _history(deps: Deps, tenant: str, visitor: str, messages: int) -> None:
    await deps.tenants.ensure(tenant_id=tenant, name=tenant)
    conversation = await deps.conversations.open_for_visitor(tenant_id=tenant,
                                                             visitor_id=visitor)
    for i in range(messages):
        await deps.conversations.append(tenant_id=tenant, conversation_id=conversation.id,
                                        role="visitor", text=f"第{i}条：" + "长" * 400,
                                        client_msg_id=f"m-{i}")


async def test_a_history_larger_than_one_answer_is_refused_by_the_api(
    deps: Deps, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a customer whose messages hold more text than one answer may carry
    tenant, visitor = f"t-{uuid.uuid4().hex[:6]}", f"v-{uuid.uuid4().hex}"
    await _history(deps, tenant, visitor, messages=5)
    monkeypatch.setattr(export_module, "MAX_TEXT_BYTES", 4 * 1200)  # five messages: ~6 KB
    ref = CustomerRef(visitor_id=visitor)
    # WHEN the admin API's export asks THEN it is refused, pointing at the command
    with pytest.raises(ExportTooLarge) as refused:
        await export_customer(deps, tenant_id=tenant, ref=ref)
    assert refused.value.status == 413 and "kefu personal-data export" in refused.value.detail
    # AND without the limit every message is there
    whole = await export_customer(deps, tenant_id=tenant, ref=ref, limited=False)
    assert whole.summary.messages == 5


def test_the_command_exports_to_a_file_only_its_owner_reads(
    pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a customer with a conversation
    tenant, visitor = f"t-{uuid.uuid4().hex[:6]}", f"v-{uuid.uuid4().hex}"

    async def seed() -> None:
        built, _, _ = await make_deps(
            core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix))
        try:
            await _history(built, tenant, visitor, messages=3)
        finally:
            await built.aclose()

    asyncio.run(seed())
    for key, value in {"KEFU_ENV": "production", "DATABASE_URL": pg_dsn,
                       "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
                       "TOKEN_SECRETS": SECRET}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    output = tmp_path / "export.json"
    try:
        # WHEN the operator runs the command
        code = main(["personal-data", "export", "--tenant", tenant, "--visitor-id", visitor,
                     "--output", str(output)])
    finally:
        get_settings.cache_clear()
    # THEN the file holds every message, and only its owner may read it
    assert code == 0
    data = json.loads(output.read_text())
    assert data["visitor_id"] == visitor and data["summary"]["messages"] == 3
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    # AND the export is in the tenant's audit log, without content
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT actor_type, actor_id, detail FROM audit_log WHERE"
                           " tenant_id = %s AND action = 'customer.exported'",
                           (tenant,)).fetchone()
    assert row is not None and row[0] == "system" and row[2]["messages"] == 3
    # AND an invalid id is refused before anything is read
    assert main(["personal-data", "export", "--tenant", tenant, "--visitor-id", "x y",
                 "--output", str(tmp_path / "no.json")]) == 2
