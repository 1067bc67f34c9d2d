"""Deltas are batched: the first goes out at once, later ones are gathered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kefu_core.chat.streaming import DeltaBatcher, Pacer


async def tokens(n: int, gap_s: float, tail: str | None = "END") -> AsyncIterator[str]:
    for i in range(n):
        yield f"t{i} "
        await asyncio.sleep(gap_s)
    if tail:
        yield tail


def text_of(event: str) -> str | None:
    return None if event == "END" else event


async def test_first_delta_is_immediate_and_the_rest_batched() -> None:
    # GIVEN 100 tokens at 2 ms intervals and a 40 ms flush window
    flushed: list[str] = []

    async def flush(text: str) -> None:
        flushed.append(text)

    batcher = DeltaBatcher(flush=flush, text_of=text_of, flush_ms=40, flush_chars=10_000)
    # WHEN the stream is consumed
    others = await batcher.run(tokens(100, 0.002))
    # THEN the first frame holds only the first token, nothing is lost, frames are few
    assert flushed[0] == "t0 "
    assert "".join(flushed) == "".join(f"t{i} " for i in range(100))
    assert len(flushed) < 30
    assert others == ["END"]


async def test_char_threshold_flushes_early() -> None:
    flushed: list[str] = []

    async def flush(text: str) -> None:
        flushed.append(text)

    batcher = DeltaBatcher(flush=flush, text_of=text_of, flush_ms=10_000, flush_chars=12)
    await batcher.run(tokens(20, 0))
    assert "".join(flushed) == "".join(f"t{i} " for i in range(20))
    assert all(len(chunk) <= 12 + 4 for chunk in flushed)


async def test_producer_error_is_raised_after_flushing_what_arrived() -> None:
    # GIVEN a stream that fails after two tokens
    flushed: list[str] = []

    async def flush(text: str) -> None:
        flushed.append(text)

    async def broken() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        raise RuntimeError("cut")

    batcher = DeltaBatcher(flush=flush, text_of=text_of, flush_ms=1000, flush_chars=1000)
    # WHEN consumed / THEN the error surfaces and the text before it was delivered
    with pytest.raises(RuntimeError, match="cut"):
        await batcher.run(broken())
    assert "".join(flushed) == "ab"


async def test_pacer_holds_a_fast_stream_to_the_configured_rate() -> None:
    # GIVEN a pacer at 200 characters per second with a 50 ms first pause
    pacer = Pacer(chars_per_s=200, first_delay_ms=50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    # WHEN five 20-character flushes arrive back to back
    for _ in range(5):
        await pacer.before(20)
    elapsed = loop.time() - started
    # THEN they were spread over at least the first pause plus 4 x 100 ms
    assert elapsed >= 0.05 + 4 * 0.1 - 0.02


async def test_pacer_total_delay_is_capped_and_off_by_default() -> None:
    assert not Pacer(chars_per_s=0, first_delay_ms=0).active
    pacer = Pacer(chars_per_s=1, first_delay_ms=0, max_total_s=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        await pacer.before(100)  # would be 100 s each without the cap
    assert loop.time() - started < 1.0
