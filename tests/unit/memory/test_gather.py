"""gather_within(): values, late and failed sources, one deadline for all (no network)."""

from __future__ import annotations

import asyncio

import pytest

from kefu_memory import Gathered, gather_within


async def test_each_source_ends_as_a_value_a_failure_or_late() -> None:
    # GIVEN a source that answers, one that raises and one that never ends
    never = asyncio.Event()
    cancelled = asyncio.Event()

    async def answers() -> str:
        return "order A1 shipped"

    async def raises() -> str:
        raise ConnectionError("crm down")

    async def hangs() -> str:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    # WHEN they are gathered under one deadline
    gathered = await gather_within(0.05, crm=answers(), facts=raises(), knowledge=hangs())
    # THEN each is reported as what it did, in the order given
    assert gathered.names == ("crm", "facts", "knowledge")
    assert gathered.values == {"crm": "order A1 shipped"}
    assert isinstance(gathered.failed["facts"], ConnectionError)
    assert gathered.late == ["knowledge"]
    assert gathered.missing == ["facts", "knowledge"]
    assert set(gathered.arrived_ms) == {"crm"}
    # AND the late one was cancelled, not awaited
    await asyncio.wait_for(cancelled.wait(), timeout=5)


async def test_sources_that_all_end_are_all_kept() -> None:
    # GIVEN two sources that finish
    async def value(v: int) -> int:
        await asyncio.sleep(0)
        return v

    # WHEN gathered with a generous deadline
    gathered: Gathered[int] = await gather_within(30, a=value(1), b=value(2))
    # THEN nothing is missing
    assert gathered.values == {"a": 1, "b": 2}
    assert gathered.missing == [] and gathered.late == [] and gathered.failed == {}


async def test_a_source_may_be_named_like_the_deadline() -> None:
    # GIVEN a source named "deadline_s" (names come from callers' mappings)
    async def one() -> int:
        return 1

    # WHEN gathered
    gathered = await gather_within(1, **{"deadline_s": one(), "with space": one()})
    # THEN both are values
    assert gathered.values == {"deadline_s": 1, "with space": 1}


async def test_cancelling_the_gather_cancels_every_source() -> None:
    # GIVEN a gather of a source that never ends, run as a task
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(gather_within(60, slow=hangs()))
    await started.wait()
    # WHEN the gather itself is cancelled
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # THEN the source is cancelled too
    await asyncio.wait_for(cancelled.wait(), timeout=5)


async def test_nothing_to_gather_returns_at_once() -> None:
    # WHEN there is no source
    gathered: Gathered[object] = await gather_within(60)
    # THEN the result is empty
    assert gathered.names == () and gathered.values == {} and gathered.missing == []
