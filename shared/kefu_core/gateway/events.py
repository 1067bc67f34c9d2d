"""Events in the exact shape API Gateway (WebSocket, Lambda proxy) sends."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

__all__ = ["connect_event", "disconnect_event", "message_event", "new_connection_id", "route_for"]


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


def _context(
    *,
    route_key: str,
    event_type: str,
    connection_id: str,
    connected_at_ms: int,
    domain_name: str,
    stage: str,
    source_ip: str,
    user_agent: str | None,
    api_id: str,
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    request_id = base64.b64encode(secrets.token_bytes(9)).decode()
    identity: dict[str, Any] = {"sourceIp": source_ip}
    if user_agent:
        identity["userAgent"] = user_agent
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": _request_time(now_ms),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at_ms,
        "requestTimeEpoch": now_ms,
        "identity": identity,
        "requestId": request_id,
        "domainName": domain_name,
        "connectionId": connection_id,
        "apiId": api_id,
    }


def connect_event(
    *,
    connection_id: str,
    connected_at_ms: int,
    headers: dict[str, str],
    query: dict[str, list[str]],
    domain_name: str,
    stage: str,
    source_ip: str,
    api_id: str,
) -> dict[str, Any]:
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "requestContext": _context(
            route_key="$connect", event_type="CONNECT", connection_id=connection_id,
            connected_at_ms=connected_at_ms, domain_name=domain_name, stage=stage,
            source_ip=source_ip, user_agent=headers.get("user-agent"), api_id=api_id,
        ),
        "isBase64Encoded": False,
    }


def message_event(
    *,
    route_key: str,
    body: str,
    connection_id: str,
    connected_at_ms: int,
    domain_name: str,
    stage: str,
    source_ip: str,
    user_agent: str | None,
    api_id: str,
) -> dict[str, Any]:
    context = _context(
        route_key=route_key, event_type="MESSAGE", connection_id=connection_id,
        connected_at_ms=connected_at_ms, domain_name=domain_name, stage=stage,
        source_ip=source_ip, user_agent=user_agent, api_id=api_id,
    )
    context["messageId"] = uuid.uuid4().hex[:16]
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(
    *,
    connection_id: str,
    connected_at_ms: int,
    domain_name: str,
    stage: str,
    source_ip: str,
    user_agent: str | None,
    api_id: str,
    status_code: int,
    reason: str,
) -> dict[str, Any]:
    context = _context(
        route_key="$disconnect", event_type="DISCONNECT", connection_id=connection_id,
        connected_at_ms=connected_at_ms, domain_name=domain_name, stage=stage,
        source_ip=source_ip, user_agent=user_agent, api_id=api_id,
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    headers = {"Host": domain_name}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }
