"""Router behaviour with scripted in-process engines (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kefu_llm import (
    AdapterSettings,
    ChatMessage,
    ChatRequest,
    Delta,
    EngineCall,
    EngineConfig,
    EngineHTTPError,
    EngineOutcome,
    Final,
    build_router,
)


class Scripted:
    """An engine that plays a script: pieces, then an optional error or stall."""

    needs_key = True
    local = False
    supports_continuation = True

    def __init__(
        self,
        name: str,
        pieces: list[str],
        *,
        error: Exception | None = None,
        stall_after: int | None = None,
        delay_first: float = 0.0,
    ) -> None:
        self.name = name
        self.provider = name
        self.model = "m"
        self.pieces = pieces
        self.error = error
        self.stall_after = stall_after
        self.delay_first = delay_first
        self.calls: list[EngineCall] = []

    async def stream(self, call: EngineCall, *, key: Any) -> AsyncIterator[str | EngineOutcome]:
        self.calls.append(call)
        if self.delay_first:
            await asyncio.sleep(self.delay_first)
        for i, piece in enumerate(self.pieces):
            if self.stall_after is not None and i == self.stall_after:
                await asyncio.sleep(3600)
            yield piece
        if self.error is not None:
            raise self.error
        yield EngineOutcome(finish_reason="stop")

    async def aclose(self) -> None:
        return None


def router_with(*engines: Scripted, **kw: Any) -> Any:
    settings = AdapterSettings(
        engines=[
            EngineConfig(name=e.name, provider=e.name, model="m", api_keys=["k"]) for e in engines
        ],
        openai_api_key=None,
        openai_base_url=None,
        cache_ttl_s=0,
        **kw,
    )
    router = build_router(settings=settings, redis=None, pii_detector=kw.pop("detector", None))
    for slot, engine in zip(router.slots, engines, strict=False):
        slot.engine = engine
    return router


def req(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest(
        tenant_id="t", conversation_id="c", messages=[ChatMessage(role="user", content=text)], **kw
    )


async def run(router: Any, request: ChatRequest) -> tuple[list[Any], Final]:
    events = [e async for e in router.stream(request)]
    assert sum(isinstance(e, Final) for e in events) == 1 and isinstance(events[-1], Final)
    return events, events[-1]


async def test_failed_redaction_sends_nothing_out_and_answers_offline() -> None:
    remote = Scripted("remote", ["never"])

    def broken_detector(text: str) -> list[Any]:
        raise RuntimeError("regex engine exploded")

    settings = AdapterSettings(
        engines=[EngineConfig(name="remote", provider="remote", model="m", api_keys=["k"])],
        openai_api_key=None,
        openai_base_url=None,
        cache_ttl_s=0,
    )
    router = build_router(settings=settings, redis=None, pii_detector=broken_detector)
    router.slots[0].engine = remote
    _, final = await run(router, req("我的手机13812345678", passages=["手机号可在设置中修改。"]))
    assert remote.calls == []  # fail closed
    assert final.engine == "offline" and final.status == "complete"
    assert final.fallback_used


async def test_unexpected_engine_exception_falls_back() -> None:
    boom = Scripted("a", [], error=ZeroDivisionError())
    ok = Scripted("b", ["fine"])
    _, final = await run(router_with(boom, ok), req("hi"))
    assert (final.engine, final.text, final.fallback_used) == ("b", "fine", True)


async def test_every_engine_failing_still_ends_with_one_final() -> None:
    a = Scripted("a", [], error=EngineHTTPError("x", status=500))
    b = Scripted("b", [], error=EngineHTTPError("x", status=503))
    events, final = await run(router_with(a, b, offline_last_resort=False), req("hi"))
    assert events == [final]
    assert final.status == "incomplete" and final.text == "" and final.reason == "http"


async def test_cut_with_continuation_but_only_offline_left_ends_incomplete() -> None:
    cut = Scripted("a", ["Hello ", "wor"], error=EngineHTTPError("cut", status=None))
    _, final = await run(router_with(cut, midstream_fallback=True), req("hi"))
    assert final.status == "incomplete" and final.text == "Hello wor" and final.engine == "a"


async def test_continuation_prompt_carries_the_partial_answer() -> None:
    cut = Scripted("a", ["我们支持", "七天"], error=EngineHTTPError("cut", status=None))
    cont = Scripted("b", ["无理由退货。"])
    _, final = await run(router_with(cut, cont, midstream_fallback=True), req("退货政策？"))
    assert final.text == "我们支持七天无理由退货。" and final.reason == "continued_on:b"
    sent = cont.calls[0].messages
    assert sent[-2] == {"role": "assistant", "content": "我们支持七天"}
    assert sent[-1]["role"] == "user" and "中断" in sent[-1]["content"]


async def test_stall_after_first_token_is_cut_by_the_stall_timeout() -> None:
    staller = Scripted("a", ["one ", "two"], stall_after=1)
    router = router_with(staller, Scripted("b", ["x"]), stall_timeout_s=0.05)
    _, final = await run(router, req("hi"))
    assert (final.status, final.reason, final.text) == ("incomplete", "stall", "one ")


async def test_first_token_deadline() -> None:
    slow = Scripted("a", ["late"], delay_first=1.0)
    router = router_with(slow, Scripted("b", ["quick"]), first_token_timeout_s=0.05)
    _, final = await run(router, req("hi"))
    assert (final.engine, final.text) == ("b", "quick")


async def test_placeholders_restored_in_deltas_and_final() -> None:
    echo = Scripted("a", ["好的，我们会打", "[PHO", "NE_1", "] 联系您"])
    events, final = await run(router_with(echo), req("请打13812345678"))
    assert "13812345678" not in echo.calls[0].messages[0]["content"]
    assert final.text == "好的，我们会打13812345678 联系您"
    assert "".join(e.text for e in events if isinstance(e, Delta)) == final.text


async def test_length_finish_reason_is_reported() -> None:
    class Long(Scripted):
        async def stream(
            self, call: EngineCall, *, key: Any
        ) -> AsyncIterator[str | EngineOutcome]:
            yield "partial"
            yield EngineOutcome(finish_reason="length")

    _, final = await run(router_with(Long("a", [])), req("hi", max_tokens=1))
    assert final.status == "complete" and final.reason == "length"


async def test_summarize_uses_a_remote_engine_and_restores_pii() -> None:
    summarizer = Scripted("a", ["用户留了电话 ", "[PHONE_1]"])
    router = router_with(summarizer)
    text = await router.summarize("用户: 我的电话13812345678", language="zh", max_tokens=50)
    assert text == "用户留了电话 13812345678"
    assert "13812345678" not in str(summarizer.calls[0].messages)


async def test_a_request_without_fallback_tries_the_first_engine_only() -> None:
    # GIVEN a chain whose first engine fails, then a working one and the offline engine
    first = Scripted("a", [], error=EngineHTTPError("x", status=500))
    second = Scripted("b", ["fine"])
    router = router_with(first, second)
    # WHEN a request says no fallback (a tenant's ENABLE_FALLBACK setting)
    _, final = await run(router, req("hi", fallback=False))
    # THEN only the first engine was tried and the reply is incomplete
    assert len(first.calls) == 1 and second.calls == []
    assert final.status == "incomplete" and final.text == "" and not final.fallback_used
    # AND the same chain falls back for a request that allows it
    _, final = await run(router, req("hi"))
    assert (final.engine, final.fallback_used) == ("b", True)


class CountingEncoding:
    """The slot's tiktoken encoding, recording the texts it tokenizes one by one."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.texts: list[str] = []

    def encode_ordinary(self, text: str) -> list[int]:
        self.texts.append(text)
        result: list[int] = self._real.encode_ordinary(text)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def test_an_answer_is_not_tokenized_when_no_token_budget_applies() -> None:
    # GIVEN a router with no tenant or key token budget
    router = router_with(Scripted("a", ["a fine ", "answer"]), tenant_tpm=0, key_tpm=0)
    encoding = CountingEncoding(router.slots[0].encoding)
    router.slots[0].encoding = encoding
    # WHEN it answers and its bookkeeping is done
    _, final = await run(router, req("hi"))
    await router.flush()
    # THEN the answer was never tokenized
    assert final.text == "a fine answer"
    assert "a fine answer" not in encoding.texts


async def test_an_answer_is_tokenized_for_the_tenant_token_budget() -> None:
    # GIVEN a router with a tenant token budget
    router = router_with(Scripted("a", ["a fine ", "answer"]), tenant_tpm=100_000, key_tpm=0)
    encoding = CountingEncoding(router.slots[0].encoding)
    router.slots[0].encoding = encoding
    # WHEN it answers and its bookkeeping is done
    await run(router, req("hi"))
    await router.flush()
    # THEN the answer's tokens were counted to correct the budget
    assert "a fine answer" in encoding.texts
