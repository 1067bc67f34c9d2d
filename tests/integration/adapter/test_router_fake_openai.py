"""The router against the OpenAI-compatible test server: real HTTP, real SSE, injected faults."""

from __future__ import annotations

import asyncio
import time

from kefu_llm import Busy, Delta, build_router
from tests.support.fake_openai import FakeOpenAI

from .conftest import collect, engine, request, settings


async def test_streams_a_reply_through_the_sdk(fake: FakeOpenAI) -> None:
    # GIVEN one remote engine answering normally
    router = build_router(settings=settings(engine(fake, "primary")), redis=None)
    # WHEN a visitor writes
    events, final = await collect(router.stream(request("hello there")))
    # THEN the reply streams in several deltas and completes on the primary engine
    assert final.status == "complete" and final.engine == "primary" and not final.fallback_used
    assert final.text == "OK. hello there"
    assert sum(isinstance(e, Delta) for e in events) >= 3
    await router.aclose()


async def test_pii_never_reaches_the_provider_and_comes_back_in_the_answer(
    fake: FakeOpenAI,
) -> None:
    # GIVEN an engine that echoes the message back in 3-character pieces (placeholders split)
    router = build_router(
        settings=settings(engine(fake, "primary", "fake:chunk_chars=3")), redis=None
    )
    text = "我的手机是１３８-１２３４-５６７８，邮箱 li.lei@example.com，身份证11010519491231002X"
    # WHEN the visitor writes personal data
    events, final = await collect(router.stream(request(text)))
    # THEN the provider saw placeholders only
    sent = fake.requests[-1]["messages"]
    wire = " ".join(m["content"] for m in sent)
    assert "[PHONE_1]" in wire and "[EMAIL_1]" in wire and "[ID_1]" in wire
    assert "example.com" not in wire and "11010519491231002X" not in wire and "５６７８" not in wire
    # AND the visitor sees the real values in the streamed answer
    assert final.text == "OK. " + text
    deltas = [e.text for e in events if isinstance(e, Delta)]
    assert not any("[PHONE" in d or "_1]" in d for d in deltas)
    await router.aclose()


async def test_first_token_deadline_moves_to_the_next_engine(fake: FakeOpenAI) -> None:
    # GIVEN a primary that needs 20 s for its first token and a 2 s first-token deadline
    # (generous, so a busy machine cannot push the backup past it too)
    router = build_router(
        settings=settings(
            engine(fake, "slow", "fake:ttft=20000"),
            engine(fake, "backup"),
            first_token_timeout_s=2.0,
        ),
        redis=None,
    )
    started = time.monotonic()
    _, final = await collect(router.stream(request("hi")))
    # THEN the backup answers and the caller is told, long before the slow engine would have
    assert final.engine == "backup" and final.fallback_used and final.status == "complete"
    assert time.monotonic() - started < 15
    await router.aclose()


async def test_errors_before_the_first_token_fall_back(fake: FakeOpenAI) -> None:
    for model in (
        "fake:status=500",
        "fake:status=429",
        "fake:mode=cut,after=0",
        "fake:mode=malformed,after=0",
        "fake:mode=reset,after=0",
    ):
        router = build_router(
            settings=settings(engine(fake, "primary", model), engine(fake, "backup")), redis=None
        )
        _, final = await collect(router.stream(request("hi")))
        assert (final.engine, final.status, final.fallback_used) == ("backup", "complete", True), (
            model
        )
        await router.aclose()


async def test_after_the_first_token_a_cut_ends_the_reply_incomplete(fake: FakeOpenAI) -> None:
    cases = {
        "fake:mode=cut,after=2": "cut",
        "fake:mode=reset,after=2": "cut",
        "fake:mode=malformed,after=2": "malformed",
        "fake:mode=stall,after=2": "stall",
    }
    for model, reason in cases.items():
        # GIVEN a primary that breaks after two pieces and a healthy backup, no continuation
        router = build_router(
            settings=settings(
                engine(fake, "primary", model), engine(fake, "backup"), stall_timeout_s=1.0
            ),
            redis=None,
        )
        _, final = await collect(router.stream(request("one two three four")))
        # THEN the reply is marked incomplete with what was streamed, never silently truncated
        assert final.status == "incomplete", model
        assert final.reason == reason, (model, final.reason)
        assert final.engine == "primary" and final.text == "OK. one "
        await router.aclose()


async def test_midstream_continuation_on_the_next_engine(fake: FakeOpenAI) -> None:
    # GIVEN continuation enabled and a primary cut after two pieces
    router = build_router(
        settings=settings(
            engine(fake, "primary", "fake:mode=cut,after=2"),
            engine(fake, "backup", "fake:reply=two three"),
            midstream_fallback=True,
        ),
        redis=None,
    )
    _, final = await collect(router.stream(request("one two three")))
    # THEN the backup continues the answer and the caller is told so
    assert final.status == "complete" and final.fallback_used
    assert final.reason == "continued_on:backup" and final.engine == "backup"
    assert final.text == "OK. one two three"
    continued = fake.requests[-1]["messages"]
    assert continued[-2] == {"role": "assistant", "content": "OK. one "}
    await router.aclose()


async def test_429_with_retry_after_opens_the_key_for_that_long(fake: FakeOpenAI) -> None:
    router = build_router(
        settings=settings(
            engine(fake, "primary", "fake:status=429,retry_after=30"), engine(fake, "backup")
        ),
        redis=None,
    )
    await collect(router.stream(request("a")))
    before = len([r for r in fake.requests if r["model"].startswith("fake:status")])
    _, final = await collect(router.stream(request("b")))
    after = len([r for r in fake.requests if r["model"].startswith("fake:status")])
    # THEN the second request went straight to the backup: the key is open for 30 s
    assert final.engine == "backup" and before == after == 1
    snap = (await router.breakers.store.snapshots(["p:primary"]))[0]
    assert snap.state == "closed"  # one 429 does not open the provider
    await router.aclose()


async def test_provider_breaker_opens_after_five_failures_and_recovers(fake: FakeOpenAI) -> None:
    # GIVEN a primary failing with 500 and a short open time
    router = build_router(
        settings=settings(
            engine(fake, "primary", "fake-primary"),
            engine(fake, "backup"),
            breaker_open_s=0.3,
            breaker_cache_s=0,
            breaker_half_open_successes=1,
        ),
        redis=None,
    )
    fake.push(*[{"status": 500}] * 5, model="fake-primary")
    for _ in range(5):
        _, final = await collect(router.stream(request("x")))
        assert final.engine == "backup"
    # WHEN a sixth request comes while the breaker is open
    n = fake.stats["requests"]
    _, final = await collect(router.stream(request("y")))
    # THEN the primary is not even called
    assert final.engine == "backup" and fake.stats["requests"] == n + 1
    # AND after the open time a probe goes through and closes it again
    await asyncio.sleep(0.35)
    _, final = await collect(router.stream(request("z")))
    assert final.engine == "primary"
    snap = (await router.breakers.store.snapshots(["p:primary"]))[0]
    assert snap.state == "closed"
    await router.aclose()


async def test_client_errors_do_not_trip_the_provider_breaker(fake: FakeOpenAI) -> None:
    router = build_router(
        settings=settings(
            engine(fake, "primary", "fake-primary"), engine(fake, "backup"), breaker_cache_s=0
        ),
        redis=None,
    )
    fake.push(*[{"status": 400}] * 4, *[{"status": 404}] * 4, model="fake-primary")
    for _ in range(8):
        await collect(router.stream(request("x")))
    snap = (await router.breakers.store.snapshots(["p:primary"]))[0]
    assert snap.state == "closed" and snap.consecutive == 0
    await router.aclose()


async def test_the_last_engine_is_never_locked_out(fake: FakeOpenAI) -> None:
    # GIVEN a single-engine chain whose breaker is open
    router = build_router(
        settings=settings(engine(fake, "only"), offline_last_resort=False, breaker_cache_s=0),
        redis=None,
    )
    fake.push(*[{"status": 503}] * 5)
    for _ in range(5):
        _, final = await collect(router.stream(request("x")))
        assert final.status == "incomplete"
    assert (await router.breakers.store.snapshots(["p:only"]))[0].state == "open"
    # WHEN the provider recovers THEN the next request is still tried and answered
    _, final = await collect(router.stream(request("back?")))
    assert final.status == "complete" and final.engine == "only"
    await router.aclose()


async def test_a_key_failing_with_401_is_retired_and_the_other_used(fake: FakeOpenAI) -> None:
    # GIVEN two keys, the first revoked at the provider
    fake.set_valid_keys({"sk-good"})
    router = build_router(
        settings=settings(engine(fake, "primary", keys=["sk-revoked", "sk-good"])), redis=None
    )
    for i in range(4):
        _, final = await collect(router.stream(request(f"q{i}")))
        # THEN every request is answered by the primary, none dropped
        assert final.engine == "primary" and final.status == "complete"
    used = [r["key"] for r in fake.requests]
    assert used.count("sk-revoked") == 1 and used.count("sk-good") == 4
    await router.aclose()


async def test_key_rate_limit_skips_the_engine_or_says_busy(fake: FakeOpenAI) -> None:
    router = build_router(
        settings=settings(engine(fake, "only", key_rpm=1), offline_last_resort=False), redis=None
    )
    events = [e async for e in router.stream(request("a"))]
    assert events[-1].status == "complete"  # type: ignore[union-attr]
    events = [e async for e in router.stream(request("b"))]
    assert len(events) == 1 and isinstance(events[0], Busy) and events[0].scope == "key"
    await router.aclose()


async def test_identical_requests_are_served_from_the_cache(fake: FakeOpenAI) -> None:
    router = build_router(settings=settings(engine(fake, "primary"), cache_ttl_s=60), redis=None)
    _, first = await collect(router.stream(request("cache me", kb_version="7")))
    n = fake.stats["requests"]
    events, second = await collect(router.stream(request("cache me", kb_version="7")))
    assert second.cached and second.text == first.text and fake.stats["requests"] == n
    assert sum(isinstance(e, Delta) for e in events) > 1  # replayed as a stream
    _, third = await collect(router.stream(request("cache me", kb_version="8")))
    assert not third.cached  # a new knowledge-base version is a new answer
    _, other = await collect(router.stream(request("cache me", kb_version="7", tenant="t2")))
    assert not other.cached  # scoped by tenant
    await router.aclose()


async def test_total_deadline_ends_a_slow_stream(fake: FakeOpenAI) -> None:
    router = build_router(
        settings=settings(engine(fake, "primary", "fake:tps=10,tokens=100"), total_timeout_s=0.5),
        redis=None,
    )
    started = time.monotonic()
    _, final = await collect(router.stream(request("x")))
    assert final.status == "incomplete" and final.reason == "total_timeout"
    assert time.monotonic() - started < 5  # the whole stream would take 10 s
    await router.aclose()


async def test_the_provider_receives_the_whole_request_body(fake: FakeOpenAI) -> None:
    # GIVEN an engine with provider-specific extra fields, and the SDK's own HTTP client
    from dataclasses import dataclass

    from kefu_llm import EngineCall, OpenAICompatibleEngine

    @dataclass
    class Key:
        id: str = "k1"
        value: str = "sk-test-1"

    engine_ = OpenAICompatibleEngine(name="p", model="fake", base_url=fake.base_url,
                                     extra_body={"top_k": 5, "temperature": 0.1})
    call = EngineCall(messages=[{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hello"}],
                      passages=["the shop opens at nine"], max_tokens=64, temperature=0.7,
                      language="en")
    # WHEN the engine streams a reply
    pieces = [p async for p in engine_.stream(call, key=Key())]
    await engine_.aclose()
    # THEN the provider got the model, the messages with the passages, the limits, the
    # handoff tool and the extra fields (which win over the engine's own), streamed
    body = fake.requests[-1]["body"]
    assert body["model"] == "fake" and body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "system", "user"]
    assert "the shop opens at nine" in body["messages"][1]["content"]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.1 and body["top_k"] == 5
    assert body["tools"][0]["function"]["name"] == "request_human_agent"
    assert body["tool_choice"] == "auto"
    assert "".join(p for p in pieces if isinstance(p, str)) == "OK. hello"


async def test_replies_streaming_at_once_reuse_their_connections(fake: FakeOpenAI) -> None:
    # GIVEN an engine with the default connection pool, warmed by one reply, and replies that
    # take a second for their first token
    router = build_router(
        settings=settings(engine(fake, "primary", "fake:ttft=1000")), redis=None
    )
    await collect(router.stream(request("warm up")))

    async def wave() -> list[str]:
        finals = await asyncio.gather(
            *(collect(router.stream(request(f"hi {i}", tenant=f"t{i}"))) for i in range(150))
        )
        return [final.status for _, final in finals]

    # WHEN 150 replies stream at once (more than the 100 idle connections the SDK's own client
    # keeps), twice in a row
    assert set(await wave()) == {"complete"}
    opened_by_first = fake.stats["connections"]
    assert fake.stats["peak_active"] == 150
    assert set(await wave()) == {"complete"}
    # THEN the second wave streams over the first wave's connections: none is opened again
    assert fake.stats["connections"] == opened_by_first
    await router.aclose()


async def test_a_body_held_open_after_done_does_not_hold_the_reply(fake: FakeOpenAI) -> None:
    # GIVEN a provider (or a proxy in front of it) that keeps the body open 30 s after [DONE]
    router = build_router(
        settings=settings(engine(fake, "primary", "fake:linger_s=30"), stall_timeout_s=20.0),
        redis=None,
    )
    started = time.monotonic()
    # WHEN a visitor writes
    _, final = await collect(router.stream(request("hello")))
    # THEN the reply completes about a second after [DONE], not when the body ends
    assert final.status == "complete" and final.text == "OK. hello"
    assert time.monotonic() - started < 10
    await router.aclose()


async def test_replies_one_after_another_use_one_connection(fake: FakeOpenAI) -> None:
    # GIVEN an engine with its default pools (as in a Lambda container: one reply at a time)
    router = build_router(settings=settings(engine(fake, "primary")), redis=None)
    # WHEN ten replies stream one after another
    for i in range(10):
        _, final = await collect(router.stream(request(f"question {i}")))
        assert final.status == "complete"
    # THEN they all went over the first one's connection
    assert fake.stats["connections"] == 1
    await router.aclose()
