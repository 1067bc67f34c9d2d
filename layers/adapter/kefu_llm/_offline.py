"""The offline engine: no model, answers from the retrieved knowledge passages.

It scores each retrieved passage by the character bigrams / words it shares with the visitor's
last message and answers from the best one: a FAQ passage (``Q: ...`` / ``A: ...``) gives its
answer whole; any other passage gives its best-matching sentences in their original order
(headings and question lines are never returned as the answer). When nothing matches well
enough it says it does not know and offers a human agent. Chinese and English.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator

from ._engine_base import ApiKey
from ._types import EngineCall

__all__ = ["OfflineEngine", "detect_language"]

_CJK_RE = re.compile(r"[\u4e00-\u9fff]")
_WORD_RE = re.compile(r"[a-z0-9]+")
_SENTENCE_SPLIT = re.compile(r"(?<=[。！？!?；\n])|(?<=[.;])\s+")
_PLACEHOLDER_RE = re.compile(r"\[(?:ID|CARD|PHONE|EMAIL)_[0-9]+\]")
_EN_STOP = frozenset(
    "a an the is are was were be to of and or in on at for with my your i you we it this that "
    "do does can could would will how what when where which who why please me our us from by "
    "as".split()
)
_ZH_STOP = frozenset(
    "的了吗呢吧啊是我你们在有和就都也请问一下这个那个怎么什么".replace("", " ").split()
)

NO_ANSWER = {
    "zh": "抱歉，我暂时没有找到这个问题的答案。需要为您转接人工客服吗？",
    "en": "Sorry, I don't know the answer to that yet. "
    "Would you like me to connect you with a human agent?",
}
PREFIX = {"zh": "根据我们的资料：", "en": "According to our information: "}


_FAQ_RE = re.compile(r"(?:^|\n)\s*Q[:：].*?(?:\n|\s)\s*A[:：]\s*(?P<answer>.+)", re.S)
_QUESTION_LINE = re.compile(r"\s*Q[:：]")


def detect_language(text: str) -> str:
    """``zh`` when a quarter or more of the letters are CJK, else ``en``."""
    letters = sum(1 for ch in text if ch.isalpha())
    if not letters:
        return "zh"
    return "zh" if len(_CJK_RE.findall(text)) * 4 >= letters else "en"


_ZH_QUESTION = re.compile(
    r"请问|你们|我们|我的|你好|您好|是什么|什么|怎么样|怎么|如何|哪里|哪些|哪个|多少|可以|能不能|有没有|是否|一下|想要|想|吗|呢|吧|啊|呀"
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _features(text: str) -> dict[str, float]:
    """Weighted features: words and CJK bigrams (2.0), single CJK characters (0.5)."""
    text = _PLACEHOLDER_RE.sub(" ", text.lower())
    text = _ZH_QUESTION.sub(" ", text)
    feats: dict[str, float] = {_stem(w): 2.0 for w in _WORD_RE.findall(text) if w not in _EN_STOP}
    run: list[str] = []
    for ch in text + " ":
        if "\u4e00" <= ch <= "\u9fff":
            run.append(ch)
            continue
        if run:
            for a, b in itertools.pairwise(run):
                feats[a + b] = 2.0
            for c in run:
                if c not in _ZH_STOP:
                    feats.setdefault(c, 0.5)
            run = []
    return feats


class OfflineEngine:
    """Answers from ``call.passages`` only; never fails, never needs a key."""

    needs_key = False
    local = True
    supports_continuation = False

    def __init__(
        self,
        name: str = "offline",
        *,
        min_score: float = 0.15,
        max_sentences: int = 3,
        chunk_chars: int = 6,
    ) -> None:
        self.name = name
        self.provider = "offline"
        self.model = "offline"
        self.min_score = min_score
        self.max_sentences = max_sentences
        self.chunk_chars = chunk_chars

    def answer(self, call: EngineCall) -> str:
        question = next(
            (m["content"] for m in reversed(call.messages) if m.get("role") == "user"), ""
        )
        language = call.language or detect_language(question)
        language = "zh" if language.lower().startswith("zh") else "en"
        q = _features(question)
        if not q or not call.passages:
            return self._no_answer(call, language)
        q_total = sum(q.values())

        def score(text: str) -> float:
            f = _features(text)
            if not any(k in f and w > 1.0 for k, w in q.items()):
                return 0.0
            return sum(w for k, w in q.items() if k in f) / q_total

        # Earlier passages were ranked higher by retrieval: ties go to them.
        ranked = sorted(((score(p), -i, p) for i, p in enumerate(call.passages)), reverse=True)
        best_score, _, passage = ranked[0]
        if best_score < self.min_score:
            return self._no_answer(call, language)
        sep = "" if language == "zh" else " "
        faq = _FAQ_RE.search(passage)
        if faq:
            return PREFIX[language] + faq.group("answer").strip()
        body = [
            line
            for line in passage.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and not _QUESTION_LINE.match(line)
        ]
        sentences = [s.strip() for s in _SENTENCE_SPLIT.split("\n".join(body)) if s.strip()]
        if not sentences:
            return self._no_answer(call, language)
        scored = sorted(((score(s), i, s) for i, s in enumerate(sentences)), reverse=True)
        top = scored[0][0]
        keep = [t for t in scored[: self.max_sentences] if top > 0 and t[0] >= top * 0.5]
        if not keep:  # the passage matched as a whole: its opening sentences answer
            keep = [(0.0, i, s) for i, s in enumerate(sentences[:2])]
        keep.sort(key=lambda t: t[1])
        return PREFIX[language] + sep.join(t[2] for t in keep)

    @staticmethod
    def _no_answer(call: EngineCall, language: str) -> str:
        call.answered = False
        return NO_ANSWER[language]

    async def stream(self, call: EngineCall, *, key: ApiKey | None = None) -> AsyncIterator[str]:
        text = self.answer(call)
        step = self.chunk_chars
        for i in range(0, len(text), step):
            yield text[i : i + step]

    async def aclose(self) -> None:
        return None
