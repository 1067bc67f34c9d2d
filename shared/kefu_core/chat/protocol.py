"""The WebSocket frame protocol (reference: docs/protocol.md).

Client -> server frames carry ``action`` (API Gateway selects the route on it):

- ``{"action": "message", "client_msg_id": str, "text": str}``: a visitor or agent message.
- ``{"action": "sync", "last_seq": int}``: resume; the server replays every message after it.
- ``{"action": "ping"}``: keep-alive; answered with ``pong``.

Visitor frames of the customer-service layer (reference: docs/console.md):

- ``handoff`` (ask for a human), ``typing``, ``end`` (close the conversation),
  ``csat`` (``score`` 1-5, ``comment``), ``offline_message`` (``name``, ``contact``, ``text``).

Agent (and admin) frames, all but ``presence``/``queue``/``agents`` naming a
``conversation_id``: ``presence`` (``online``/``away``), ``queue``, ``agents``, ``open``,
``take``, ``reply`` (``client_msg_id``, ``text``), ``suggest``, ``note`` (``text``),
``transfer`` (``agent_id``), ``release`` (back to the bot), ``close``, ``typing``.

Server -> client frames carry ``type``: ``ack``, ``delta``, ``final``, ``history``, ``state``,
``error``, ``pong``, ``busy``, ``message``, ``typing``, and for consoles ``queue``, ``agents``,
``conversation``, ``suggestion``, ``note``, ``assigned``, ``unassigned``, ``queue_changed``.
Builders below are the only place frames are shaped.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from kefu_core.infra.errors import BadFrame

__all__ = [
    "AnyClientFrame",
    "ClientFrame",
    "ConversationActionFrame",
    "CsatFrame",
    "EndFrame",
    "HandoffFrame",
    "ListFrame",
    "MessageFrame",
    "NoteFrame",
    "OfflineMessageFrame",
    "PingFrame",
    "PresenceFrame",
    "ReplyFrame",
    "SyncFrame",
    "TransferFrame",
    "TypingFrame",
    "encode",
    "error_frame",
    "parse_client_frame",
]

ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, strict=True)


class MessageFrame(_Frame):
    action: Literal["message"]
    client_msg_id: ClientMsgId
    text: str


class SyncFrame(_Frame):
    action: Literal["sync"]
    last_seq: int = Field(ge=0)


class PingFrame(_Frame):
    action: Literal["ping"]


class HandoffFrame(_Frame):
    """Visitor asks for a human."""

    action: Literal["handoff"]


ConversationId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F-]{32,36}$")]
AgentId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]


class TypingFrame(_Frame):
    action: Literal["typing"]
    conversation_id: ConversationId | None = None


class EndFrame(_Frame):
    """Visitor ends the conversation (then rates it)."""

    action: Literal["end"]


class CsatFrame(_Frame):
    action: Literal["csat"]
    score: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=1000)


class OfflineMessageFrame(_Frame):
    action: Literal["offline_message"]
    name: str = Field(default="", max_length=100)
    contact: str = Field(default="", max_length=200)
    text: str = Field(min_length=1, max_length=4000)


class PresenceFrame(_Frame):
    action: Literal["presence"]
    status: Literal["online", "away"] = "online"


class ListFrame(_Frame):
    """Console lists: the queue (waiting, bot-handled, mine) or the agents online."""

    action: Literal["queue", "agents"]


class ConversationActionFrame(_Frame):
    action: Literal["open", "take", "suggest", "release", "close"]
    conversation_id: ConversationId


class ReplyFrame(_Frame):
    action: Literal["reply"]
    conversation_id: ConversationId
    client_msg_id: ClientMsgId
    text: str


class NoteFrame(_Frame):
    action: Literal["note"]
    conversation_id: ConversationId
    text: str = Field(min_length=1, max_length=4000)


class TransferFrame(_Frame):
    action: Literal["transfer"]
    conversation_id: ConversationId
    agent_id: AgentId


AnyClientFrame = (
    MessageFrame | SyncFrame | PingFrame | HandoffFrame | TypingFrame | EndFrame | CsatFrame
    | OfflineMessageFrame | PresenceFrame | ListFrame | ConversationActionFrame | ReplyFrame
    | NoteFrame | TransferFrame
)
ClientFrame = Annotated[AnyClientFrame, Field(discriminator="action")]
_client_frame: TypeAdapter[AnyClientFrame] = TypeAdapter(ClientFrame)
KNOWN_ACTIONS = frozenset({
    "message", "sync", "ping", "handoff", "typing", "end", "csat", "offline_message",
    "presence", "queue", "agents", "open", "take", "suggest", "release", "close", "reply",
    "note", "transfer",
})


def parse_client_frame(
    body: str | None, *, max_frame_bytes: int, max_text_chars: int
) -> AnyClientFrame:
    """Validate one client frame; raise :class:`BadFrame` with a precise code otherwise."""
    if body is None or body == "":
        raise BadFrame("bad_json", "empty frame")
    if len(body.encode("utf-8", errors="replace")) > max_frame_bytes:
        raise BadFrame("frame_too_large", f"frames are limited to {max_frame_bytes} bytes")
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadFrame("bad_json", "frame is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise BadFrame("bad_frame", "frame must be a JSON object")
    action = raw.get("action")
    client_msg_id = raw.get("client_msg_id") if isinstance(raw.get("client_msg_id"), str) else None
    try:  # JSON escapes can spell lone surrogates, which no store can keep as UTF-8
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadFrame("bad_encoding", "text must be valid Unicode (no lone surrogates)",
                       client_msg_id=client_msg_id) from exc
    if "\x00" in body or "\\u0000" in body:  # PostgreSQL text cannot hold NUL
        raise BadFrame("bad_encoding", "text must not contain NUL characters",
                       client_msg_id=client_msg_id)
    if not isinstance(action, str) or action not in KNOWN_ACTIONS:
        raise BadFrame(
            "unknown_action", f"unknown action {str(action)[:32]!r}", client_msg_id=client_msg_id
        )
    try:
        frame = _client_frame.validate_python(raw)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"][1:]) for err in exc.errors())
        raise BadFrame(
            "invalid_frame", f"invalid fields: {fields or 'frame'}", client_msg_id=client_msg_id
        ) from exc
    if isinstance(frame, MessageFrame | ReplyFrame):
        text = frame.text.strip()
        if not text:
            raise BadFrame("empty_text", "text is empty", client_msg_id=frame.client_msg_id)
        if len(text) > max_text_chars:
            raise BadFrame(
                "text_too_long",
                f"text is limited to {max_text_chars} characters",
                client_msg_id=frame.client_msg_id,
            )
        frame = frame.model_copy(update={"text": text})
    return frame


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def error_frame(code: str, message: str, *, client_msg_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if client_msg_id:
        frame["client_msg_id"] = client_msg_id
    return frame


def ack_frame(
    *, conversation_id: str, client_msg_id: str, seq: int, duplicate: bool
) -> dict[str, Any]:
    return {
        "type": "ack",
        "conversation_id": conversation_id,
        "client_msg_id": client_msg_id,
        "seq": seq,
        "duplicate": duplicate,
    }


def delta_frame(*, conversation_id: str, seq: int, reply_to: int, offset: int, text: str) -> dict[
    str, Any
]:
    return {
        "type": "delta",
        "conversation_id": conversation_id,
        "seq": seq,
        "reply_to": reply_to,
        "offset": offset,
        "text": text,
    }


def final_frame(
    *,
    conversation_id: str,
    seq: int,
    reply_to: int,
    text: str,
    status: str,
    engine: str | None,
    fallback_used: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "final",
        "conversation_id": conversation_id,
        "seq": seq,
        "reply_to": reply_to,
        "text": text,
        "status": status,
        "engine": engine,
        "fallback_used": fallback_used,
    }
    if reason:
        frame["reason"] = reason
    return frame
