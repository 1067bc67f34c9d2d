"""The admin HTTP API: API Gateway HTTP API (payload format 2.0) in front of a function.

Every method and path goes to the function (the template's catch-all ``$default`` route). The
request becomes the 2.0 event API Gateway sends (``rawPath``, ``rawQueryString``, ``cookies``,
lower-case ``headers`` with repeated ones comma-joined, ``requestContext.http``, binary bodies
base64-encoded); the function's answer becomes the response (``statusCode``, ``headers``,
``cookies``, ``body``, ``isBase64Encoded``; a result without ``statusCode`` is a 200 JSON body).
A function error is ``500 {"message":"Internal Server Error"}``; a body over Lambda's 6 MB is
refused with 413 before it is read.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from kefu_core.infra.errors import KefuError, reason_phrase
from kefu_core.infra.errors import PayloadTooLarge as RequestTooLarge
from kefu_core.local.errors import InvocationError, PayloadTooLarge
from kefu_core.local.functions import Result
from kefu_core.local.lambda_api import SYNC_LIMIT, read_limited

__all__ = ["HttpApi", "http_api_event"]

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "+json", "+xml")


def _is_text(content_type: str) -> bool:
    lowered = content_type.lower()
    return any(marker in lowered for marker in _TEXT_TYPES)


def http_api_event(
    request: Request, body: bytes, *, api_id: str, account_id: str
) -> dict[str, Any]:
    """The payload-2.0 event of ``request``."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers.items():
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    domain = headers.get("host", f"{api_id}.execute-api.local")
    raw = request.scope.get("raw_path")
    raw_path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": request.url.query,
        "headers": headers,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": request.url.path,
                "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
                "sourceIp": request.client.host if request.client else "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": secrets.token_urlsafe(12),
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        if _is_text(headers.get("content-type", "")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def _error(error: type[KefuError]) -> Response:
    """API Gateway's HTTP API answer to an error: its status and reason phrase."""
    return JSONResponse({"message": reason_phrase(error)}, status_code=error.status)


def _response(result: Result) -> Response:
    if result.function_error:
        return _error(KefuError)
    try:
        answer = result.json()
    except ValueError:
        return _error(KefuError)
    if not isinstance(answer, dict) or "statusCode" not in answer:
        return Response(json.dumps(answer), status_code=200, media_type="application/json")
    body = answer.get("body") or ""
    content = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    response = Response(content, status_code=int(answer["statusCode"]))
    for name, value in (answer.get("headers") or {}).items():
        response.headers[str(name)] = str(value)
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.append(str(name), str(value))
    for cookie in answer.get("cookies") or []:
        response.headers.append("set-cookie", str(cookie))
    return response


class HttpApi:
    """An ASGI app: each request invokes ``invoke`` with its 2.0 event."""

    def __init__(self, invoke: Callable[[bytes], Awaitable[Result]], *, api_id: str,
                 account_id: str) -> None:
        self._invoke = invoke
        self.api_id = api_id
        self.account_id = account_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        try:
            body = await read_limited(request, SYNC_LIMIT)
        except PayloadTooLarge:
            response: Response = _error(RequestTooLarge)
        except ClientDisconnect:
            return
        else:
            event = http_api_event(request, body, api_id=self.api_id,
                                   account_id=self.account_id)
            try:
                response = _response(await self._invoke(json.dumps(event).encode()))
            except InvocationError:
                response = _error(KefuError)
        await response(scope, receive, send)
