"""The metrics seam's safety rules, the breaker's opening hook and the tracer's no-op."""

from __future__ import annotations

import pytest

from kefu_core.infra import tracing
from kefu_core.infra.metrics import label
from kefu_llm._breaker import BreakerConfig, Breakers, MemoryBreakerStore


@pytest.mark.parametrize(("value", "expected"), [
    ("complete", "complete"), ("agent_offline", "agent_offline"),
    ("acme-corp", "other"), ("Tenant A", "other"), ("x" * 41, "other"), ("", "other"),
    (None, "other"),
])
def test_only_code_words_become_labels(value: str | None, expected: str) -> None:
    assert label(value) == expected


async def test_a_breaker_reports_each_opening_once_and_never_its_id() -> None:
    # GIVEN breakers that open after two failures, with a hook
    opened: list[str] = []
    breakers = Breakers(MemoryBreakerStore(), BreakerConfig(failure_threshold=2))
    breakers.on_open = opened.append
    # WHEN a key breaker fails three times and a provider breaker once
    for _ in range(3):
        await breakers.failure("k:tenant-a:primary:key-1")
    await breakers.failure("p:openai")
    # THEN one opening was reported, by level only
    assert opened == ["key"]
    # WHEN the provider is forced open (e.g. Retry-After)
    await breakers.failure("p:openai", open_for=30)
    # THEN that opening is reported too
    assert opened == ["key", "provider"]


async def test_tracing_is_a_no_op_outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a process that is not a Lambda function (self-hosted, tests)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    tracing.reset()
    try:
        # WHEN a handler is wrapped and a step is traced
        def handler(event: dict[str, str], context: object) -> str:
            return "ok"

        # THEN nothing is wrapped and the step costs a shared empty context manager
        assert tracing.trace_handler(handler) is handler
        assert tracing.tracer() is None
        async with tracing.span("recall"):
            pass
        assert tracing.span("engine") is tracing.span("persist")
    finally:
        tracing.reset()


def test_tracing_is_off_on_lambda_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "kefu-stream")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracing.reset()
    try:
        assert tracing.tracer() is None
    finally:
        tracing.reset()
