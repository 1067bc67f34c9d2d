"""Personal data in the deployed shape: the built RetentionFunction as Lambda runs it (its own
folder and its two layers only, the template's production environment, the schedule's event;
``kefu local`` does not fire EventBridge schedules, its Lambda runtime runs the function), and
a customer's export and erasure through the admin function."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from kefu_core.answers.memory import embedding_dim
from kefu_core.infra.db import open_pool
from kefu_core.infra.schema import apply_schema
from kefu_core.infra.settings import Settings
from kefu_core.local.functions import FunctionPool
from kefu_core.local.runtime import Credentials, Runtime
from kefu_core.local.template import Template
from kefu_core.product.tenants.tenants import ROOT_TENANT
from tests.local.conftest import SUPER_EMAIL, SUPER_PASSWORD
from tests.local.helpers import Client, admin_client, bearer, connect, login
from tests.support.core import load_event
from tests.support.local_stack import BUILD, LocalStackProcess

# The first test also waits for `sam build` (when stale) and the stack's cold start.
pytestmark = pytest.mark.timeout(300)
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


async def test_an_erasure_through_the_admin_function_while_the_visitor_is_connected(
    local_stack: LocalStackProcess,
) -> None:
    tenant = f"erase-{uuid.uuid4().hex[:6]}"
    async with admin_client(local_stack) as http:
        # GIVEN a tenant's administrator, and a visitor chatting through the WebSocket API
        root = await login(http, ROOT_TENANT, SUPER_EMAIL, SUPER_PASSWORD)
        created = await http.post("/v1/tenants", headers=bearer(root["token"]), json={
            "id": tenant, "name": "Erase", "admin_email": f"admin@{tenant}.test",
            "admin_password": "erase-admin-password"})
        assert created.status_code == 201, created.text
        admin = await login(http, tenant, f"admin@{tenant}.test", "erase-admin-password")
        minted = await http.post("/v1/visitor-token", json={
            "widget_key": created.json()["widget_key"]["key"]})
        visitor = minted.json()
        async with connect(local_stack, visitor["token"]) as ws:
            client = Client(ws)
            await client.send({"action": "message", "client_msg_id": "e-1",
                               "text": "我的暗号是青柠檬"})
            assert (await client.until("final"))["status"] == "complete"
            # WHEN the administrator exports, then erases the visitor (the admin function)
            exported = await http.post("/v1/admin/personal-data/export",
                                       headers=bearer(admin["token"]),
                                       json={"visitor_id": visitor["visitor_id"]})
            erased = await http.post("/v1/admin/personal-data/erase",
                                     headers=bearer(admin["token"]),
                                     json={"visitor_id": visitor["visitor_id"],
                                           "confirm": visitor["visitor_id"]})
            after = await http.post("/v1/admin/personal-data/export",
                                    headers=bearer(admin["token"]),
                                    json={"visitor_id": visitor["visitor_id"]})
    # THEN the export had the conversation, the erasure removed it and the short-term memory
    assert exported.status_code == 200, exported.text
    texts = [m["text"] for c in exported.json()["conversations"] for m in c["messages"]]
    assert "我的暗号是青柠檬" in texts
    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["conversations"] == 1 and report["short_term"] == 1
    # AND the visitor's connection record is gone (the admin function may not close sockets:
    # API Gateway drops it at its idle timeout; nothing is delivered on it any more)
    assert report["connections"] == 1
    assert after.json()["conversations"] == [] and after.json()["summary"]["messages"] == 0
