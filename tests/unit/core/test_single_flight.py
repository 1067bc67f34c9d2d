"""SingleFlight: one read per key at a time, shared by the callers that ask meanwhile."""

from __future__ import annotations

import asyncio

from kefu_core.infra.single_flight import SingleFlight


async def test_a_failed_read_fails_every_waiter_and_the_next_call_reads_again() -> None:
    # GIVEN a read that fails once, slowly
    flight: SingleFlight[str] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def read() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        if calls == 1:
            raise OSError("store down")
        return "value"

    # WHEN three callers ask together, one of them gives up, and the read fails
    waiters = [asyncio.ensure_future(flight.run("k", read)) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    # THEN the read ran once, the others got its error, and a later call reads again
    assert calls == 1
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, OSError) for r in results[1:])
    assert await flight.run("k", read) == "value" and calls == 2


async def test_different_keys_read_separately() -> None:
    flight: SingleFlight[str] = SingleFlight()
    got = await asyncio.gather(flight.run("a", _value("A")), flight.run("b", _value("B")))
    assert got == ["A", "B"]


def _value(text: str):  # type: ignore[no-untyped-def]
    async def read() -> str:
        return text

    return read
