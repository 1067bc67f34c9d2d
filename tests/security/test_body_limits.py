"""Request bodies are limited before they are read: a huge declared ``Content-Length`` and an
endless chunked body are both answered 413 at once, on the admin API, the visitor-token route
and the gateway's management API, over real HTTP; the admin function behind Mangum too.

The raw client below sends the request head, then streams the body while watching for an
answer: it stops as soon as the server answers. A server that reads the whole body before
answering makes it send everything (and grow by hundreds of megabytes).
"""

from __future__ import annotations

import importlib.util
import json
import select
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest

from kefu_core.infra.secret_settings import get_settings
from tests.support.core import ROOT, SECRET
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import production_gateway

HUGE = 300 * 1024 * 1024
CHUNK = 64 * 1024
# Whatever the socket buffers hold before the answer arrives: far below the body's size.
MOST_SENT = 32 * 1024 * 1024
MOST_GROWTH = 100 * 1024 * 1024


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client managed to send before the answer


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    sock.setblocking(True)
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def stream_request(port: int, path: str, *, declared: int | None, total: int = HUGE,
                   headers: dict[str, str] | None = None) -> Exchange:
    """POST ``total`` bytes of body (``Content-Length: declared``, or chunked when None)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head.append(f"Content-Length: {declared}" if declared is not None
                    else "Transfer-Encoding: chunked")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        payload = b"x" * CHUNK
        frame = payload if declared is not None else f"{CHUNK:x}\r\n".encode() + payload + b"\r\n"
        sock.setblocking(False)
        sent, pending = 0, memoryview(b"")
        while True:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break  # the server answered (or closed)
            assert writable, "the server neither answered nor read the body"
            if not pending:
                if sent >= total:
                    break
                pending = memoryview(frame)
            try:
                n = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            pending = pending[n:]
            sent += n
        status, response_headers, body = _read_answer(sock)
        return Exchange(status=status, headers=response_headers, body=body, sent=sent)
    finally:
        sock.close()


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str) -> Iterator[RunningGateway]:
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"limits-{uuid.uuid4().hex[:6]}") as running:
        yield running


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize("declared", [HUGE, None], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/v1/visitor-token", "/v1/admin/knowledge",
                                  "/prod/@connections/abc", "/@connections/abc"])
def test_a_huge_body_is_refused_before_it_is_read(
    gateway: RunningGateway, path: str, declared: int | None
) -> None:
    # GIVEN a production gateway (the client and the server share this process's memory)
    before = _rss()
    # WHEN an anonymous client declares (or streams without a length) a 300 MB body
    answer = stream_request(gateway.port, path, declared=declared)
    # THEN it is answered 413 long before it could send it all, and nothing was buffered
    assert answer.status == 413, (answer.status, answer.body[:200])
    assert answer.sent < MOST_SENT, answer.sent
    assert _rss() - before < MOST_GROWTH
    if "@connections" in path:  # the management API answers as API Gateway does
        assert answer.headers.get("x-amzn-errortype") == "PayloadTooLargeException"
        assert json.loads(answer.body) == {"message": "Payload too large"}
    else:
        assert json.loads(answer.body)["detail"] == "request body too large"


def test_limits_follow_the_route(gateway: RunningGateway) -> None:
    with httpx.Client(base_url=gateway.http, timeout=60) as http:
        # GIVEN bodies a little over the JSON routes' 64 KB
        big_json = {"widget_key": "demo-key", "padding": "x" * (70 * 1024)}
        # THEN a JSON route refuses them, with or without a token
        assert http.post("/v1/visitor-token", json=big_json).status_code == 413
        assert http.post("/v1/admin/agents", json=big_json).status_code == 413
        # AND a knowledge-base document of 1 MB passes the limit (refused only for the
        # missing token), as does a 20,000-character prompt escaped as JSON (~120 KB)
        document = {"name": "big.md", "content": "# Big\n" + "x" * (1024 * 1024)}
        assert http.post("/v1/admin/knowledge", json=document).status_code == 401
        prompt = json.dumps({"text": "\u4e2d" * 20_000}, ensure_ascii=True)
        assert http.put("/v1/admin/prompts/system", content=prompt,
                        headers={"content-type": "application/json"}).status_code == 401
        # AND the management API takes API Gateway's 128 KB, refusing more before the
        # signature is even checked
        assert http.post("/@connections/abc", content=b"x" * (100 * 1024)).status_code == 403
        assert http.post("/@connections/abc", content=b"x" * (129 * 1024)).status_code == 413
        # AND small requests are untouched
        assert http.post("/v1/visitor-token", json={"widget_key": "demo-key"}).status_code == 200


def test_a_limit_is_a_setting(make_database: Callable[[], str], redis_url: str) -> None:
    # GIVEN a deployment allowing smaller documents
    with production_gateway(dsn=make_database(), redis_url=redis_url, name="limits-small",
                            knowledge_max_body_bytes=512 * 1024) as small:
        document = {"name": "big.md", "content": "x" * (600 * 1024)}
        # THEN a document over it is refused before it is read
        response = httpx.post(f"{small.http}/v1/admin/knowledge", json=document, timeout=60)
        assert response.status_code == 413
        assert response.json()["max_bytes"] == 512 * 1024


# -- the admin function on AWS (Mangum) ---------------------------------------------------------
def _http_api_event(body: str, *, content_length: bool) -> dict[str, Any]:
    headers = {"content-type": "application/json", "host": "api.example.com",
               "origin": "https://shop.example.com"}
    if content_length:
        headers["content-length"] = str(len(body.encode()))
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/v1/visitor-token",
        "rawQueryString": "", "headers": headers, "body": body, "isBase64Encoded": False,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": "req-1", "routeKey": "$default",
            "stage": "$default", "time": "30/Nov/2026:12:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/v1/visitor-token", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "attacker"},
        },
    }


@pytest.fixture
def admin_function(monkeypatch: pytest.MonkeyPatch, pg_dsn: str, redis_url: str,
                   redis_prefix: str) -> Iterator[Any]:
    """functions/admin/app.py as Lambda imports it, with the template's production settings."""
    for name, value in {"KEFU_ENV": "production", "TOKEN_SECRETS": SECRET,
                        "DATABASE_URL": pg_dsn, "REDIS_URL": redis_url,
                        "REDIS_PREFIX": redis_prefix}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location(
        f"admin_function_{uuid.uuid4().hex[:6]}", ROOT / "functions" / "admin" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.lambda_handler
    get_settings.cache_clear()


@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "undeclared"])
def test_the_admin_function_refuses_an_oversized_body(admin_function: Any,
                                                      content_length: bool) -> None:
    # GIVEN a 5 MB body that API Gateway's HTTP API (10 MB) hands to the function
    body = json.dumps({"widget_key": "demo-key", "padding": "x" * (5 * 1024 * 1024)})
    # WHEN the admin function handles it
    response = admin_function(_http_api_event(body, content_length=content_length), None)
    # THEN it answers 413 without parsing it
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["detail"] == "request body too large"
