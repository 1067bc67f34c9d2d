"""An access request: everything Kefu holds about one customer, as one JSON document.

Collected from PostgreSQL (conversations with their messages, agents' notes and the rating;
offline messages; long-term facts with every message they were seen in, through kefu_memory;
audit entries naming the customer, their conversations or their offline messages). Redis holds
nothing that is not also here (short-term memory repeats the last turns of a conversation; a
connection record the visitor's own live session). The company's CRM is the company's own
system: Kefu reads it and keeps nothing of it beyond a cache of a few seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from kefu_core.deps import Deps
from kefu_core.flows.personal_data.facts import long_term
from kefu_core.flows.personal_data.records import CustomerRecords
from kefu_core.flows.personal_data.subject import CustomerRef
from kefu_core.infra.errors import KefuError
from kefu_core.product.audit import AuditEntry

__all__ = ["CustomerExport", "ExportSummary", "ExportTooLarge", "export_customer"]

FORMAT: Literal["kefu.personal-data/1"] = "kefu.personal-data/1"
# What one answer of the admin API carries: a Lambda's synchronous response is at most 6 MB,
# so the customer's texts may take 4 MB of it (JSON adds keys and escapes). A larger history
# is exported with `kefu personal-data export`, which has no limit.
MAX_CONVERSATIONS = 5_000
MAX_MESSAGES = 50_000
MAX_TEXT_BYTES = 4 * 1024 * 1024


class ExportTooLarge(KefuError):
    """More than one answer can carry (MAX_CONVERSATIONS, MAX_MESSAGES, MAX_TEXT_BYTES)."""

    code = "export_too_large"
    status = 413
    detail = "too much data for one answer: export it with `kefu personal-data export`"


class ExportSummary(BaseModel):
    conversations: int
    messages: int
    notes: int
    ratings: int
    offline_messages: int
    facts: int
    audit_entries: int
    first_activity: datetime | None
    last_activity: datetime | None
    # The same figures in a sentence, for the person who asked (English and Chinese).
    text_en: str
    text_zh: str


class CustomerExport(BaseModel):
    format: Literal["kefu.personal-data/1"] = FORMAT
    tenant_id: str
    visitor_id: str  # the id every store keys the customer by
    customer_id: str | None  # the company's id of a signed-in customer
    exported_at: datetime
    summary: ExportSummary
    conversations: list[dict[str, Any]] = Field(default_factory=list)
    offline_messages: list[dict[str, Any]] = Field(default_factory=list)
    facts: list[dict[str, Any]] = Field(default_factory=list)
    audit: list[AuditEntry] = Field(default_factory=list)
    not_included: list[str] = Field(default_factory=list)


NOT_INCLUDED = [
    "CRM records (orders, tickets, profile): held by the company's CRM, which Kefu only reads",
    "Server logs: they carry ids, never message text (docs/data-protection.md)",
]


async def export_customer(deps: Deps, *, tenant_id: str, ref: CustomerRef,
                          limited: bool = True) -> CustomerExport:
    """Everything about ``ref`` in ``tenant_id``. Raises :class:`ExportTooLarge` beyond the
    limits of one admin API answer (unless not ``limited``);
    :class:`~kefu_core.infra.errors.StoreError` when a store cannot answer."""
    subject = ref.subject
    records = CustomerRecords(deps.pool)
    conversations = await records.conversations(
        tenant_id=tenant_id, subject=subject,
        limit=MAX_CONVERSATIONS + 1 if limited else 1_000_000)
    ids = [str(c["id"]) for c in conversations]
    if limited and (len(ids) > MAX_CONVERSATIONS
                    or await records.message_count(ids) > MAX_MESSAGES
                    or await records.text_bytes(tenant_id=tenant_id, subject=subject,
                                                ids=ids) > MAX_TEXT_BYTES):
        raise ExportTooLarge("more than one admin API answer carries")
    messages, notes, ratings = (await records.messages(ids), await records.notes(ids),
                                await records.ratings(ids))
    # A message's picture: its type and size, and a link that works for IMAGE_URL_TTL_S
    messages = [{**m, "image": await deps.images.public(m["image"])} if m.get("image") else m
                for m in messages]
    feedback, learned = await records.reply_feedback(ids), await records.learned_answers(ids)
    offline = await records.offline_messages(tenant_id=tenant_id, subject=subject, ids=ids)
    memory = await (await long_term(deps)).export(tenant_id=tenant_id, customer_id=subject)
    facts = [f.model_dump(mode="json", exclude={"score", "tenant_id", "customer_id"})
             for f in memory.facts]
    audit = await records.audit_entries(
        tenant_id=tenant_id, subject=subject, conversation_ids=ids,
        offline_ids=[str(o["id"]) for o in offline])
    summary = _summary(conversations, messages, notes, ratings, offline, facts, audit)
    return CustomerExport(
        tenant_id=tenant_id, visitor_id=subject, customer_id=ref.customer_id,
        exported_at=datetime.now(UTC), summary=summary,
        conversations=_transcripts(conversations, messages, notes, ratings, feedback, learned),
        offline_messages=offline, facts=facts, audit=audit, not_included=NOT_INCLUDED)


def _transcripts(conversations: list[dict[str, Any]], messages: list[dict[str, Any]],
                 notes: list[dict[str, Any]], ratings: list[dict[str, Any]],
                 feedback: list[dict[str, Any]],
                 learned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {
        str(c["id"]): {**c, "messages": [], "notes": [], "rating": None} for c in conversations}
    rated = {(f["conversation_id"], f["seq"]): {k: v for k, v in f.items()
                                                if k not in ("conversation_id", "seq")}
             for f in feedback}
    for message in messages:
        row = {k: v for k, v in message.items() if k != "conversation_id" and v is not None}
        if (key := (str(message["conversation_id"]), message.get("seq"))) in rated:
            row["feedback"] = rated[key]  # the customer's 👍/👎 on this bot reply
        by_id[str(message["conversation_id"])]["messages"].append(row)
    for note in notes:
        by_id[str(note["conversation_id"])]["notes"].append(
            {k: v for k, v in note.items() if k != "conversation_id"})
    for rating in ratings:
        by_id[str(rating["conversation_id"])]["rating"] = {
            k: v for k, v in rating.items() if k != "conversation_id"}
    for pair in learned:  # proposed from an agent's answer, for the admins' review
        by_id[str(pair["conversation_id"])]["learned_answer"] = {
            k: v for k, v in pair.items() if k != "conversation_id"}
    return list(by_id.values())


def _count(items: list[Any], one: str, many: str | None = None) -> str:
    """``1 rating``, ``2 ratings``: the English summary reads as a sentence."""
    return f"{len(items)} {one if len(items) == 1 else many or one + 's'}"


def _summary(conversations: list[dict[str, Any]], messages: list[dict[str, Any]],
             notes: list[dict[str, Any]], ratings: list[dict[str, Any]],
             offline: list[dict[str, Any]], facts: list[dict[str, Any]],
             audit: list[AuditEntry]) -> ExportSummary:
    times = [c["created_at"] for c in conversations] + [c["updated_at"] for c in conversations]
    times += [o["created_at"] for o in offline]
    first, last = (min(times), max(times)) if times else (None, None)
    span_en = (f" between {first:%Y-%m-%d} and {last:%Y-%m-%d}" if first and last else "")
    span_zh = (f"（{first:%Y-%m-%d} 至 {last:%Y-%m-%d}）" if first and last else "")
    text_en = (f"{_count(conversations, 'conversation')} with "
               f"{_count(messages, 'message')}{span_en}; {_count(notes, 'agent note')}; "
               f"{_count(ratings, 'rating')}; {_count(offline, 'offline message')}; "
               f"{_count(facts, 'remembered fact')}; "
               f"{_count(audit, 'audit entry', 'audit entries')}.")
    text_zh = (f"共 {len(conversations)} 个会话、{len(messages)} 条消息{span_zh}；"
               f"客服备注 {len(notes)} 条；评价 {len(ratings)} 条；留言 {len(offline)} 条；"
               f"记忆的信息 {len(facts)} 条；审计记录 {len(audit)} 条。")
    return ExportSummary(conversations=len(conversations), messages=len(messages),
                         notes=len(notes), ratings=len(ratings), offline_messages=len(offline),
                         facts=len(facts), audit_entries=len(audit), first_activity=first,
                         last_activity=last, text_en=text_en, text_zh=text_zh)
