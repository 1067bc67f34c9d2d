"""Exceptions of the core package, and how each one reaches a client.

Tree::

    KefuError               a server bug                                    internal_error  500
    ├── ConfigError         the configuration cannot be served (the process refuses to start)
    ├── BadFrame            a client frame we refuse (code says why); nothing was stored    400
    ├── Unauthorized        missing, expired or forged token; revoked access                401
    ├── Forbidden           valid token, not allowed here                                   403
    ├── NotConnected        the connection record expired                                   410
    ├── ConversationClosed  the conversation no longer takes messages                       409
    ├── Conflict            the thing to create already exists                              409
    ├── PayloadTooLarge     a request body over its route's limit                           413
    ├── RateLimited         too many frames or requests; ``retry_after`` seconds            429
    ├── Unavailable         a dependency is down: nothing was done, try again               503
    │   └── StoreError      a store (Redis, PostgreSQL) failed; converted with ``raise ... from``
    ├── TransportError      posting to a connection failed for another reason               500
    │   └── ReplyNotStarted the message is stored but its reply could not be started       503
    └── GoneError           the target WebSocket connection no longer exists                410

This module is the one mapping from an error to what a client sees. Each class says it with
:func:`answers`, which sets these class attributes (an instance may narrow them, as
:class:`BadFrame` does; a subclass elsewhere may use :func:`answers` too):

- ``code``, ``message``, ``retry``: the WebSocket error frame (``protocol.error_frame_for``);
  ``retry`` means resending the same frame can succeed. ``code`` also labels the error metric.
- ``status``, ``detail``: the HTTP answer of the admin API (``{"detail": ...}``) and the
  status of every other HTTP surface (the gateway's handshake and management API, ``kefu
  local``'s HTTP API, the body limits), which word their bodies as the AWS service they stand
  for does: ``aws_type`` (``x-amzn-ErrorType``) and ``aws_message``.

Exception text never reaches a client: only these attributes do.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar

__all__ = [
    "BadFrame",
    "ConfigError",
    "Conflict",
    "ConversationClosed",
    "Forbidden",
    "GoneError",
    "KefuError",
    "LimitReached",
    "NotConnected",
    "PayloadTooLarge",
    "RateLimited",
    "ReplyNotStarted",
    "StoreError",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "answers",
    "reason_phrase",
]


class KefuError(Exception):
    """Base of every core error: a server bug, unless a subclass says otherwise."""

    code: str = "internal_error"
    message: str = "something went wrong; please resend"
    retry: bool = False
    status: int = 500
    detail: str = "internal error"
    aws_type: str = "InternalServerErrorException"
    aws_message: str = "Internal server error"


E = TypeVar("E", bound=type[KefuError])


def answers(
    *, code: str | None = None, message: str | None = None, status: int | None = None,
    detail: str | None = None, retry: bool | None = None, aws_type: str | None = None,
    aws_message: str | None = None,
) -> Callable[[E], E]:
    """Class decorator: what clients are told about this error (unset: as its base class)."""
    given = {"code": code, "message": message, "status": status, "detail": detail,
             "retry": retry, "aws_type": aws_type, "aws_message": aws_message}

    def decorate(kind: E) -> E:
        for name, value in given.items():
            if value is not None:
                setattr(kind, name, value)
        return kind

    return decorate


@answers(code="configuration_error")
class ConfigError(KefuError):
    """The configuration cannot be served: the process refuses to start."""


@answers(status=400, detail="bad request")
class BadFrame(KefuError):
    """A client frame we refuse (``code`` says why); nothing was stored."""

    def __init__(self, code: str, message: str, *, client_msg_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_msg_id = client_msg_id


@answers(code="unauthorized", message="your access changed: sign in again", status=401,
         detail="unauthorized")
class Unauthorized(KefuError):
    """A missing, expired or forged token, or a staff token whose access changed."""


@answers(code="forbidden", message="not allowed", status=403, detail="forbidden",
         aws_type="ForbiddenException", aws_message="Forbidden")
class Forbidden(KefuError):
    """A valid token that is not allowed here."""


@answers(code="not_connected", message="reconnect to continue", status=410,
         detail="not connected")
class NotConnected(KefuError):
    """The connection record expired: the client reconnects."""


@answers(code="conversation_closed", message="this conversation is closed", status=409,
         detail="conversation closed")
class ConversationClosed(KefuError):
    """The conversation no longer takes messages."""


@answers(code="conflict", message="already exists", status=409, detail="already exists")
class Conflict(KefuError):
    """The thing to create already exists (an agent's e-mail address, a tenant id)."""


@answers(status=409, detail="limit reached")
class LimitReached(KefuError):
    """The tenant already has as many of these as it may keep (curated answers)."""


@answers(code="frame_too_large", message="too large", status=413,
         detail="request body too large", aws_type="PayloadTooLargeException",
         aws_message="Payload too large")
class PayloadTooLarge(KefuError):
    """A request body or frame over its limit."""


@answers(code="rate_limited", message="too many frames; slow down and resend", status=429,
         detail="too many requests; try again later")
class RateLimited(KefuError):
    """Too many frames or requests: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = max(1, retry_after)


@answers(code="temporarily_unavailable", message="not stored, please resend", retry=True,
         status=503, detail="temporarily unavailable")
class Unavailable(KefuError):
    """A dependency is down; nothing was done, so the same request can be resent."""


class StoreError(Unavailable):
    """A store (Redis, PostgreSQL) failed; converted with ``raise ... from``."""


@answers(code="transport_error", aws_message="Delivery failed")
class TransportError(KefuError):
    """Posting to a connection or invoking a function failed."""


@answers(code="reply_not_started", message="stored; resend to get the reply", retry=True,
         status=503, detail="temporarily unavailable")
class ReplyNotStarted(TransportError):
    """The message is stored but its reply could not be started: resend it."""


@answers(code="gone", message="the connection is gone", status=410, detail="gone",
         aws_type="GoneException", aws_message="Connection is gone")
class GoneError(KefuError):
    """The target WebSocket connection no longer exists."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id} is gone")
        self.connection_id = connection_id


def reason_phrase(error: KefuError | type[KefuError]) -> str:
    """The standard reason phrase of the error's HTTP status (``Request Entity Too Large``)."""
    return HTTPStatus(error.status).phrase
