"""Kefu's WebSocket event model reads what Powertools' parser models read, no more loosely.

Kefu parses API Gateway's WebSocket events with its own small model (importing Powertools'
parser costs the connect and message functions' cold starts; docs/design-notes.md). These
tests pin it to Powertools' ``APIGatewayWebSocket*EventModel``: every field it reads is one of
theirs under the same name (or the one documented extension), and every event API Gateway
sends (the samples) or the gateway builds parses alike with both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from pydantic import BaseModel

from kefu_core.chat.events import Identity, RequestContext, WebSocketEvent
from kefu_core.gateway.events import EventSource, connect_event, disconnect_event, message_event

EVENTS = Path(__file__).resolve().parents[3] / "events"
COMMON: dict[str, Any] = {
    "connection_id": "abc=", "connected_at_ms": 1, "domain_name": "localhost:8080",
    "stage": "prod", "source_ip": "127.0.0.1", "api_id": "kefu-local",
}
POWERTOOLS: dict[str, type[BaseModel]] = {
    "CONNECT": APIGatewayWebSocketConnectEventModel,
    "MESSAGE": APIGatewayWebSocketMessageEventModel,
    "DISCONNECT": APIGatewayWebSocketDisconnectEventModel,
}
# API Gateway sends the query string on $connect; Powertools' connect model does not read it.
EXTENSIONS = {"queryStringParameters"}


def _aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _nested(model: type[BaseModel], alias: str) -> type[BaseModel]:
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias:
            annotation = field.annotation
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
            return annotation
    raise AssertionError(f"{model.__name__} has no field {alias}")


def test_every_field_kefu_reads_is_a_powertools_field() -> None:
    # GIVEN the fields of Powertools' three WebSocket event models, at each level
    events: set[str] = set()
    contexts: set[str] = set()
    identities: set[str] = set()
    for model in POWERTOOLS.values():
        events |= _aliases(model)
        context = _nested(model, "requestContext")
        contexts |= _aliases(context)
        identities |= _aliases(_nested(context, "identity"))
    # THEN Kefu's model reads none they do not (but the query string of $connect)
    assert _aliases(WebSocketEvent) - events == EXTENSIONS
    assert _aliases(RequestContext) <= contexts
    assert _aliases(Identity) <= identities


def _samples() -> list[tuple[str, dict[str, Any]]]:
    found = [(name, json.loads((EVENTS / name).read_text()))
             for name in ("connect.json", "message.json", "default.json", "disconnect.json")]
    return [
        *found,
        ("gateway connect", connect_event(EventSource(**COMMON, user_agent="ua"),
                                          headers={"Host": "x", "Origin": "https://a.example"},
                                          query={"token": ["t"]})),
        ("gateway message", message_event(EventSource(**COMMON, user_agent="ua"),
                                          route_key="message", body="{}")),
        ("gateway disconnect", disconnect_event(EventSource(**COMMON), status_code=1001,
                                                reason="going away")),
    ]


@pytest.mark.parametrize(("name", "event"), _samples(), ids=[n for n, _ in _samples()])
def test_kefu_and_powertools_read_each_event_alike(name: str, event: dict[str, Any]) -> None:
    # GIVEN an event API Gateway sends, or one the self-hosted gateway builds
    kind = event["requestContext"]["eventType"]
    # WHEN both models parse it
    theirs: Any = POWERTOOLS[kind].model_validate(event)
    ours = WebSocketEvent.model_validate(event)
    # THEN they read the same values
    mine, other = ours.request_context, theirs.request_context
    assert (mine.route_key, mine.event_type, mine.connection_id) == \
        (other.route_key, other.event_type, other.connection_id)
    assert (mine.domain_name, mine.stage, mine.api_id, mine.request_id) == \
        (other.domain_name, other.stage, other.api_id, other.request_id)
    assert mine.identity.user_agent == other.identity.user_agent
    # (Powertools reads the address as a network: 203.0.113.24/32)
    assert mine.identity.source_ip is not None
    assert other.identity.source_ip.network_address.compressed == mine.identity.source_ip
    assert ours.headers == getattr(theirs, "headers", None)
    assert ours.body == getattr(theirs, "body", None)
    if kind == "DISCONNECT":
        assert (mine.disconnect_status_code, mine.disconnect_reason) == \
            (other.disconnect_status_code, other.disconnect_reason)
    if kind == "CONNECT":
        assert ours.query("token") == event["queryStringParameters"]["token"]
