"""Ready-made recall sources over this package's stores.

Each function returns a zero-argument coroutine function for `recall(sources=...)`. Keys
make de-duplication work across sources: orders are `order:<ID>` in the CRM and in long-term
memory alike, so the CRM's version wins.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._models import MemoryItem
from .crm import CrmClient
from .knowledge import KnowledgeBase
from .long_term import LongTermMemory
from .recall import SourceFn
from .short_term import ShortTermMemory

__all__ = ["crm_source", "knowledge_source", "long_term_source", "short_term_source"]


def short_term_source(memory: ShortTermMemory, conversation_id: str) -> SourceFn:
    async def fetch() -> Sequence[MemoryItem]:
        turns = await memory.recent(conversation_id)
        return [MemoryItem(text=f"{t.role}: {t.content}") for t in turns]

    return fetch


def long_term_source(
    memory: LongTermMemory, *, tenant_id: str, customer_id: str, query: str, k: int = 8
) -> SourceFn:
    async def fetch() -> Sequence[MemoryItem]:
        facts = await memory.search(tenant_id, customer_id, query, k)
        items: list[MemoryItem] = []
        for fact in facts:
            since = fact.valid_from.date().isoformat()
            text = f"[{fact.kind}] {fact.value} (since {since})"
            items.append(MemoryItem(text=text, key=fact.key))
        return items

    return fetch


def crm_source(
    client: CrmClient, customer_id: str, *, orders: int = 5, tickets: int = 5
) -> SourceFn:
    async def fetch() -> Sequence[MemoryItem]:
        profile = await client.profile(customer_id, orders=orders, tickets=tickets)
        c = profile.customer
        details = ", ".join(
            part
            for part in (
                f"tier {c.tier}" if c.tier else "",
                f"phone {c.phone}" if c.phone else "",
                f"email {c.email}" if c.email else "",
                c.notes or "",
            )
            if part
        )
        items = [MemoryItem(text=f"Customer {c.name} ({c.id}){': ' + details if details else ''}",
                            key="customer")]
        for o in profile.orders:
            goods = ", ".join(f"{i.name} x{i.quantity}" for i in o.items)
            extra = f", tracking {o.tracking_number}" if o.tracking_number else ""
            items.append(
                MemoryItem(
                    text=f"Order {o.id}: {o.status}, {o.total:g} {o.currency}, "
                    f"placed {o.placed_at.date().isoformat()}, {goods}{extra}",
                    key=f"order:{o.id.upper()}",
                )
            )
        for t in profile.tickets:
            items.append(
                MemoryItem(text=f"Ticket {t.id}: {t.subject} ({t.status})", key=f"ticket:{t.id}")
            )
        return items

    return fetch


def knowledge_source(kb: KnowledgeBase, *, tenant_id: str, query: str, k: int = 5) -> SourceFn:
    async def fetch() -> Sequence[MemoryItem]:
        passages = await kb.search(tenant_id, query, k)
        return [
            MemoryItem(
                text=(f"{p.heading}: " if p.heading else "") + p.content.replace("\n", " "),
                key=f"kb:{p.chunk_id}",
            )
            for p in passages
        ]

    return fetch
