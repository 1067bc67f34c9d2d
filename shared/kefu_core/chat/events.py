"""API Gateway WebSocket event shapes (Lambda proxy integration), parsed with pydantic.

One model reads the ``$connect``, ``$disconnect`` and message events: the fields Kefu uses,
each under the name and alias of Powertools' ``APIGatewayWebSocket*EventModel`` (plus the query
string of ``$connect``, which Powertools' connect model does not read). It is not a subclass of
those: importing Powertools' parser triples this module's import time on every cold start of
the connect, message and disconnect functions (docs/design-notes.md, "WebSocket events").
tests/unit/core/test_websocket_events.py keeps it a faithful subset of theirs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Identity", "RequestContext", "StreamPayload", "WebSocketEvent"]


class _AwsModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Identity(_AwsModel):
    source_ip: str | None = Field(default=None, alias="sourceIp")
    user_agent: str | None = Field(default=None, alias="userAgent")


class RequestContext(_AwsModel):
    route_key: str = Field(alias="routeKey")
    event_type: str = Field(alias="eventType")
    connection_id: str = Field(alias="connectionId")
    domain_name: str | None = Field(default=None, alias="domainName")
    stage: str | None = None
    api_id: str | None = Field(default=None, alias="apiId")
    request_id: str | None = Field(default=None, alias="requestId")
    connected_at: int | None = Field(default=None, alias="connectedAt")
    request_time_epoch: int | None = Field(default=None, alias="requestTimeEpoch")
    identity: Identity = Field(default_factory=Identity)
    disconnect_status_code: int | None = Field(default=None, alias="disconnectStatusCode")
    disconnect_reason: str | None = Field(default=None, alias="disconnectReason")


class WebSocketEvent(_AwsModel):
    request_context: RequestContext = Field(alias="requestContext")
    query_string_parameters: dict[str, str] | None = Field(
        default=None, alias="queryStringParameters"
    )
    headers: dict[str, str] | None = None
    body: str | None = None
    is_base64_encoded: bool = Field(default=False, alias="isBase64Encoded")

    def query(self, name: str) -> str | None:
        return (self.query_string_parameters or {}).get(name)


class StreamPayload(_AwsModel):
    """What the ``message`` function sends to ``stream`` (Lambda async invoke)."""

    kind: str = "stream"
    tenant_id: str
    conversation_id: str
    reply_to_seq: int
    text: str | None = None  # the visitor's message, so the reply needs no database read
    client_msg_id: str | None = None
    connection_id: str | None = None
    domain_name: str | None = None
    stage: str | None = None
    # When the visitor's message was stored (epoch milliseconds): first-token latency metric.
    received_ms: int | None = None
    # The message's kept image (chat.images: its key, type and size), for an engine that reads
    # images; never the bytes.
    image: dict[str, Any] | None = None

    def to_event(self) -> dict[str, Any]:
        return self.model_dump()
