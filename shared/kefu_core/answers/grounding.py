"""The grounding check: is each sentence of a reply supported by what the model was given?

A cheap lexical and numeric check, Chinese-aware, run on the finished reply (a few
milliseconds, after the last delta, so the first token is never delayed):

- the reply is cut into sentences (Chinese and Latin punctuation, line breaks);
- questions back to the visitor and courtesy lines ("有什么可以帮您", "glad to help") with no
  number in them state no fact and are not checked;
- every number of a sentence (prices, dates, durations, phone numbers, after NFKC; Chinese
  numerals before a unit such as 七天 or 一年 count as digits; 9折 also counts as 10% off) must
  appear in one of the source sentences closest to it (most terms in common): otherwise the
  sentence is ``number`` (a 2 from "1-2个工作日" does not support "保修两年");
- a sentence without numbers must have most of its content terms (CJK character bigrams,
  Latin words lightly stemmed, stop terms removed) in the sources: otherwise it is
  ``unmatched``;
- a sentence with a clause that says the opposite of the source clause it matches best (a
  negation on one side only: "可以叠加" against "不与会员折扣叠加") is ``negation``.

The sources are the passages and the memory prompt the reply was given, and what the visitor
said (a visitor's own order number repeated back is no invention). What the check cannot see:
a paraphrase with none of the source's words, an implication, a wrong combination of facts that
are each in a source. bench/grounding.py measures it on a labelled set.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kefu_memory import cjk_ngrams, normalize

__all__ = ["GroundingResult", "SentenceCheck", "check_reply", "sentences"]

Reason = Literal["number", "unmatched", "negation"]
MIN_COVERAGE = 0.5  # share of a sentence's content terms found in the sources
NUMBER_CONTEXT = 3  # a number must be in one of the source sentences closest to the sentence
FOREIGN_CLAUSE = 0.34  # a clause with fewer of its terms in the sources is unsupported
MIN_TERMS = 3  # fewer content terms than this and no number: nothing to check

_SENTENCE_END = re.compile(r"[。！？!?；;\n]+|(?<!\d)\.(?=\s|$)")
_CLAUSE = re.compile(r"[,，、:：()（）]")
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)、]|[-*•#>]+)\s*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_LATIN = re.compile(r"[a-z]+")
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_ZH_NUMERAL = re.compile(r"[零一二两三四五六七八九十百千]+"
                         r"(?=[个年月日天周小时分钟元块张次件折%号点岁倍位]|工作日)")
_EN_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
               "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirty": 30}
_EN_NUMERAL = re.compile(r"\b(" + "|".join(_EN_NUMBERS) + r")(?=[\s-]+(?:working\s+|business\s+)?"
                         r"(?:day|week|month|year|hour|minute|yuan|dollar|percent|time|coupon)s?\b)")
_DISCOUNT = re.compile(r"(\d+(?:\.\d+)?)折")
_NEGATIONS = ("不", "没", "无法", "未", "禁止", "勿")
_NOT_NEGATIONS = ("不好意思", "不客气", "不同", "不用谢", "无理由", "没问题", "不少", "不错",
                  "不远", "不过", "不仅", "差不多", "不妨")
_EN_NEGATIONS = frozenset({"not", "no", "never", "cannot", "can't", "won't", "don't", "doesn't",
                           "isn't", "aren't", "without", "nor"})
_COURTESY = ("您好", "你好", "欢迎", "感谢", "谢谢", "抱歉", "不好意思", "很高兴", "还有什么",
             "随时", "为您服务", "请稍候", "hello", "hi ", "thank", "sorry", "glad",
             "happy to help", "anything else", "feel free", "welcome", "let me know")
_STOP = frozenset(
    """的 了 是 我 你 他 她 它 们 吗 呢 吧 啊 呀 哦 嗯 么 和 与 及 或 在 有 也 就 都 而 着 这 那 个
    您
    a an the is are was were be been to of and or in on at for with by from as it this that i you
    we they he she my your our me us do does did can could would should will please what which
    who how when where there here have has had yes if so then also just any all""".split()
)


@dataclass(frozen=True)
class SentenceCheck:
    """One sentence of a reply: where it is (code points of the reply), whether it was
    checked, and why it is unsupported (None when it is supported or not checked)."""

    start: int
    end: int
    text: str
    checked: bool
    reason: Reason | None = None


@dataclass(frozen=True)
class GroundingResult:
    sentences: tuple[SentenceCheck, ...]

    @property
    def unsupported(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if s.reason is not None]

    @property
    def grounded(self) -> bool:
        return not self.unsupported

    @property
    def checked(self) -> int:
        return sum(s.checked for s in self.sentences)


def sentences(text: str) -> list[tuple[int, int]]:
    """Spans ``[start, end)`` of the sentences of ``text``, each with its closing punctuation,
    blank ones left out."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def check_reply(reply: str, sources: Sequence[str]) -> GroundingResult:
    """Check every sentence of ``reply`` against ``sources`` (passages, memory, the visitor's
    words)."""
    source = _Sources(sources)
    checks = []
    for start, end in sentences(reply):
        text = reply[start:end]
        checked, reason = source.judge(text)
        checks.append(SentenceCheck(start=start, end=end, text=text.strip(), checked=checked,
                                    reason=reason))
    return GroundingResult(sentences=tuple(checks))


@functools.lru_cache(maxsize=2048)
def _analysed(source: str) -> tuple[list[_SourceSentence], list[tuple[set[str], bool | None]]]:
    """The sentences and clauses of one source text. Cached: the system prompt and a tenant's
    popular passages come back with every reply (read only, never changed by a caller)."""
    text = _canonical(source)
    found: list[_SourceSentence] = []
    clauses: list[tuple[set[str], bool | None]] = []
    for start, end in sentences(text):
        part = text[start:end]
        found.append(_SourceSentence(_terms(part), _numbers(part)))
        # A question (the visitor's "不知道地址吗？") states nothing to contradict.
        clauses.extend((_terms(c), None if _is_question(part) else _negated(c))
                       for c in _CLAUSE.split(part))
    return found, clauses


class _Sources:
    def __init__(self, sources: Sequence[str]) -> None:
        self.terms: set[str] = set()
        self.sentences: list[_SourceSentence] = []
        self.clauses: list[tuple[set[str], bool | None]] = []
        for source in sources:
            if not source.strip():
                continue
            found, clauses = _analysed(source)
            for sentence in found:
                self.terms |= sentence.terms
            self.sentences.extend(found)
            self.clauses.extend(clauses)

    def judge(self, sentence: str) -> tuple[bool, Reason | None]:
        text = _LIST_MARKER.sub("", _canonical(sentence))
        numbers = _numbers(text)
        terms = _terms(text)
        if not numbers and (_is_question(text) or _is_courtesy(text) or len(terms) < MIN_TERMS):
            return False, None
        closest = sorted(self.sentences, key=lambda s: len(s.terms & terms),
                         reverse=True)[:NUMBER_CONTEXT]
        if numbers - {n for s in closest for n in s.numbers}:
            return True, "number"
        # A sentence whose numbers are all in a source is about them: its other words are
        # often just how it is said ("你记一下，电话是…").
        if not numbers and terms and len(terms & self.terms) / len(terms) < MIN_COVERAGE:
            return True, "unmatched"
        clauses = _CLAUSE.split(text)
        if any(self._foreign(clause) for clause in clauses):
            return True, "unmatched"
        if any(self._contradicts(clause) for clause in clauses):
            return True, "negation"
        return True, None

    def _foreign(self, clause: str) -> bool:
        """A clause that reads as a name (a list item: a place, a dish; no function word or
        character in it) hardly any of whose terms is in a source."""
        if any(c in _STOP for c in clause) or _negated(clause) \
                or any(w in _STOP for w in _LATIN.findall(clause)):
            return False
        terms = _terms(clause)
        return len(terms) >= 2 and len(terms & self.terms) / len(terms) < FOREIGN_CLAUSE

    def _contradicts(self, clause: str) -> bool:
        """The source clause closest to ``clause`` says it with a negation and it without,
        or the other way round (clauses, so that a "不" elsewhere in a long line is not
        taken for this one's)."""
        terms = _terms(clause)
        if len(terms) < 2:
            return False
        best, negated = max(((t, n) for t, n in self.clauses),
                            key=lambda c: len(c[0] & terms), default=(set(), None))
        shared = len(best & terms)
        return negated is not None and shared >= 3 \
            and shared >= MIN_COVERAGE * min(len(terms), len(best)) \
            and negated != _negated(clause)


@dataclass(frozen=True)
class _SourceSentence:
    terms: set[str]
    numbers: set[str]


def _canonical(text: str) -> str:
    """NFKC, lower case, thousands separators dropped, Chinese and English numerals before a
    unit written as digits."""
    text = normalize(text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = _ZH_NUMERAL.sub(lambda m: str(_zh_number(m.group(0))), text)
    return _EN_NUMERAL.sub(lambda m: str(_EN_NUMBERS[m.group(1)]), text)


def _zh_number(numeral: str) -> int:
    total, current = 0, 0
    for char in numeral:
        if char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        else:
            unit = {"十": 10, "百": 100, "千": 1000}[char]
            total += (current or 1) * unit
            current = 0
    return total + current


def _numbers(text: str) -> set[str]:
    found = {_plain(n) for n in _NUMBER.findall(text)}
    for written in _DISCOUNT.findall(text):  # 9折 is 10% off, 9.5折 (95折) 5% off
        discount = float(written) / 10 if float(written) >= 10 else float(written)
        found |= {_plain(f"{discount:g}"), _plain(f"{100 - discount * 10:g}")}
    return found


def _plain(number: str) -> str:
    return f"{float(number):g}" if "." in number else str(int(number))


def _terms(text: str) -> set[str]:
    terms = {g for g in cjk_ngrams(text, 2) if not all(c in _STOP for c in g)}
    terms |= {_stem(w) for w in _LATIN.findall(text) if w not in _STOP and len(w) > 1}
    return terms


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _negated(text: str) -> bool:
    for phrase in _NOT_NEGATIONS:
        text = text.replace(phrase, "")
    if any(n in text for n in _NEGATIONS):
        return True
    return any(w in _EN_NEGATIONS or w.endswith("n't") for w in re.findall(r"[a-z']+", text))


def _is_question(text: str) -> bool:
    return text.rstrip().endswith(("?", "？", "吗", "呢"))


def _is_courtesy(text: str) -> bool:
    return any(c in text for c in _COURTESY)
