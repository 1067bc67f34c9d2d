"""The Lambda ``Invoke`` API (``POST /2015-03-31/functions/{name}/invocations``) for boto3.

``InvocationType`` ``RequestResponse`` (the function's result, ``X-Amz-Function-Error`` when it
failed), ``Event`` (202: queued, retried as the function's ``EventInvokeConfig`` says) and
``DryRun`` (204). Callers sign with SigV4; only the functions' credentials are accepted. The
payload limits are Lambda's: 6 MB synchronous, 256 KB asynchronous, refused before reading.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kefu_core.gateway.sigv4 import verify_sigv4
from kefu_core.local.errors import FunctionNotFound, InvocationError, PayloadTooLarge
from kefu_core.local.functions import FunctionPool

__all__ = ["EVENT_LIMIT", "SYNC_LIMIT", "create_lambda_api", "read_limited"]

SYNC_LIMIT = 6 * 1024 * 1024
EVENT_LIMIT = 256 * 1024
_ARN = re.compile(r"^(?:arn:aws[a-z-]*:lambda:[a-z0-9-]+:)?(?:\d{12}:)?(?:function:)?"
                  r"(?P<name>[A-Za-z0-9_-]{1,140})(?::(?P<qualifier>[$A-Za-z0-9_-]+))?$")


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with :class:`PayloadTooLarge` past ``limit`` (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    return bytes(body)


def _error(status: int, error_type: str, message: str) -> Response:
    return JSONResponse({"Type": "User", "Message": message, "message": message},
                        status_code=status, headers={"x-amzn-ErrorType": error_type})


def create_lambda_api(pools: Mapping[str, FunctionPool], *, keys: Mapping[str, str]) -> Starlette:
    """``pools`` by function name (the template's physical names)."""

    async def invoke(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = f"?{request.url.query}" if request.url.query else ""
        url = f"http://{request.headers.get('host', '')}{raw_path.decode()}{query}"
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return _error(400, "InvalidParameterValueException",
                          f"Unsupported invocation type {kind}")
        try:
            body = await read_limited(request, EVENT_LIMIT if kind == "Event" else SYNC_LIMIT)
        except PayloadTooLarge as exc:
            return _error(413, exc.error_type, exc.message)
        except ClientDisconnect:
            return Response(status_code=400)
        if not verify_sigv4(method="POST", url=url, headers=request.headers, body=body,
                            keys=keys):
            return _error(403, "InvalidSignatureException",
                          "The request signature we calculated does not match the signature "
                          "you provided.")
        match = _ARN.match(request.path_params["function"])
        qualifier = request.query_params.get("Qualifier") or (match and match["qualifier"])
        pool = pools.get(match["name"]) if match else None
        try:
            if pool is None or qualifier not in (None, "$LATEST"):
                raise FunctionNotFound(request.path_params["function"])
            if body:
                json.loads(body)
        except FunctionNotFound as exc:
            return _error(404, exc.error_type, exc.message)
        except ValueError:
            return _error(400, "InvalidRequestContentException",
                          "Could not parse request body into json")
        if kind == "DryRun":
            return Response(status_code=204)
        if kind == "Event":
            request_id = pool.invoke_event(body or b"{}")
            return Response(status_code=202, headers={"x-amzn-RequestId": request_id})
        try:
            result = await pool.invoke(body or b"{}",
                                       client_context=request.headers.get("x-amz-client-context"))
        except InvocationError as exc:
            return _error(500, exc.error_type, exc.message)
        headers: dict[str, Any] = {"X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        return Response(result.payload, status_code=200, headers=headers,
                        media_type="application/json")

    return Starlette(routes=[
        Route("/2015-03-31/functions/{function:path}/invocations", invoke, methods=["POST"]),
    ])
