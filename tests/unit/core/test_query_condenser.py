"""The language-model condenser over the reply router: remote engines only, complete answers
only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from kefu_core.answers.query_condenser import CondenserUnavailable, router_condenser
from kefu_llm import Busy, ChatRequest, Delta, Final


@dataclass
class _Engine:
    local: bool


@dataclass
class _Slot:
    name: str
    engine: _Engine


class _Router:
    def __init__(self, slots: list[_Slot], events: list[Any]) -> None:
        self.slots = slots
        self.events = events
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[Any]:
        self.requests.append(request)
        for event in self.events:
            yield event


REMOTE = _Slot("deepseek", _Engine(local=False))
OFFLINE = _Slot("offline", _Engine(local=True))


def test_a_chain_of_local_engines_has_no_condenser() -> None:
    assert router_condenser(_Router([OFFLINE], []), tenant_id="t", conversation_id="c") is None


async def test_a_remote_engines_complete_answer_is_the_condensed_query() -> None:
    # GIVEN a chain whose remote engine answers
    router = _Router([REMOTE, OFFLINE], [Delta("徐汇店"), Delta("营业时间"),
                                         Final(text="徐汇店营业时间", status="complete",
                                               engine="deepseek")])
    complete = router_condenser(router, tenant_id="t-1", conversation_id="c-1")
    assert complete is not None
    # WHEN the condenser is asked
    text = await complete("prompt")
    # THEN its answer is the text, asked as one short deterministic request of that tenant
    assert text == "徐汇店营业时间"
    request = router.requests[0]
    assert (request.tenant_id, request.temperature) == ("t-1", 0.0)
    assert request.max_tokens is not None and request.max_tokens <= 64


@pytest.mark.parametrize("events", [
    [Final(text="根据我们的资料…", status="complete", engine="offline")],
    [Delta("徐汇"), Final(text="徐汇", status="incomplete", engine="deepseek", reason="cut")],
    [Busy(retry_after_s=1.0, scope="tenant")],
])
async def test_an_offline_cut_or_refused_answer_is_no_query(events: list[Any]) -> None:
    complete = router_condenser(_Router([REMOTE, OFFLINE], events), tenant_id="t",
                                conversation_id="c")
    assert complete is not None
    with pytest.raises(CondenserUnavailable):
        await complete("prompt")
