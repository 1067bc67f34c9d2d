"""Events in the exact shape API Gateway (WebSocket, Lambda proxy) sends."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["EventSource", "connect_event", "disconnect_event", "message_event",
           "new_connection_id", "route_for"]


def new_connection_id() -> str:
    """An id shaped like API Gateway's (``L0SM9cOFvHcCIhw=``), safe in a URL path."""
    raw = base64.b64encode(secrets.token_bytes(10)).decode()
    return raw.replace("+", "A").replace("/", "B")


def route_for(body: str | None, *, routes: frozenset[str]) -> str:
    """``$request.body.action`` route selection; ``$default`` when it does not resolve."""
    try:
        action = json.loads(body or "").get("action")
    except (ValueError, AttributeError, RecursionError):
        return "$default"
    return action if isinstance(action, str) and action in routes else "$default"


def _request_time(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


@dataclass(frozen=True)
class EventSource:
    """Where an event comes from: the connection, as every event of it carries it."""

    connection_id: str
    connected_at_ms: int
    domain_name: str
    stage: str
    source_ip: str
    api_id: str
    user_agent: str | None = None


def _context(source: EventSource, *, route_key: str, event_type: str) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    request_id = base64.b64encode(secrets.token_bytes(9)).decode()
    identity: dict[str, Any] = {"sourceIp": source.source_ip}
    if source.user_agent:
        identity["userAgent"] = source.user_agent
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": _request_time(now_ms),
        "messageDirection": "IN",
        "stage": source.stage,
        "connectedAt": source.connected_at_ms,
        "requestTimeEpoch": now_ms,
        "identity": identity,
        "requestId": request_id,
        "domainName": source.domain_name,
        "connectionId": source.connection_id,
        "apiId": source.api_id,
    }


def connect_event(
    source: EventSource, *, headers: dict[str, str], query: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "requestContext": _context(source, route_key="$connect", event_type="CONNECT"),
        "isBase64Encoded": False,
    }


def message_event(source: EventSource, *, route_key: str, body: str) -> dict[str, Any]:
    context = _context(source, route_key=route_key, event_type="MESSAGE")
    context["messageId"] = uuid.uuid4().hex[:16]
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(source: EventSource, *, status_code: int, reason: str) -> dict[str, Any]:
    context = _context(source, route_key="$disconnect", event_type="DISCONNECT")
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    headers = {"Host": source.domain_name}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }
