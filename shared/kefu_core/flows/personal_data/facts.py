"""Long-term facts of a customer through kefu_memory's own export and erasure."""

from __future__ import annotations

from typing import Any

from kefu_core.deps import Deps

__all__ = ["long_term"]


async def long_term(deps: Deps) -> Any:
    """The process's ``kefu_memory.LongTermMemory``; one reading and erasing the same tables
    when memory is switched off here (facts stored before still belong to the customer)."""
    memory = await deps.load_memory()
    found = getattr(memory, "long_term", None)
    if found is not None:
        return found
    from kefu_memory import OfflineEmbedder
    from kefu_memory.long_term import LongTermMemory

    return LongTermMemory(deps.pool, OfflineEmbedder())  # export and erase embed nothing
