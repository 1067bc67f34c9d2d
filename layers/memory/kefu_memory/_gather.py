"""Run several sources in parallel under one deadline.

`gather_within(deadline_s, crm=..., facts=...)` starts every awaitable at once and returns at
the deadline, or as soon as all of them finished. A source still running at the deadline is
cancelled and reported as late; it is never awaited (its outcome is retrieved once it ends, so
nothing is logged as lost). A source that raised is reported with its exception. Only the
sources that finished in time without an exception have a value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Gathered", "gather_within"]

T = TypeVar("T")


@dataclass(frozen=True)
class Gathered(Generic[T]):
    """What ``gather_within`` got: every source's name (``names``), the values of those that
    finished in time, the late ones, the failed ones with their exception, and when each value
    arrived (ms from the start). Every mapping and list keeps the order of ``names``."""

    names: tuple[str, ...] = ()
    values: dict[str, T] = field(default_factory=dict)
    late: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    arrived_ms: dict[str, float] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def missing(self) -> list[str]:
        """The late and the failed sources, in the order they were given."""
        return [name for name in self.names if name not in self.values]


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Done-callback of an abandoned task: retrieve its outcome so nothing is logged as lost."""
    if not task.cancelled():
        task.exception()


def _abandon(task: asyncio.Task[Any]) -> None:
    task.cancel()
    task.add_done_callback(_retrieve)


async def gather_within(deadline_s: float, /, **sources: Awaitable[T]) -> Gathered[T]:
    """Await ``sources`` concurrently for at most ``deadline_s`` seconds (see the module)."""
    started = time.perf_counter()
    arrived_ms: dict[str, float] = {}

    async def timed(name: str, source: Awaitable[T]) -> T:
        value = await source
        arrived_ms[name] = (time.perf_counter() - started) * 1000
        return value

    tasks = {name: asyncio.create_task(timed(name, source), name=f"gather:{name}")
             for name, source in sources.items()}
    if tasks:
        try:
            await asyncio.wait(tasks.values(), timeout=max(deadline_s, 0.0))
        except asyncio.CancelledError:
            for task in tasks.values():
                _abandon(task)
            raise
    values: dict[str, T] = {}
    late: list[str] = []
    failed: dict[str, BaseException] = {}
    for name, task in tasks.items():
        if not task.done():
            _abandon(task)
            late.append(name)
        elif task.cancelled():
            failed[name] = asyncio.CancelledError()
        elif (exc := task.exception()) is not None:
            failed[name] = exc
        else:
            values[name] = task.result()
    return Gathered(
        names=tuple(tasks), values=values, late=late, failed=failed,
        arrived_ms={name: arrived_ms[name] for name in values},
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
