"""The public surface the core relies on, with no engine configured (offline only)."""

from __future__ import annotations

import kefu_llm
from kefu_llm import (
    AdapterSettings,
    Busy,
    ChatMessage,
    ChatRequest,
    Delta,
    Final,
    build_router,
)


def _request(text: str, passages: list[str], **kw: object) -> ChatRequest:
    return ChatRequest(
        tenant_id="t1",
        conversation_id="c1",
        messages=[ChatMessage(role="user", content=text)],
        passages=passages,
        **kw,  # type: ignore[arg-type]
    )


def _offline_settings(**kw: object) -> AdapterSettings:
    return AdapterSettings(engines=[], openai_api_key=None, openai_base_url=None, **kw)  # type: ignore[arg-type]


def test_public_names_exist() -> None:
    for name in [
        "ChatMessage",
        "ChatRequest",
        "Delta",
        "Final",
        "Busy",
        "Router",
        "AdapterSettings",
        "build_router",
        "OfflineEngine",
        "OpenAICompatibleEngine",
        "redact_text",
        "count_tokens",
        "compress_history",
        "KefuLLMError",
    ]:
        assert name in kefu_llm.__all__
        assert hasattr(kefu_llm, name)


async def test_no_engine_configured_means_offline_chain_answering_from_passages() -> None:
    # GIVEN settings with no engine and no key
    settings = _offline_settings()
    router = build_router(settings=settings, redis=None)
    assert router.engine_names == ["offline"]
    # WHEN the visitor asks something the passages cover
    events = [
        e async for e in router.stream(_request("营业时间是几点？", ["营业时间为每天9点到18点。"]))
    ]
    # THEN deltas add up to the final text, which quotes the passage, and exactly one Final ends it
    finals = [e for e in events if isinstance(e, Final)]
    assert len(finals) == 1 and events[-1] is finals[0]
    final = finals[0]
    assert final.status == "complete" and final.engine == "offline" and not final.cached
    assert "".join(e.text for e in events if isinstance(e, Delta)) == final.text
    assert "9点到18点" in final.text
    await router.aclose()


async def test_offline_engine_offers_a_human_when_it_does_not_know() -> None:
    router = build_router(settings=_offline_settings(), redis=None)
    zh = [e async for e in router.stream(_request("火星上有分店吗", ["营业时间为每天9点到18点。"]))]
    en = [e async for e in router.stream(_request("Do you ship to Mars?", []))]
    assert "人工" in zh[-1].text  # type: ignore[union-attr]
    assert "human" in en[-1].text  # type: ignore[union-attr]
    await router.aclose()


async def test_tenant_over_its_request_rate_gets_a_single_busy() -> None:
    router = build_router(settings=_offline_settings(tenant_rpm=1), redis=None)
    first = [e async for e in router.stream(_request("hi", []))]
    second = [e async for e in router.stream(_request("hi", []))]
    assert isinstance(first[-1], Final)
    assert len(second) == 1 and isinstance(second[0], Busy)
    assert second[0].scope == "tenant" and 0 < second[0].retry_after_s <= 60
    await router.aclose()
