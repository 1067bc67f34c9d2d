"""A knowledge-base file uploaded to the admin function as AWS runs it: functions/admin/app.py
behind Mangum, given an API Gateway HTTP API event whose multipart body is base64-encoded (as
API Gateway delivers binary bodies), on a migrated database in production configuration."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kefu_core import lambda_runtime
from kefu_core.answers.memory import embedding_dim
from kefu_core.infra.db import open_pool
from kefu_core.infra.schema import apply_schema
from kefu_core.infra.secret_settings import get_settings
from kefu_core.infra.settings import Settings
from tests.support.core import ROOT, SECRET
from tests.support.documents import pdf_bytes
from tests.support.staff import make_staff, token_for


async def _prepare(dsn: str) -> str:
    """Migrate the database; an admin of tenant "shop"; its token."""
    pool = await open_pool(dsn, min_size=1, max_size=1)
    try:
        await apply_schema(pool, embedding_dim=embedding_dim(Settings(database_url=dsn)))
        admin = await make_staff(pool, tenant_id="shop", role="admin")
    finally:
        await pool.close()
    return token_for(admin, secret=SECRET)


@pytest.fixture
def admin_function(monkeypatch: pytest.MonkeyPatch, make_database: Callable[[], str],
                   redis_url: str, redis_prefix: str) -> Iterator[tuple[Any, str]]:
    dsn = make_database()
    token = asyncio.run(_prepare(dsn))
    for name, value in {"KEFU_ENV": "production", "TOKEN_SECRETS": SECRET,
                        "DATABASE_URL": dsn, "REDIS_URL": redis_url,
                        "REDIS_PREFIX": redis_prefix, "MEMORY_ENABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location(
        f"admin_function_{uuid.uuid4().hex[:6]}", ROOT / "functions" / "admin" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.lambda_handler, token
    lambda_runtime.reset()  # the next test is a new container: its clients, loop and settings



def _event(method: str, path: str, token: str, *, body: bytes = b"",
           content_type: str | None = None) -> dict[str, Any]:
    headers = {"host": "api.example.com", "authorization": f"Bearer {token}"}
    if content_type:
        headers["content-type"] = content_type
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers, "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": f"req-{uuid.uuid4().hex[:6]}",
            "routeKey": "$default", "stage": "$default", "time": "30/Nov/2026:12:00:00 +0000",
            "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "browser"},
        },
    }


def test_the_admin_function_ingests_a_pdf_sent_as_a_base64_multipart_body(
    admin_function: tuple[Any, str],
) -> None:
    handler, token = admin_function
    # GIVEN a PDF in a multipart form, as the admin console's browser sends it
    form = httpx.Request("POST", "https://api.example.com/v1/admin/knowledge/files", files={
        "file": ("opening-hours.pdf", pdf_bytes(["We are open every day from 9 to 21."]),
                 "application/pdf")})
    body = form.read()
    # WHEN API Gateway hands it to the admin function base64-encoded
    answer = handler(_event("POST", "/v1/admin/knowledge/files", token, body=body,
                            content_type=form.headers["content-type"]), None)
    # THEN the document is ingested and listed
    assert answer["statusCode"] == 201, answer["body"]
    assert json.loads(answer["body"])["name"] == "opening-hours.pdf"
    listed = handler(_event("GET", "/v1/admin/knowledge/documents", token), None)
    assert [d["name"] for d in json.loads(listed["body"])["documents"]] == ["opening-hours.pdf"]
