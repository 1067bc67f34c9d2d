"""recall(): deadline, failures, precedence, de-duplication, token budget (no network)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from kefu_memory import MemoryItem, recall
from kefu_memory.recall import render


async def test_a_slow_source_is_dropped_at_the_deadline_and_cancelled() -> None:
    # GIVEN a fast source and one that would take 5 s
    cancelled = asyncio.Event()

    async def fast() -> Sequence[MemoryItem | str]:
        return [MemoryItem(text="order A1 shipped", key="order:A1")]

    async def slow() -> Sequence[MemoryItem | str]:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ["never"]

    # WHEN recalled with a 50 ms deadline
    started = time.perf_counter()
    result = await recall(sources={"crm": fast, "long_term": slow}, deadline_s=0.05)
    waited = time.perf_counter() - started
    # THEN recall returned without waiting for the slow one, which is reported and cancelled
    assert waited < 1.0
    assert result.missing == ["long_term"]
    assert result.late == ["long_term"]
    assert [s.source for s in result.sections] == ["crm"]
    assert "order A1 shipped" in result.prompt
    await asyncio.sleep(0)
    assert cancelled.is_set()


async def test_a_failing_source_is_reported_and_the_rest_is_kept() -> None:
    # GIVEN a source that raises
    async def broken() -> Sequence[MemoryItem | str]:
        raise ConnectionError("crm down")

    async def short_term() -> Sequence[MemoryItem | str]:
        return ["user: where is my parcel?"]

    # WHEN recalled
    result = await recall(sources={"crm": broken, "short_term": short_term})
    # THEN the failure is missing, not raised
    assert result.missing == ["crm"]
    assert result.failed == ["crm"]
    assert result.late == []
    assert [s.source for s in result.sections] == ["short_term"]


async def test_precedence_and_deduplication_crm_first() -> None:
    # GIVEN the same order known to the CRM and to long-term memory, and a repeated line
    async def crm() -> Sequence[MemoryItem | str]:
        return [MemoryItem(text="Order A1: shipped on 2026-11-20", key="order:A1")]

    async def long_term() -> Sequence[MemoryItem | str]:
        return [
            MemoryItem(text="Order A1: waiting for payment", key="order:A1"),
            MemoryItem(text="Prefers SF Express", key="preference:sf"),
        ]

    async def short_term() -> Sequence[MemoryItem | str]:
        return ["Prefers SF Express.", "user: hi"]

    # WHEN recalled (sources given in the 'wrong' order)
    result = await recall(
        sources={"short_term": short_term, "long_term": long_term, "crm": crm}
    )
    # THEN CRM wins the order, long-term keeps the preference, the duplicate line is dropped
    by_source = {s.source: [i.text for i in s.items] for s in result.sections}
    assert [s.source for s in result.sections] == ["crm", "long_term", "short_term"]
    assert by_source["crm"] == ["Order A1: shipped on 2026-11-20"]
    assert by_source["long_term"] == ["Prefers SF Express"]
    assert by_source["short_term"] == ["user: hi"]
    assert result.prompt.index("Customer record") < result.prompt.index("Recent conversation")


def test_render_respects_the_budget_and_keeps_the_latest_turns() -> None:
    # GIVEN many short-term turns and a small budget, counting one token per character
    from kefu_memory import RecallSection

    turns = [MemoryItem(text=f"turn {i:02d}") for i in range(30)]
    section = RecallSection(
        source="short_term", title="Recent", items=turns, elapsed_ms=1.0, keep_latest=True
    )
    # WHEN rendered in 60 "tokens"
    text, tokens, dropped = render([section], token_budget=60, count_tokens=len)
    # THEN it fits, keeps the newest turns in chronological order and counts what it dropped
    assert tokens <= 60
    assert "turn 29" in text and "turn 00" not in text
    assert text.index("turn 28") < text.index("turn 29")
    assert dropped == 30 - text.count("- turn")


async def test_no_sources_gives_an_empty_result() -> None:
    # GIVEN nothing to ask / WHEN recalled / THEN an empty prompt and nothing missing
    result = await recall(sources={})
    assert result.prompt == "" and result.missing == [] and result.sections == []


async def test_cancelling_recall_cancels_its_sources() -> None:
    # GIVEN a recall waiting on a slow source
    cancelled = asyncio.Event()

    async def slow() -> Sequence[MemoryItem | str]:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return []

    task = asyncio.create_task(recall(sources={"crm": slow}, deadline_s=5))
    await asyncio.sleep(0.01)
    # WHEN the caller is cancelled
    task.cancel()
    # THEN the source is cancelled too
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert cancelled.is_set()
