"""The scheduled RetentionFunction (functions/retention/app.py) on EventBridge's scheduled
event, as Lambda runs it: environment as template.yaml gives it (production, the schema
verified rather than applied), real PostgreSQL and Redis, rows backdated past a tenant's
retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis

from kefu_core import lambda_runtime
from kefu_core.answers.memory import embedding_dim
from kefu_core.infra.db import open_pool
from kefu_core.infra.schema import apply_schema
from kefu_core.infra.settings import Settings
from tests.functional.test_lambda_handlers import LambdaContext, load_handler
from tests.support.core import SECRET, load_event


@pytest.fixture
def database(make_database: Callable[[], str]) -> str:
    """A migrated database with a tenant keeping transcripts 30 days, and rows either side."""
    dsn = make_database()

    async def migrate() -> None:
        pool = await open_pool(dsn, min_size=1, max_size=2, timeout_s=10)
        try:
            await apply_schema(pool, embedding_dim=embedding_dim(Settings(kefu_env="test")))
        finally:
            await pool.close()

    asyncio.run(migrate())
    old = datetime.now(UTC) - timedelta(days=45)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
        conn.execute("INSERT INTO tenant_settings (tenant_id, settings) VALUES ('acme',"
                     " '{\"retention\": {\"transcripts_days\": 30}}')")
        for visitor, updated in (("v-old", old), ("v-new", datetime.now(UTC))):
            conn.execute("INSERT INTO conversations (id, tenant_id, visitor_id, updated_at)"
                         " VALUES (%s, 'acme', %s, %s)", (uuid.uuid4(), visitor, updated))
    return dsn


@pytest.fixture
def invoke(database: str, redis_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], dict[str, object]]]:
    prefix = f"kefu-test:retention:{uuid.uuid4().hex[:8]}:"
    for key, value in {
        "KEFU_ENV": "production", "DATABASE_URL": database, "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix, "TOKEN_SECRETS": SECRET, "SCHEMA_MIGRATIONS": "verify",
        "RETENTION_RUN_BUDGET_S": "240", "POWERTOOLS_SERVICE_NAME": "kefu",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    handler = load_handler("retention").lambda_handler
    worker = ThreadPoolExecutor(max_workers=1)  # one container: one long-lived loop

    def call() -> dict[str, object]:
        event = load_event("retention.json")
        result: dict[str, object] = worker.submit(handler, event, LambdaContext()).result(60)
        return result

    yield call
    worker.submit(lambda_runtime.reset).result(60)
    worker.shutdown()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def test_the_scheduled_run_deletes_old_transcripts_once(invoke: Callable[[], dict[str, object]],
                                                        database: str) -> None:
    # WHEN the schedule fires
    first = invoke()
    # THEN the conversation older than the tenant's 30 days is gone, the recent one stays
    assert first == {"ran": True, "complete": True, "conversations": 1, "offline_messages": 0,
                     "facts": 0}
    with psycopg.connect(database) as conn:
        visitors = [r[0] for r in conn.execute("SELECT visitor_id FROM conversations")]
        entry = conn.execute("SELECT actor_type, detail FROM audit_log"
                             " WHERE action = 'retention.applied'").fetchone()
    assert visitors == ["v-new"]
    assert entry is not None and entry[0] == "system" and entry[1]["conversations"] == 1
    # AND a second delivery of the same schedule (EventBridge delivers at least once) finds
    # the run claimed and does nothing
    assert invoke() == {"ran": False}
