"""``/v1/conversations``: search, export and transcripts, for the tenant's agents and admins."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AgentId, DepsDep
from kefu_core.admin.errors import NOT_FOUND, found
from kefu_core.chat.conversations import Conversation, StoredMessage
from kefu_core.product.csv_export import to_csv
from kefu_core.product.feedback import Feedback
from kefu_core.product.service import Note, Rating

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class ConversationView(BaseModel):
    id: str
    visitor_id: str
    customer_id: str | None
    status: str
    owner: str
    assigned_agent: str | None
    handoff_reason: str | None
    last_seq: int
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    last_text: str | None = None

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationView:
        return cls(
            id=conversation.id, visitor_id=conversation.visitor_id,
            customer_id=conversation.customer_id, status=conversation.status,
            owner=conversation.owner, assigned_agent=conversation.assigned_agent,
            handoff_reason=conversation.handoff_reason, last_seq=conversation.last_seq,
            created_at=conversation.created_at, updated_at=conversation.updated_at,
            closed_at=conversation.closed_at,
            last_text=getattr(conversation, "last_text", None),  # search results carry it
        )


class Transcript(BaseModel):
    conversation: ConversationView
    messages: list[dict[str, Any]]
    notes: list[Note]
    csat: Rating | None
    # The visitor's 👍/👎 on bot replies (by seq), with the reasons.
    feedback: list[Feedback] = []


def search_filters(
    q: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    owner: Annotated[Literal["bot", "queue", "human"] | None, Query()] = None,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    visitor_id: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The search's query parameters as arguments of ``ConversationStore.search``."""
    return {"text": q, "status": status, "owners": (owner,) if owner else None,
            "assigned_agent": agent, "visitor_id": visitor_id, "since": since,
            "until": until}


SearchFilters = Annotated[dict[str, Any], Depends(search_filters)]
Exported = Sequence[tuple[Conversation, list[StoredMessage]]]


@router.get("", response_model=list[ConversationView], summary="Search conversations")
async def search_conversations(
    who: AgentId, deps: DepsDep, filters: SearchFilters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ConversationView]:
    """The tenant's conversations, most recently updated first, by text (`q`), status, owner,
    assigned agent, visitor and time."""
    matches = await deps.conversations.search(tenant_id=who.tenant_id, limit=limit,
                                              offset=offset, **filters)
    return [ConversationView.of(c) for c in matches]


@router.get("/export", summary="Export conversations",
            response_description="an attachment: conversations.json or conversations.csv")
async def export_conversations(
    who: AgentId, deps: DepsDep, filters: SearchFilters,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """The conversations the search finds with every message, as JSON or CSV (one row per
    message; cells a spreadsheet would run as formulas are escaped). Audited."""
    matches = await deps.conversations.search(tenant_id=who.tenant_id, limit=limit, **filters)
    exported = [(c, await deps.conversations.recent(tenant_id=who.tenant_id,
                                                    conversation_id=c.id, limit=10_000))
                for c in matches]
    await record(deps, who, "conversations.exported", detail_format=format,
                 count=len(matches))
    return _csv(exported) if format == "csv" else _json(exported)


def _csv(exported: Exported) -> Response:
    rows = ([c.id, c.visitor_id, m.seq, m.role, m.author, m.text, m.status,
             m.created_at.isoformat()] for c, messages in exported for m in messages)
    text = to_csv(["conversation_id", "visitor_id", "seq", "role", "author", "text", "status",
                   "at"], rows)
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="conversations.csv"'})


def _without_image_key(message: dict[str, Any]) -> dict[str, Any]:
    """An exported message describes its image (type, size); the file stays in storage."""
    image = message.get("image")
    if not image:
        return message
    return {**message, "image": {k: v for k, v in image.items() if k != "key"}}


def _json(exported: Exported) -> Response:
    body = [{"conversation": ConversationView.of(c).model_dump(mode="json"),
             "messages": [_without_image_key(m.public()) for m in messages]}
            for c, messages in exported]
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json",
                    headers={"content-disposition": 'attachment; filename="conversations.json"'})


@router.get("/{conversation_id}", response_model=Transcript, summary="A transcript",
            responses=NOT_FOUND)
async def transcript(conversation_id: uuid.UUID, who: AgentId, deps: DepsDep) -> Transcript:
    """A conversation with every message, the agents' notes, the visitor's rating and 👍/👎
    on bot replies. A
    malformed id is answered like an unknown one (404)."""
    conversation = found(await deps.conversations.get(tenant_id=who.tenant_id,
                                                      conversation_id=str(conversation_id)))
    messages = await deps.conversations.recent(tenant_id=who.tenant_id,
                                               conversation_id=conversation.id, limit=10_000)
    return Transcript(
        conversation=ConversationView.of(conversation),
        messages=await deps.images.with_links([m.public() for m in messages]),
        notes=await deps.service.notes(tenant_id=who.tenant_id,
                                       conversation_id=conversation.id),
        csat=await deps.service.rating(tenant_id=who.tenant_id,
                                       conversation_id=conversation.id),
        feedback=await deps.feedback.of_conversation(tenant_id=who.tenant_id,
                                                     conversation_id=conversation.id),
    )
