"""Request body size limits, enforced before and while the body is read (413).

:class:`BodyLimitMiddleware` is a small ASGI middleware. A request whose ``Content-Length``
exceeds its route's limit is answered 413 at once, without reading a byte of the body; a body
without a length (chunked) is counted while the application reads it, and the request is
answered 413 as soon as the limit is passed, without asking the server for another chunk.
Whatever the application answered to the interrupted read is replaced by the 413.

Limits are chosen per route by :class:`BodyLimit` rules (a regular expression on the path, in
order, first match wins) and a default for everything else. The error body is FastAPI's
(``{"detail": ...}``) or, for the gateway's management API, API Gateway's
(``{"message": ...}`` with ``x-amzn-ErrorType: PayloadTooLargeException``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu_core.infra.errors import PayloadTooLarge

__all__ = ["KIB", "MIB", "BodyLimit", "BodyLimitMiddleware", "BodyTooLarge"]

KIB = 1024
MIB = 1024 * 1024

ErrorStyle = Literal["detail", "aws"]


@dataclass(frozen=True)
class BodyLimit:
    """At most ``max_bytes`` for requests whose route path fully matches ``path`` (a regular
    expression) and whose method is in ``methods`` (every method when empty)."""

    path: str
    max_bytes: int
    methods: frozenset[str] = frozenset()
    error: ErrorStyle = "detail"
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", re.compile(self.path))

    def matches(self, method: str, path: str) -> bool:
        return (not self.methods or method in self.methods) and bool(
            self._pattern.fullmatch(path))


class BodyTooLarge(PayloadTooLarge):
    """Raised inside the application when its body read passes the limit."""


def _route_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses it; the streaming cap applies anyway
    return None


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        default_max_bytes: int,
        limits: Sequence[BodyLimit] = (),
        error: ErrorStyle = "detail",
    ) -> None:
        self.app = app
        self.default = BodyLimit(path=".*", max_bytes=default_max_bytes, error=error)
        self.limits = tuple(limits)

    def limit_for(self, method: str, path: str) -> BodyLimit:
        for limit in self.limits:
            if limit.matches(method, path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("method", "GET")), _route_path(scope))
        declared = _declared_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await _refuse(send, limit)
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:  # never ask the server for more once the limit is passed
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the application's answer to the interrupted read: replaced by 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(send, limit)


async def _refuse(send: Send, limit: BodyLimit) -> None:
    headers = [(b"content-type", b"application/json")]
    if limit.error == "aws":
        body = json.dumps({"message": PayloadTooLarge.aws_message}).encode()
        headers.append((b"x-amzn-errortype", PayloadTooLarge.aws_type.encode()))
    else:
        body = json.dumps({"detail": PayloadTooLarge.detail,
                           "max_bytes": limit.max_bytes}).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": PayloadTooLarge.status,
                "headers": headers})
    await send({"type": "http.response.body", "body": body})
