"""The knowledge-base version is read once per tenant at a time (kefu_core.answers.memory)."""

from __future__ import annotations

import asyncio
from typing import Any

from kefu_core.answers.memory import MemoryService
from kefu_core.infra.settings import Settings


class CountingKnowledge:
    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()

    async def kb_version(self, tenant_id: str) -> str:
        self.reads += 1
        await self.release.wait()
        return f"{tenant_id}-v7"


def service(knowledge: Any) -> MemoryService:
    return MemoryService(settings=Settings(), knowledge=knowledge, short_term=None,  # type: ignore[arg-type]
                         long_term=None, crm=None)  # type: ignore[arg-type]


async def test_replies_starting_together_share_one_read_of_the_version() -> None:
    # GIVEN a tenant whose knowledge-base version is not cached, and a slow store
    knowledge = CountingKnowledge()
    memory = service(knowledge)
    # WHEN fifty replies of that tenant and one of another start before the read ends
    waiting = [asyncio.ensure_future(memory.kb_version("t1")) for _ in range(50)]
    other = asyncio.ensure_future(memory.kb_version("t2"))
    await asyncio.sleep(0)
    knowledge.release.set()
    versions = await asyncio.gather(*waiting)
    # THEN the store was read once per tenant and every reply got the version
    assert await other == "t2-v7"
    assert knowledge.reads == 2
    assert set(versions) == {"t1-v7"}
    # AND the next reply reads the cache
    assert await memory.kb_version("t1") == "t1-v7" and knowledge.reads == 2
