"""A deletion request: the customer's data removed from PostgreSQL and Redis.

Order (each step deletes what is there now, so a retry after any failure completes the job):

1. the request is audited (who asked, which customer) before anything is deleted;
2. the customer's conversation ids and texts are read (they are how Redis is searched);
3. Redis: short-term memory, live connections (closed), handoff bookkeeping, cached replies;
4. long-term facts (kefu_memory's erasure, which logs only a digest of the customer id);
5. offline messages; 6. the conversations' images (and pending uploads), then the
   conversations, in batches (messages, notes and ratings cascade);
7. Redis once more for those conversations (a reply that finished meanwhile wrote its turns),
   and PostgreSQL once more for a conversation opened meanwhile;
8. this process's CRM cache; 9. the erasure is audited with counts, no content.

Conversation ids are read from PostgreSQL until step 6 deletes them, and step 3 runs before:
a failure anywhere leaves the ids in place for the retry to find. What other processes cache
(CRM answers ``cache_ttl_s``, replies ``CACHE_TTL_S``) expires by itself:
docs/data-protection.md.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from kefu_core.deps import Deps
from kefu_core.flows.personal_data.facts import long_term
from kefu_core.flows.personal_data.records import CustomerRecords
from kefu_core.flows.personal_data.redis_traces import ConversationRef, Texts, purge_redis
from kefu_core.flows.personal_data.subject import CustomerRef
from kefu_core.product.audit import ActorType

__all__ = ["ErasureReport", "erase_customer"]

logger = logging.getLogger("kefu.personal_data")

BATCH = 100  # conversations per delete transaction
ROUNDS = 3  # passes for conversations opened while the erasure runs
# The customer's most recent messages looked for inside cached replies (every reply they got
# is matched exactly, whatever their number).
VISITOR_TEXTS = 1000


class ErasureReport(BaseModel):
    tenant_id: str
    visitor_id: str
    conversations: int = 0
    messages: int = 0
    offline_messages: int = 0
    images: int = 0
    facts: int = 0
    short_term: int = 0
    connections: int = 0
    cached_replies: int = 0
    crm_cache: int = 0
    # Copies other processes hold in memory, gone within this many seconds (their TTLs).
    residual_s: dict[str, float] = {}


async def erase_customer(deps: Deps, *, tenant_id: str, ref: CustomerRef,
                         actor_type: ActorType, actor_id: str | None) -> ErasureReport:
    """Erase ``ref`` in ``tenant_id``. Raises ``StoreError`` when a store fails midway: call
    again (the first audit entry stays, the second is written when it completes)."""
    subject = ref.subject
    audit = deps.audit
    await audit.record(tenant_id=tenant_id, actor_type=actor_type, actor_id=actor_id,
                       action="customer.erasure_requested", target_type="customer",
                       target_id=subject)
    records = CustomerRecords(deps.pool)
    report = ErasureReport(tenant_id=tenant_id, visitor_id=subject)
    erased: list[ConversationRef] = []
    for _ in range(ROUNDS):
        found = await _conversations(deps, tenant_id, subject)
        if not found and erased:
            break
        ids = [c.id for c in found]
        replies, written = await records.texts(ids, visitor_limit=VISITOR_TEXTS)
        counts = await purge_redis(deps, tenant_id=tenant_id, subject=subject,
                                   conversations=found,
                                   texts=Texts(frozenset(replies), frozenset(written)))
        _add(report, counts)
        report.facts += await (await long_term(deps)).erase(tenant_id=tenant_id,
                                                             customer_id=subject)
        report.offline_messages += await records.delete_offline_messages(
            tenant_id=tenant_id, subject=subject, ids=ids)
        report.messages += await records.message_count(ids)
        for conversation_id in ids:  # before the rows: a failure leaves the ids for the retry
            report.images += await deps.images.forget_conversation(
                tenant_id=tenant_id, conversation_id=conversation_id)
        report.conversations += await records.delete_conversations(
            tenant_id=tenant_id, ids=ids, batch=BATCH)
        erased += found
        if not found:
            break
    _add(report, await purge_redis(deps, tenant_id=tenant_id, subject=subject,
                                   conversations=erased, texts=Texts()))
    report.crm_cache = _forget_crm(await deps.load_memory(), ref)
    report.residual_s = _residual(deps)
    await audit.record(tenant_id=tenant_id, actor_type=actor_type, actor_id=actor_id,
                       action="customer.erased", target_type="customer", target_id=subject,
                       detail=report.model_dump(exclude={"tenant_id", "visitor_id",
                                                         "residual_s"}))
    logger.info("customer erased", extra={"tenant_id": tenant_id,
                                          "conversations": report.conversations})
    return report


async def _conversations(deps: Deps, tenant_id: str, subject: str) -> list[ConversationRef]:
    records = CustomerRecords(deps.pool)
    rows = await records.conversations(tenant_id=tenant_id, subject=subject, limit=1_000_000)
    return [ConversationRef(id=str(r["id"]), assigned_agent=r["assigned_agent"]) for r in rows]


def _add(report: ErasureReport, counts: dict[str, int]) -> None:
    for name, value in counts.items():
        setattr(report, name, getattr(report, name) + value)


def _forget_crm(memory: Any, ref: CustomerRef) -> int:
    crm = getattr(memory, "crm", None)
    if crm is None or ref.customer_id is None:
        return 0
    return int(crm.forget(ref.customer_id))


def _residual(deps: Deps) -> dict[str, float]:
    """In-memory copies in other processes (gateway replicas, Lambda containers) and how long
    they may live: the CRM client's cache and the reply cache's in-process LRU."""
    from kefu_llm import AdapterSettings

    residual = {"reply_cache": float(AdapterSettings().cache_ttl_s)}
    if deps.settings.crm_url:
        residual["crm_cache"] = CRM_CACHE_TTL_S
    return residual


CRM_CACHE_TTL_S = 30.0  # kefu_memory.CrmClient's default cache_ttl_s, which build_memory keeps
