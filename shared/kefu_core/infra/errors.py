"""Exceptions of the core package.

Tree::

    KefuError
    ├── ConfigError         the configuration cannot be served (the process refuses to start)
    ├── BadFrame            a client frame we refuse (code says why); nothing was stored
    ├── Unauthorized        missing, expired or forged token
    ├── Forbidden           valid token, not allowed here
    ├── ConversationClosed  the conversation no longer takes messages
    ├── StoreError          a store (Redis, PostgreSQL) failed; converted with ``raise ... from``
    ├── TransportError      posting to a connection failed for another reason
    └── GoneError           the target WebSocket connection no longer exists (HTTP 410)

Errors reach clients only through ``protocol.error_frame``, never as exception text.
"""

from __future__ import annotations

__all__ = [
    "BadFrame",
    "ConfigError",
    "ConversationClosed",
    "Forbidden",
    "GoneError",
    "KefuError",
    "StoreError",
    "TransportError",
    "Unauthorized",
]


class KefuError(Exception):
    """Base of every core error."""

    code = "internal_error"


class ConfigError(KefuError):
    code = "configuration_error"


class BadFrame(KefuError):
    def __init__(self, code: str, message: str, *, client_msg_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_msg_id = client_msg_id


class Unauthorized(KefuError):
    code = "unauthorized"


class Forbidden(KefuError):
    code = "forbidden"


class ConversationClosed(KefuError):
    code = "conversation_closed"


class StoreError(KefuError):
    code = "store_unavailable"


class TransportError(KefuError):
    code = "transport_error"


class GoneError(KefuError):
    code = "gone"

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id} is gone")
        self.connection_id = connection_id
