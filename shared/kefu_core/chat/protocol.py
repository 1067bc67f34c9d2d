"""The WebSocket frame protocol (reference: docs/protocol.md).

Client -> server frames carry ``action`` (API Gateway selects the route on it):

- ``{"action": "message", "client_msg_id": str, "text": str}``: a visitor or agent message.
- ``{"action": "sync", "last_seq": int}``: resume; the server replays every message after it.
- ``{"action": "ping"}``: keep-alive; answered with ``pong``.
- ``{"action": "upload", "client_msg_id": str, "content_type": str, "size": int}``: a form to
  upload an image to (``upload``); the message then names it (``"image": upload_id``).

Visitor frames of the customer-service layer (reference: docs/console.md):

- ``handoff`` (ask for a human), ``typing``, ``end`` (close the conversation),
  ``csat`` (``score`` 1-5, ``comment``), ``feedback`` (``seq`` of a bot reply, ``rating``
  ``up``/``down``, ``reason``), ``offline_message`` (``name``, ``contact``, ``text``),
  ``context`` (the page ``url`` and ``title``, ``referrer``, ``language``, ``time_zone``).

Agent (and admin) frames, all but ``presence``/``queue``/``agents`` naming a
``conversation_id``: ``presence`` (``online``/``away``), ``queue``, ``agents``, ``open``,
``take``, ``reply`` (``client_msg_id``, ``text``, ``image``), ``suggest``, ``note`` (``text``),
``transfer`` (``agent_id``), ``release`` (back to the bot), ``close``, ``typing``.

Server -> client frames carry ``type``: ``ack``, ``delta``, ``final``, ``history``, ``state``,
``error``, ``pong``, ``busy``, ``message``, ``typing``, ``csat_saved``, ``feedback_saved``,
``offline_saved``, ``upload``, and
for consoles ``csat``, ``presence``, ``queue``, ``agents``, ``conversation``, ``suggestion``,
``note``, ``assigned``, ``unassigned``, ``queue_changed``, ``offline_message``. Each is a TypedDict
(``...Out``) made by one builder below (``..._frame``); nothing else in kefu_core shapes a
server frame (tests/unit/core/test_frame_builders.py checks it, and that docs/protocol.md
documents every type).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from kefu_core.infra.errors import BadFrame, KefuError, ReplyNotStarted, StoreError
from kefu_core.security import roles

_orjson: ModuleType | None
try:  # frames are encoded with orjson when installed (the self-hosted gateway): ~5x faster
    import orjson as _orjson
except ImportError:  # pragma: no cover - not in the Lambda layers
    _orjson = None

__all__ = [
    "AckOut",
    "AgentsOut",
    "AnyClientFrame",
    "AssignedOut",
    "BusyOut",
    "ClientFrame",
    "ContextFrame",
    "ConversationActionFrame",
    "ConversationOut",
    "CsatFrame",
    "CsatOut",
    "CsatSavedOut",
    "DeltaOut",
    "EndFrame",
    "ErrorOut",
    "FeedbackFrame",
    "FeedbackSavedOut",
    "FinalOut",
    "HandoffFrame",
    "HistoryOut",
    "HoursNow",
    "ListFrame",
    "MessageFrame",
    "MessageOut",
    "NoteFrame",
    "NoteOut",
    "OfflineMessageFrame",
    "OfflineMessageOut",
    "OfflineSavedOut",
    "PingFrame",
    "PongOut",
    "PresenceFrame",
    "PresenceOut",
    "QueueChangedOut",
    "QueueOut",
    "ReplyFrame",
    "ServerFrame",
    "StateOut",
    "SuggestionOut",
    "SuggestionStatus",
    "SyncFrame",
    "TransferFrame",
    "TypingFrame",
    "TypingOut",
    "UnassignedOut",
    "UnsupportedSpan",
    "UploadFrame",
    "UploadOut",
    "ack_frame",
    "agents_frame",
    "assigned_frame",
    "busy_frame",
    "conversation_frame",
    "csat_frame",
    "csat_saved_frame",
    "delta_frame",
    "encode",
    "error_frame",
    "error_frame_for",
    "feedback_saved_frame",
    "final_frame",
    "history_frames",
    "message_frame",
    "not_stored_frame",
    "note_frame",
    "offline_message_frame",
    "offline_saved_frame",
    "parse_client_frame",
    "pong_frame",
    "presence_frame",
    "queue_changed_frame",
    "queue_frame",
    "queue_position_frame",
    "reply_not_started_frame",
    "state_frame",
    "suggestion_frame",
    "typing_frame",
    "unassigned_frame",
    "upload_frame",
]

ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, strict=True)


UploadId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class MessageFrame(_Frame):
    action: Literal["message"]
    client_msg_id: ClientMsgId
    text: str = ""
    image: UploadId | None = None  # an upload of this conversation (docs/protocol.md "Images")


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


class FeedbackFrame(_Frame):
    """A visitor's 👍 (``up``) or 👎 (``down``) on bot reply ``seq``, with an optional reason;
    sent again, it changes the rating."""

    action: Literal["feedback"]
    seq: int = Field(ge=1, le=2**31 - 1)
    rating: Literal["up", "down"]
    reason: str = Field(default="", max_length=500)


class OfflineMessageFrame(_Frame):
    action: Literal["offline_message"]
    name: str = Field(default="", max_length=100)
    contact: str = Field(default="", max_length=200)
    text: str = Field(min_length=1, max_length=4000)


class ContextFrame(_Frame):
    """Where the visitor is (kefu_core.product.visitor_context); every field optional."""

    action: Literal["context"]
    url: str = Field(default="", max_length=2000)
    title: str = Field(default="", max_length=300)
    referrer: str = Field(default="", max_length=2000)
    language: str = Field(default="", max_length=35)
    time_zone: str = Field(default="", max_length=64)


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
    text: str = ""
    image: UploadId | None = None


class UploadFrame(_Frame):
    """Ask for a form to upload one image (``content_type``, ``size`` bytes) to; agents name
    the conversation, a visitor's is their own. ``client_msg_id`` is echoed."""

    action: Literal["upload"]
    client_msg_id: ClientMsgId
    content_type: str = Field(max_length=100)
    size: int = Field(ge=1, le=2**31 - 1)
    conversation_id: ConversationId | None = None


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
    | FeedbackFrame | OfflineMessageFrame | PresenceFrame | ListFrame | ConversationActionFrame
    | ReplyFrame | NoteFrame | TransferFrame | ContextFrame | UploadFrame
)
ClientFrame = Annotated[AnyClientFrame, Field(discriminator="action")]
_client_frame: TypeAdapter[AnyClientFrame] = TypeAdapter(ClientFrame)
KNOWN_ACTIONS = frozenset({
    "message", "sync", "ping", "handoff", "typing", "end", "csat", "feedback",
    "offline_message", "presence", "queue", "agents", "open", "take", "suggest", "release",
    "close", "reply", "note", "transfer", "context", "upload",
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
        if not text and frame.image is None:
            raise BadFrame("empty_text", "text is empty", client_msg_id=frame.client_msg_id)
        if len(text) > max_text_chars:
            raise BadFrame(
                "text_too_long",
                f"text is limited to {max_text_chars} characters",
                client_msg_id=frame.client_msg_id,
            )
        frame = frame.model_copy(update={"text": text})
    return frame


# -- server -> client ---------------------------------------------------------------------------
# Each frame type is a TypedDict and has one builder below; docs/protocol.md documents every one.
# Keys are written in the order the frames have always carried on the wire.

Json = dict[str, Any]


class AckOut(TypedDict):
    type: Literal["ack"]
    conversation_id: str
    client_msg_id: str
    seq: int
    duplicate: bool


class DeltaOut(TypedDict):
    type: Literal["delta"]
    conversation_id: str
    seq: int
    reply_to: int
    offset: int
    text: str


class FinalOut(TypedDict):
    type: Literal["final"]
    conversation_id: str
    seq: int
    reply_to: int
    text: str
    status: str
    engine: str | None
    fallback_used: bool
    reason: NotRequired[str]
    unsupported: NotRequired[list[UnsupportedSpan]]


class UnsupportedSpan(TypedDict):
    """A sentence of a reply that the grounding check found in no source: code points
    ``[start, end)`` of the reply's text, and why (``number``, ``unmatched``, ``negation``)."""

    start: int
    end: int
    reason: str


class ErrorOut(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    client_msg_id: NotRequired[str]
    retry: NotRequired[bool]
    reply_to: NotRequired[int]
    conversation_id: NotRequired[str]


class PongOut(TypedDict):
    type: Literal["pong"]


class HistoryOut(TypedDict):
    type: Literal["history"]
    conversation_id: str | None  # None: the visitor has not started a conversation yet
    owner: str
    last_seq: int
    messages: list[Json]
    more: bool


class BusyOut(TypedDict):
    type: Literal["busy"]
    conversation_id: str
    retry_after_s: float


class MessageOut(TypedDict):
    type: Literal["message"]
    conversation_id: str
    seq: int
    role: Literal[roles.Visitor, roles.Agent]
    text: str
    client_msg_id: str | None
    agent_name: NotRequired[str | None]
    image: NotRequired[Json]


class UploadOut(TypedDict):
    type: Literal["upload"]
    conversation_id: str
    client_msg_id: str
    upload_id: str
    url: str
    fields: dict[str, str]
    max_bytes: int
    expires_in: int


class TypingOut(TypedDict):
    type: Literal["typing"]
    role: Literal[roles.Visitor, roles.Agent]
    name: NotRequired[str | None]
    conversation_id: str


class HoursNow(TypedDict):
    """A tenant's business hours at a moment (kefu_core.product.business_hours)."""

    open: bool
    next_opening: str | None
    time_zone: str | None


class StateOut(TypedDict):
    type: Literal["state"]
    conversation_id: str
    state: Literal["bot", "queued", "agent_joined", "closed"]
    position: NotRequired[int | None]
    agents_online: NotRequired[bool]
    opens_at: NotRequired[str | None]
    time_zone: NotRequired[str | None]
    agent_id: NotRequired[str | None]
    agent_name: NotRequired[str | None]
    seq: NotRequired[int]


class CsatOut(TypedDict):
    type: Literal["csat"]
    conversation_id: str
    score: int
    comment: str


class CsatSavedOut(TypedDict):
    type: Literal["csat_saved"]
    conversation_id: str
    score: int


class FeedbackSavedOut(TypedDict):
    type: Literal["feedback_saved"]
    conversation_id: str
    seq: int
    rating: str


class OfflineSavedOut(TypedDict):
    type: Literal["offline_saved"]
    id: int


class OfflineMessageOut(TypedDict):
    type: Literal["offline_message"]
    id: int


class PresenceOut(TypedDict):
    type: Literal["presence"]
    status: Literal["online", "away"]


class QueueOut(TypedDict):
    type: Literal["queue"]
    waiting: list[Json]
    bot: list[Json]
    mine: list[Json]
    others: list[Json]
    hours: HoursNow


class AgentsOut(TypedDict):
    type: Literal["agents"]
    online: list[Json]
    all: list[Json]


class NoteOut(TypedDict):
    type: Literal["note"]
    id: int
    conversation_id: str
    agent_id: str
    agent_name: str | None
    text: str
    created_at: str


class ConversationOut(TypedDict):
    type: Literal["conversation"]
    conversation: Json
    state: StateOut
    messages: list[Json]
    notes: list[Json]
    csat: Json | None
    customer: Any
    visitor_context: Json | None
    earlier: list[Json]


# ``complete`` / ``incomplete``: a draft in ``text``; ``none``: the engine had nothing to
# answer from (no draft: its "don't know" line is not offered); ``unavailable``: no engine.
SuggestionStatus = Literal["complete", "incomplete", "none", "unavailable"]


class SuggestionOut(TypedDict):
    type: Literal["suggestion"]
    conversation_id: str
    text: str
    engine: str | None
    status: SuggestionStatus


class QueueChangedOut(TypedDict):
    type: Literal["queue_changed"]
    conversation_id: str
    event: str


class AssignedOut(TypedDict):
    type: Literal["assigned"]
    conversation_id: str
    visitor_id: str


class UnassignedOut(TypedDict):
    type: Literal["unassigned"]
    conversation_id: str
    reason: Literal["transferred"]


ServerFrame = (
    AckOut | DeltaOut | FinalOut | ErrorOut | PongOut | HistoryOut | BusyOut
    | MessageOut | TypingOut | StateOut | CsatSavedOut | CsatOut | FeedbackSavedOut
    | OfflineSavedOut
    | OfflineMessageOut | PresenceOut | QueueOut | AgentsOut | NoteOut
    | ConversationOut | SuggestionOut | QueueChangedOut | AssignedOut | UnassignedOut
    | UploadOut
)


def encode(frame: Mapping[str, Any]) -> str:
    if _orjson is not None:
        try:
            return str(_orjson.dumps(frame).decode())
        except (TypeError, _orjson.JSONEncodeError):  # e.g. a lone surrogate: as json does
            pass
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def error_frame(
    code: str, message: str, *, client_msg_id: str | None = None, retry: bool = False
) -> ErrorOut:
    """A refused frame; ``retry`` tells the client to resend the same frame (nothing was
    stored, or the reply did not start)."""
    frame: ErrorOut = {"type": "error", "code": code, "message": message}
    if client_msg_id:
        frame["client_msg_id"] = client_msg_id
    if retry:
        frame["retry"] = True
    return frame


def error_frame_for(
    error: KefuError | type[KefuError], *, client_msg_id: str | None = None
) -> ErrorOut:
    """The error frame of a core error (its code, client message and retry flag: infra.errors
    holds the one mapping); never the exception's text."""
    return error_frame(error.code, error.message, client_msg_id=client_msg_id, retry=error.retry)


def not_stored_frame(client_msg_id: str | None) -> ErrorOut:
    """A store failed before the message was kept: resend it."""
    return error_frame_for(StoreError, client_msg_id=client_msg_id)


def reply_not_started_frame(
    client_msg_id: str | None, *, reply_to: int | None = None, conversation_id: str | None = None
) -> ErrorOut:
    """The message is stored but its reply could not start: resend it to start the reply."""
    frame = error_frame_for(ReplyNotStarted, client_msg_id=client_msg_id)
    if reply_to is not None:
        frame["reply_to"] = reply_to
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    return frame


def ack_frame(*, conversation_id: str, client_msg_id: str, seq: int, duplicate: bool) -> AckOut:
    return {"type": "ack", "conversation_id": conversation_id, "client_msg_id": client_msg_id,
            "seq": seq, "duplicate": duplicate}


def delta_frame(
    *, conversation_id: str, seq: int, reply_to: int, offset: int, text: str
) -> DeltaOut:
    return {"type": "delta", "conversation_id": conversation_id, "seq": seq,
            "reply_to": reply_to, "offset": offset, "text": text}


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
    unsupported: Sequence[Mapping[str, Any]] = (),
) -> FinalOut:
    frame: FinalOut = {
        "type": "final", "conversation_id": conversation_id, "seq": seq, "reply_to": reply_to,
        "text": text, "status": status, "engine": engine, "fallback_used": fallback_used,
    }
    if reason:
        frame["reason"] = reason
    if unsupported:
        frame["unsupported"] = [UnsupportedSpan(start=int(s["start"]), end=int(s["end"]),
                                                reason=str(s["reason"])) for s in unsupported]
    return frame


def pong_frame() -> PongOut:
    return {"type": "pong"}


def busy_frame(*, conversation_id: str, retry_after_s: float) -> BusyOut:
    return {"type": "busy", "conversation_id": conversation_id,
            "retry_after_s": round(retry_after_s, 1)}


def history_frames(
    *, conversation_id: str | None, owner: str, last_seq: int, messages: Sequence[Json],
    page_bytes: int,
) -> list[HistoryOut]:
    """The answer to ``sync``: the messages in pages of at most ``page_bytes`` (a single
    message larger than a page is cut and marked ``truncated``); ``more`` on all but the last."""
    head = encode({"type": "history", "conversation_id": conversation_id, "owner": owner,
                   "last_seq": last_seq})
    pages: list[list[Json]] = []
    page: list[Json] = []
    size = len(head) + 32
    for message in messages:
        item = message
        item_size = len(encode(item).encode()) + 1
        if item_size > page_bytes:  # a single huge message is cut for the replay, said so
            item = {**item, "text": item["text"][: page_bytes // 8], "truncated": True}
            item_size = len(encode(item).encode()) + 1
        if page and size + item_size > page_bytes:
            pages.append(page)
            page, size = [], len(head) + 32
        page.append(item)
        size += item_size
    pages.append(page)
    return [{"type": "history", "conversation_id": conversation_id, "owner": owner,
             "last_seq": last_seq, "messages": items, "more": index < len(pages) - 1}
            for index, items in enumerate(pages)]


def message_frame(
    *, conversation_id: str, seq: int, role: Literal[roles.Visitor, roles.Agent], text: str,
    client_msg_id: str | None, agent_name: str | None = None, image: Json | None = None,
) -> MessageOut:
    """A stored visitor or agent message, for the other connections watching it (an agent's
    carries the agent's name; one with an image, its expiring link)."""
    frame: MessageOut = {"type": "message", "conversation_id": conversation_id,
                               "seq": seq, "role": role, "text": text,
                               "client_msg_id": client_msg_id}
    if role == "agent":
        frame["agent_name"] = agent_name
    if image:
        frame["image"] = image
    return frame


def upload_frame(
    *, conversation_id: str, client_msg_id: str, upload_id: str, url: str,
    fields: dict[str, str], max_bytes: int, expires_in: int,
) -> UploadOut:
    """Answer to ``upload``: POST ``fields`` then the file (as ``file``) to ``url`` within
    ``expires_in`` seconds, then send the message with ``image: upload_id``."""
    return {"type": "upload", "conversation_id": conversation_id,
            "client_msg_id": client_msg_id, "upload_id": upload_id, "url": url,
            "fields": fields, "max_bytes": max_bytes, "expires_in": expires_in}


def typing_frame(
    *, conversation_id: str, role: Literal[roles.Visitor, roles.Agent], name: str | None = None
) -> TypingOut:
    """Someone is typing (an agent's carries the agent's name)."""
    if role == "agent":
        return {"type": "typing", "role": role, "name": name, "conversation_id": conversation_id}
    return {"type": "typing", "role": role, "conversation_id": conversation_id}


def state_frame(
    *, conversation_id: str, state: Literal["bot", "queued", "agent_joined", "closed"],
    position: int | None = None, agents_online: bool = False, agent_id: str | None = None,
    agent_name: str | None = None, seq: int | None = None, hours: HoursNow | None = None,
) -> StateOut:
    """Who owns a conversation now: ``queued`` carries the queue position and whether agents
    are online, and outside business hours when they are back (``opens_at``, ISO 8601 UTC,
    ``null`` when no opening is known, with the tenant's ``time_zone``); ``agent_joined`` the
    agent; ``seq`` is the system message that announced it."""
    frame: StateOut = {"type": "state", "conversation_id": conversation_id, "state": state}
    if state == "queued":
        frame["position"] = position
        frame["agents_online"] = agents_online
        _closed(frame, hours)
    elif state == "agent_joined":
        frame["agent_id"] = agent_id
        frame["agent_name"] = agent_name
    if seq is not None:
        frame["seq"] = seq
    return frame


def queue_position_frame(
    *, conversation_id: str, position: int, agents_online: bool, hours: HoursNow | None = None,
) -> StateOut:
    """A queued conversation's new position, for its visitor (with ``opens_at`` while the
    tenant is closed)."""
    frame: StateOut = {"type": "state", "state": "queued",
                       "conversation_id": conversation_id, "position": position,
                       "agents_online": agents_online}
    _closed(frame, hours)
    return frame


def _closed(frame: StateOut, hours: HoursNow | None) -> None:
    if hours is not None and not hours["open"]:
        frame["opens_at"] = hours["next_opening"]
        frame["time_zone"] = hours["time_zone"]


def csat_frame(*, conversation_id: str, score: int, comment: str) -> CsatOut:
    """To everyone watching the conversation (its agents): the visitor's rating."""
    return {"type": "csat", "conversation_id": conversation_id, "score": score,
            "comment": comment}


def csat_saved_frame(*, conversation_id: str, score: int) -> CsatSavedOut:
    return {"type": "csat_saved", "conversation_id": conversation_id, "score": score}


def feedback_saved_frame(*, conversation_id: str, seq: int, rating: str) -> FeedbackSavedOut:
    return {"type": "feedback_saved", "conversation_id": conversation_id, "seq": seq,
            "rating": rating}


def offline_saved_frame(message_id: int) -> OfflineSavedOut:
    return {"type": "offline_saved", "id": message_id}


def offline_message_frame(message_id: int) -> OfflineMessageOut:
    """To the tenant's consoles: a visitor left an offline message."""
    return {"type": "offline_message", "id": message_id}


def presence_frame(status: Literal["online", "away"]) -> PresenceOut:
    return {"type": "presence", "status": status}


def queue_frame(
    *, waiting: list[Json], bot: list[Json], mine: list[Json], others: list[Json],
    hours: HoursNow | None = None,
) -> QueueOut:
    """The console's lists, with the tenant's business hours now (a waiting conversation
    carries ``queued_until`` while the tenant is closed)."""
    return {"type": "queue", "waiting": waiting, "bot": bot, "mine": mine, "others": others,
            "hours": hours or {"open": True, "next_opening": None, "time_zone": None}}


def agents_frame(*, online: list[Json], everyone: list[Json]) -> AgentsOut:
    return {"type": "agents", "online": online, "all": everyone}


def note_frame(
    *, id: int, conversation_id: str, agent_id: str, agent_name: str | None, text: str,
    created_at: str,
) -> NoteOut:
    return {"type": "note", "id": id, "conversation_id": conversation_id, "agent_id": agent_id,
            "agent_name": agent_name, "text": text, "created_at": created_at}


def conversation_frame(
    *, conversation: Json, state: StateOut, messages: list[Json], notes: list[Json],
    csat: Json | None, customer: Any, visitor_context: Json | None = None,
    earlier: list[Json] | None = None,
) -> ConversationOut:
    return {"type": "conversation", "conversation": conversation, "state": state,
            "messages": messages, "notes": notes, "csat": csat, "customer": customer,
            "visitor_context": visitor_context, "earlier": earlier or []}


def suggestion_frame(
    *, conversation_id: str, text: str, engine: str | None, status: SuggestionStatus
) -> SuggestionOut:
    return {"type": "suggestion", "conversation_id": conversation_id, "text": text,
            "engine": engine, "status": status}


def queue_changed_frame(*, conversation_id: str, event: str) -> QueueChangedOut:
    """To the tenant's consoles: refresh the lists."""
    return {"type": "queue_changed", "conversation_id": conversation_id, "event": event}


def assigned_frame(*, conversation_id: str, visitor_id: str) -> AssignedOut:
    return {"type": "assigned", "conversation_id": conversation_id, "visitor_id": visitor_id}


def unassigned_frame(*, conversation_id: str) -> UnassignedOut:
    return {"type": "unassigned", "conversation_id": conversation_id, "reason": "transferred"}
