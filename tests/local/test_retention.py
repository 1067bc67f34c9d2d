"""The built RetentionFunction as Lambda runs it: its own folder and its two layers only
(CoreLayer, AdapterLayer), the template's production environment, on the schedule's event.
``kefu local`` does not fire EventBridge schedules; its Lambda runtime runs the function."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from kefu_core.answers.memory import embedding_dim
from kefu_core.infra.db import open_pool
from kefu_core.infra.schema import apply_schema
from kefu_core.infra.settings import Settings
from kefu_core.local.functions import FunctionPool
from kefu_core.local.runtime import Credentials, Runtime
from kefu_core.local.template import Template
from tests.support.core import load_event
from tests.support.local_stack import BUILD, LocalStackProcess

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kefu/token-secret-AbCdEf"


async def test_the_built_retention_function_deletes_what_is_older(
    local_stack: LocalStackProcess,  # the SAM build is up to date once the stack runs
    make_database: Callable[[], str], redis_url: str, redis_prefix: str, tmp_path: Path,
) -> None:
    # GIVEN a migrated database where a tenant keeps transcripts 30 days, with an old one
    dsn = make_database()
    pool = await open_pool(dsn, min_size=1, max_size=2, timeout_s=10)
    try:
        await apply_schema(pool, embedding_dim=embedding_dim(Settings(kefu_env="test")))
    finally:
        await pool.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
        conn.execute("INSERT INTO tenant_settings (tenant_id, settings) VALUES ('acme',"
                     " '{\"retention\": {\"transcripts_days\": 30}}')")
        conn.execute("INSERT INTO conversations (id, tenant_id, visitor_id, updated_at)"
                     " VALUES (%s, 'acme', 'v-old', now() - interval '31 days')",
                     (uuid.uuid4(),))
    # AND the built function with the template's environment and its layers
    template = Template(BUILD, overrides={"DatabaseUrl": dsn, "RedisUrl": redis_url,
                                          "TokenSecretArn": ARN, "WidgetKeys": "pk-1:acme"})
    (spec,) = [s for s in template.functions() if s.logical_id == "RetentionFunction"]
    assert [layer.name for layer in spec.layers] == ["CoreLayer", "AdapterLayer"]
    runtime = Runtime(state_dir=tmp_path / "state", region="us-east-1",
                      credentials=Credentials(), overrides={"REDIS_PREFIX": redis_prefix})
    runtime.prepare()
    lines: list[str] = []
    functions = FunctionPool(spec, command=runtime.command(spec),
                             environment=runtime.environment, max_workers=1,
                             log_sink=lambda function, line: lines.append(line))
    await functions.start(warm=1)
    try:
        # WHEN the schedule's event arrives
        result = await functions.invoke(json.dumps(load_event("retention.json")).encode())
    finally:
        await functions.stop()
    # THEN the old conversation is gone, in production mode, with nothing but its layers
    assert result.function_error is None, "\n".join(lines[-30:])
    assert result.json() == {"ran": True, "complete": True, "conversations": 1,
                             "offline_messages": 0, "facts": 0}
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM conversations").fetchone() == (0,)
