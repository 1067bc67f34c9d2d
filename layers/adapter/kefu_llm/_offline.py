"""The offline engine: no model, answers from the retrieved knowledge passages, or refuses.

Each passage is cut into answer units: a FAQ entry (``Q: ...`` / ``A: ...``) is one unit whose
answer is given whole; any other passage gives one unit per paragraph. A unit answers the
question when it covers enough of what the question asks about: the question's terms (shop
concepts from ``_offline_lexicon`` in Chinese and English, other English words, Chinese
character pairs), each weighted by how much it tells (goods the policies do not tell apart and
everyday verbs weigh little; an unknown two-character Chinese word weighs nearly like an English
word, so the subject of a near-miss question counts; words outside the shop vocabulary
together weigh at most ``max_unknown``, so the circumstances a long message tells do not
outweigh its subject; a misspelt shop word is read as the word meant; a rule stated for
members covers a Gold member at half weight; a unit naming no kind of goods covers the kind
the question names, and a unit about repairs the sending in and back of a repair), are looked
up in the unit, and the covered share (``min_score``, calibrated on
bench/data/offline_questions.jsonl) and the covered weight (``min_matched``) must both be
reached. A question whose main terms the
passages do not mention (cash on delivery, a store in Shanghai) is refused, even when the
passages share shop words with it. Among units that ground the question, the one sharing more
of its literal words wins ("Hong Kong" beats "mainland China" for a question naming Hong Kong).

The answer quotes the unit whole: a FAQ answer, or the whole paragraph, so a "not covered" or
"except" sentence is never cut from the sentence it qualifies (a long paragraph gives its
matching sentences and every caveat sentence). A refusal says so in the visitor's language,
offers a human agent and ends with ``EngineOutcome(answered=False)``: the router reports the
reply as not answered and the handoff logic counts it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ._engine_base import ApiKey
from ._offline_lexicon import (
    AGNOSTIC_KINDS,
    AMBIGUOUS,
    BROADER,
    CONCEPTS,
    EN_STOP,
    GENERIC_WORDS,
    IMPLIED,
    IMPLIED_WITHIN,
    KINDS,
    ZH_FILLER,
    stem,
)
from ._offline_semantic import MeaningRule, Similarity
from ._types import EngineCall, EngineOutcome

__all__ = ["OfflineEngine", "detect_language"]

_CJK_RE = re.compile(r"[\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_EN_WORD = re.compile(r"[a-z]+|[0-9]+")
# "5% off" is a discount ("off" alone is not: "dropped it off the table").
_PERCENT_OFF = re.compile(r"[0-9]+(?:\.[0-9]+)?\s*%\s*off\b")
# 「不太合适」「不是很满意」「不怎么喜欢」 say 「不合适」「不满意」「不喜欢」.
_NOT_VERY = re.compile(r"不(?:太|是很|怎么|大|是特别|够)(?=[\u4e00-\u9fff])")
_CLAUSE_BREAK = re.compile(r"[.;:!?,()]+(?=\s|$)|[;:!?()，。；：！？（）]")
_SENTENCE_RE = re.compile(r"[^。！？!?\n]+?(?:[。！？!?]+|(?<=[a-z0-9)\"'])\.(?=\s|$)|$)\s*", re.I)
_PLACEHOLDER_RE = re.compile(r"\[(?:ID|CARD|PHONE|EMAIL)_[0-9]+\]")
_FAQ_RE = re.compile(r"^\s*Q[:：](?P<question>.*?)\n\s*A[:：]\s*(?P<answer>.+)$", re.S)
_QUESTION_LINE = re.compile(r"\s*Q[:：]")
_CLOCK_RE = re.compile(
    r"\d{1,2}[:：]\d{2}|[0-9一二三四五六七八九十两]+点|\b\d{1,2}\s*(?:am|pm)\b|\bnoon\b", re.I
)
# A duration: "7天", "六个月", "一年", "3 business days", "one-year", "six months".
_DAYS_RE = re.compile(
    r"(?<![第0-9一二三四五六七八九十两半])[0-9一二三四五六七八九十两半]+\s*"
    r"(?:个工作日|个?天|日内|个?月|年|小时|个?星期|周)"
    r"|\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|few|a)(?:-\d+)?"
    r"[\s-]+(?:full |whole |entire )?(?:business |working )?"
    r"(?:days?|weeks?|months?|years?|hours?)\b",
    re.I,
)
# Sentences that limit or qualify an answer: never cut from the answer they belong to.
# A sum of money: "满5000元", "五千", "99元", "1000 yuan", "¥99".
_AMOUNT_RE = re.compile(
    r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?\s*(?:[多来余]?(?:元|块)|yuan\b|rmb\b)?"
    r"|[0-9]+(?:\.[0-9]+)?\s*(?:[多来余]?(?:元|块)|yuan\b|rmb\b)|[¥$]\s*[0-9]+"
    r"|(?:满|够|超过|达到)了?[0-9一二三四五六七八九十两百千万]+|[一二三四五六七八九十两]+[百千万]+(?:元|块)?"
    r"|\b(?:over|above|more than|at least)\s+[0-9]+",
    re.I,
)
# "send it back", "take the item back": a return, whatever sits between verb and particle.
_PARTICLE_VERBS = frozenset({"send", "take", "bring", "give", "post", "mail"})
# The clauses of a message that ask (a question mark, a question word) rather than tell the
# shopper's circumstances ("got 2 coupons from the promo email, can i use both?").
_CLAUSE_RE = re.compile(r"[^,.;!?，。；！？\n]+[,.;!?，。；！？\n]*")
_ASKING_RE = re.compile(
    r"[?？]|吗|呢|多久|多少|几天|怎么|如何|能不能|可不可以|是否|有没有|啥"
    r"|^\s*(?:how|what|when|where|which|why|can|could|do|does|is|are|will|would|should)\b",
    re.I,
)
_CAVEAT_RE = re.compile(
    r"不在|不包括|不含|不支持|不与|不可|不能|无法|除外|除了|另计|另行|仅|只|须|需|"
    r"\bnot\b|n't\b|\bexcept|\bexcluding\b|\bonly\b|\bunless\b|\bno\b|\bmust\b",
    re.I,
)

NO_ANSWER = {
    "zh": "抱歉，我暂时没有找到这个问题的答案。需要为您转接人工客服吗？",
    "en": "Sorry, I don't know the answer to that yet. "
    "Would you like me to connect you with a human agent?",
}
PREFIX = {"zh": "根据我们的资料：", "en": "According to our information: "}
_ANSWERED = EngineOutcome(finish_reason="stop")
_REFUSED = EngineOutcome(finish_reason="stop", answered=False)
# The fit a unit in the visitor's language gains over one in the other language: it wins
# unless the other covers clearly more of the question.
_SAME_LANGUAGE = 0.25
_LONG_PARAGRAPH = 400  # characters: longer paragraphs give their matching sentences only


def detect_language(text: str) -> str:
    """``zh`` when a quarter or more of the letters are CJK, else ``en``."""
    letters = sum(1 for ch in text if ch.isalpha())
    if not letters:
        return "zh"
    return "zh" if len(_CJK_RE.findall(text)) * 4 >= letters else "en"


def _alternation(forms: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


# A form may say several concepts at once (「报修」 is a claim and a repair): each counts.
_ZH_FORMS: dict[str, tuple[str, ...]] = {}
_EN_FORMS: dict[tuple[str, ...], tuple[str, ...]] = {}
for _concept, (_weight, _zh, _en) in CONCEPTS.items():
    for _form in _zh:
        _ZH_FORMS[_form] = (*_ZH_FORMS.get(_form, ()), _concept)
    for _form in _en:
        _key = tuple(stem(w) for w in _EN_WORD.findall(_form))
        _EN_FORMS[_key] = (*_EN_FORMS.get(_key, ()), _concept)
# An ambiguous form says one of its concepts: "a|b" (see ``_concept``).
for _form, _concepts in AMBIGUOUS.items():
    if _CJK_RE.search(_form):
        _ZH_FORMS[_form] = ("|".join(_concepts),)
    else:
        _EN_FORMS[tuple(stem(w) for w in _EN_WORD.findall(_form))] = ("|".join(_concepts),)
_ZH_LEXICON = _alternation(list(_ZH_FORMS))
_ZH_FILLER_RE = _alternation(list(ZH_FILLER))
_EN_MAX_PHRASE = max(len(k) for k in _EN_FORMS)
_GENERIC_STEMS = frozenset(stem(w) for w in GENERIC_WORDS)
_EN_SINGLE = {k[0]: c for k, c in _EN_FORMS.items() if len(k) == 1 and len(k[0]) >= 5}
# A day in the past the question counts from (「上周一签收」, "three days ago", "last Monday",
# 「前天收到」): the question asks how much time has passed, which a unit stating a period
# ("7天内", "within 7 days", "six months") answers.
_WEEKDAY_ZH = "(?:周|星期|礼拜)[一二三四五六日天]"
_WEEKDAY_EN = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_ELAPSED_RE = re.compile(
    rf"上(?:个)?{_WEEKDAY_ZH}|上(?:个)?(?:周|星期|礼拜|月)|前天|大前天|第[0-9一二三四五六七八九十两]+天"
    rf"|[0-9一二三四五六七八九十两半]+"
    rf"\s*(?:个)?(?:天|星期|周|月|年)(?:以)?前|\blast\s+(?:{_WEEKDAY_EN}|week|month)\b"
    rf"|\b(?:\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|few|couple of)\s+"
    rf"(?:days?|weeks?|months?)\s+ago\b|\bsince\s+{_WEEKDAY_EN}\b",
    re.I,
)
# A day to come (「下个月搬家」, "next month"): when the shopper plans something, which no
# policy states; a circumstance, not a subject (a year to come is kept: validity periods).
_FUTURE_RE = re.compile(
    rf"下(?:个)?(?:{_WEEKDAY_ZH}|周|星期|礼拜|月)|\bnext\s+(?:{_WEEKDAY_EN}|week|month)\b"
    r"|\b(?:over|during|in)\s+the\s+(?:past|last)\s+(?:year|few\s+(?:months|years)"
    r"|[0-9]+\s+(?:months|years))\b",
    re.I,
)
# The day it is now, which the question counts to (「今天周五」, "today is Friday"): part of the
# same count once a past day is named.
_NOW_DAY_RE = re.compile(
    rf"(?:今天|今日|现在)?(?:是|已经|都)?{_WEEKDAY_ZH}|今天|今日"
    rf"|\b(?:today\s+is\s+|it\s+is\s+|now\s+)?{_WEEKDAY_EN}\b|\btoday\b",
    re.I,
)


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one inserted, dropped, replaced or swapped letter."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _misspelt(word: str) -> str | None:
    """The shop concept a misspelt word ("recieve", "warrenty") was meant to say."""
    if len(word) < 5:
        return None
    return next((c[0] for form, c in _EN_SINGLE.items() if _one_edit(word, form)), None)


def _concept_weight(concept: str) -> float:
    return max(CONCEPTS[c][0] if c in CONCEPTS else 0.5 for c in concept.split("|"))


def _terms(text: str, *, question: bool) -> dict[str, float]:
    """Weighted terms of ``text``: ``c:`` concepts, ``w:`` English words, ``z:`` Chinese pairs
    or single characters. A passage (``question=False``) keeps every character pair, so any
    pair of the question can be found in it."""
    text = _PLACEHOLDER_RE.sub(" ", text.lower())
    text = _PERCENT_OFF.sub(" percent off ", _NOT_VERY.sub("不", text))
    terms: dict[str, float] = {}

    def concept(name: str) -> None:
        # A question's ambiguous word is one term, answered by either meaning; a passage using
        # it states both.
        for part in [name] if question else name.split("|"):
            terms[f"c:{part}"] = _concept_weight(part)

    if question:
        text = _FUTURE_RE.sub(" ", text)
    if question and _ELAPSED_RE.search(text):
        concept("days")  # time passed since a day: a stated period answers it
        text = _NOW_DAY_RE.sub(" ", _ELAPSED_RE.sub(" ", text))
    for pattern, name in ((_CLOCK_RE, "clock"), (_DAYS_RE, "days"), (_AMOUNT_RE, "amount")):
        if pattern.search(text):
            concept(name)
            if not question and name != "amount":  # a time or duration answers "how long"
                concept("how_long")
            text = pattern.sub(" ", text)
    # Chinese: lexicon forms first, then (questions) fillers out, then character pairs.
    latin: list[str] = []
    last = 0
    for run in _CJK_RUN.finditer(text):
        latin.append(text[last : run.start()])
        last = run.end()
        chars = run.group().replace("的", "")  # 「下的单」 is 下单, 「退的钱」 退钱
        for m in _ZH_LEXICON.finditer(chars):
            for name in _ZH_FORMS[m.group()]:
                concept(name)
        if not question:
            for a, b in itertools.pairwise(chars):
                terms[f"z:{a}{b}"] = 0.5
            for c in chars:
                terms.setdefault(f"z:{c}", 0.25)
            continue
        rest = _ZH_FILLER_RE.sub(" ", _ZH_LEXICON.sub(" ", chars))
        for piece in rest.split():
            if len(piece) == 1:
                terms.setdefault(f"z:{piece}", 0.25)
            pair = 0.7 if len(piece) == 2 else 0.5
            for a, b in itertools.pairwise(piece):
                terms[f"z:{a}{b}"] = max(terms.get(f"z:{a}{b}", 0.0), pair)
    latin.append(text[last:])
    # English: stemmed words, the longest lexicon phrase first, stop words out. A phrase never
    # spans a sentence or clause break ("...the next day. Delivery takes..." is no "next day
    # delivery"): an empty word stands for the break.
    raw = [w for piece in _CLAUSE_BREAK.split(" ".join(latin))
           for w in [*_EN_WORD.findall(piece), ""]]
    words = [stem(w) for w in raw]
    for i, word in enumerate(raw):
        if word in _PARTICLE_VERBS and "back" in raw[i + 1 : i + 5]:
            concept("return")
            back = raw.index("back", i + 1)
            words[i] = words[back] = ""
    i = 0
    while i < len(words):
        for size in range(min(_EN_MAX_PHRASE, len(words) - i), 0, -1):
            hit = _EN_FORMS.get(tuple(words[i : i + size]))
            if hit is not None:
                for name in hit:
                    concept(name)
                i += size
                break
        else:
            word = words[i]
            typo = _misspelt(word) if question and word and raw[i] not in EN_STOP else None
            if typo is not None:
                concept(typo)
            elif word and raw[i] not in EN_STOP and word not in EN_STOP and not word.isdigit():
                generic = raw[i] in GENERIC_WORDS or word in _GENERIC_STEMS
                terms[f"w:{word}"] = 0.3 if generic else 1.0
            i += 1
    return terms


def _credit(term: str, weight: float, found: dict[str, float]) -> float:
    """What ``term`` of the question earns in a unit with terms ``found``: its weight when the
    unit says it, half when the unit states the broader rule (members for Gold members)."""
    if term in found:
        return weight
    if any(f"c:{c}" in found for c in IMPLIED.get(term[2:], ())):
        return weight
    if "|" in term:  # an ambiguous word: its usual sense answers it, another at 3/4
        usual, *others = term[2:].split("|")
        if f"c:{usual}" in found:
            return weight
        return 0.75 * weight if any(f"c:{c}" in found for c in others) else 0.0
    broader = BROADER.get(term[2:]) if term.startswith("c:") else None
    return weight / 2 if broader is not None and f"c:{broader}" in found else 0.0


def _in_context(q: dict[str, float], found: dict[str, float]) -> dict[str, float]:
    """``found`` with what the unit answers in the question's context: a kind of goods when the
    unit names no kind (its rule holds for all), the mail-in of a repair when both are about
    repairs."""
    extra: dict[str, float] = {}
    if not any(f"c:{k}" in found for k in KINDS):
        extra.update({f"c:{k}": 1.0 for k in AGNOSTIC_KINDS})
    for concept, implied in IMPLIED_WITHIN.items():
        if f"c:{concept}" in q and f"c:{concept}" in found:
            extra.update({f"c:{c}": 1.0 for c in implied})
    return {**found, **extra} if extra else found


def _saturated(terms: dict[str, float], cap: float) -> dict[str, float]:
    """``terms`` with the words outside the shop vocabulary weighing ``cap`` at most together:
    one or two unknown words (PayPal, 运费险) still decide a short question, but the
    circumstances a long message tells (「我上班急着用」, "I'm in Chengdu") do not outweigh
    its shop subject."""
    unknown = sum(w for k, w in terms.items() if not k.startswith("c:"))
    if unknown <= cap:
        return terms
    scale = cap / unknown
    return {k: w if k.startswith("c:") else w * scale for k, w in terms.items()}


def _asking(text: str) -> str:
    """The clauses of ``text`` that ask; the whole text when none reads as asking."""
    clauses = [c for c in _CLAUSE_RE.findall(text) if c.strip()]
    asking = [c for c in clauses if _ASKING_RE.search(c)]
    return " ".join(asking) if asking and len(asking) < len(clauses) else text


def _surface(text: str) -> set[str]:
    """The literal words of ``text``: stemmed English content words and Chinese pairs."""
    text = text.lower()
    words = {stem(w) for w in _EN_WORD.findall(text) if w not in EN_STOP and not w.isdigit()}
    for run in _CJK_RUN.findall(text):
        words.update(a + b for a, b in itertools.pairwise(run))
    return words - {stem(w) for w in EN_STOP}


@dataclass(slots=True)
class _Unit:
    """One answerable piece of a passage: what it is matched on and what it answers."""

    title: str  # the FAQ question or the section heading: what the unit is about
    answer: str
    rank: int
    language: str

    @property
    def match_text(self) -> str:
        return f"{self.title}\n{self.answer}"


def _units(passage: str, rank: int) -> list[_Unit]:
    faq = _FAQ_RE.match(passage)
    if faq:
        answer = faq.group("answer").strip()
        return [_Unit(faq.group("question").strip(), answer, rank, detect_language(answer))]
    units: list[_Unit] = []
    title = ""
    current: list[str] = []
    for line in [*passage.splitlines(), ""]:
        heading = line.lstrip().startswith("#") or _QUESTION_LINE.match(line)
        if current and (heading or not line.strip()):
            text = " ".join(current)
            units.append(_Unit(title, text, rank, detect_language(text)))
            current = []
        if heading:
            title = line.strip().lstrip("#").strip()
            title = title.split(">")[-1].strip() if ">" in title and "Q" not in title[:2] \
                else title
        elif line.strip():
            current.append(line.strip())
    return units


@dataclass(slots=True, frozen=True)
class Grounding:
    """The best answer unit for a question: ``share`` of the question's term weight it
    covers, the ``matched`` weight, its quoted ``answer``, and whether it grounds a reply."""

    grounded: bool
    share: float
    matched: float
    answer: str | None


@dataclass(slots=True)
class _Scored:
    """A unit as the words judge it for one question."""

    unit: _Unit
    grounded: bool  # the words ground an answer
    fit: float  # how well it answers, to rank units
    share: float  # of the question's term weight it covers
    matched: float  # the covered weight
    missing_topic: bool  # a shop topic of the question it never mentions
    missing_asked: bool  # a shop topic of the question's asking clauses it never mentions


@dataclass(slots=True)
class Judged:
    """Every unit of the passages as the words of ``question`` judge it."""

    question: str
    language: str
    terms: dict[str, float]
    units: list[_Scored]

    @property
    def any_grounded(self) -> bool:
        return any(s.grounded for s in self.units)


def _by_meaning(scored: list[_Scored], closeness: list[float],
                rule: MeaningRule) -> _Scored | None:
    """The unit closest in meaning when ``rule`` lets it ground an answer: close enough,
    clearly ahead of every other answer in its language (its translation in the other
    language is no rival), and the words allow it (enough of the question covered, no shop
    topic of the question missing); else ``None``."""
    best = max(range(len(scored)), key=lambda i: closeness[i])
    chosen = scored[best]
    runner_up = max((c for i, c in enumerate(closeness)
                     if scored[i].unit.answer != chosen.unit.answer
                     and scored[i].unit.language == chosen.unit.language), default=-1.0)
    ahead = closeness[best] - runner_up
    missing = chosen.missing_asked if ahead >= rule.story_margin else chosen.missing_topic
    if (chosen.share >= rule.share and not missing
            and closeness[best] >= rule.minimum
            and ahead >= rule.margin):
        return chosen
    return None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_RE.findall(text) if s.strip()]


class OfflineEngine:
    """Answers from ``call.passages`` only; never fails, never needs a key."""

    needs_key = False
    local = True
    supports_continuation = False

    def __init__(
        self,
        name: str = "offline",
        *,
        min_score: float = 0.6,
        min_matched: float = 1.0,
        max_sentences: int = 3,
        chunk_chars: int = 6,
        max_unknown: float = 1.5,
        cross_language_margin: float = 0.1,
        semantic: Similarity | None = None,
        semantic_min: float = 0.4,
        semantic_margin: float = 0.05,
        semantic_share: float = 0.5,
        semantic_story_margin: float = float("inf"),
    ) -> None:
        """``min_score``: the share of the question's term weight a unit must cover;
        ``min_matched``: the covered weight it must reach (more than generic shop words);
        ``max_sentences``: matching sentences quoted from a long paragraph (caveats added);
        ``max_unknown``: the most the question's words outside the shop vocabulary weigh
        together; ``cross_language_margin``: the share a unit in the other language must cover
        beyond ``min_score``; ``semantic``: a similarity in meaning (``OFFLINE_SEMANTIC``)
        that grounds a unit the words could not link, when it is at least ``semantic_min``,
        beats every other unit by ``semantic_margin``, covers ``semantic_share`` of the
        question's terms and names every shop topic it names (a topic only the message's
        story names is excused when it is ``semantic_story_margin`` ahead)."""
        self.name = name
        self.provider = "offline"
        self.model = "offline"
        self.min_score = min_score
        self.min_matched = min_matched
        self.max_sentences = max_sentences
        self.chunk_chars = chunk_chars
        self.max_unknown = max_unknown
        self.cross_language_margin = cross_language_margin
        self.semantic = semantic
        self.meaning_rule = MeaningRule(semantic_min, semantic_margin, semantic_share,
                                        semantic_story_margin)

    def grounding(self, question: str, passages: list[str]) -> Grounding:
        """The unit that best answers ``question``, and whether it grounds an answer."""
        judged = self.judge(question, passages)
        closeness = None
        if self.semantic is not None and judged.units and not judged.any_grounded:
            closeness = self.closeness(question, judged)
        return self.decide(judged, closeness, self.meaning_rule)

    def judge(self, question: str, passages: list[str]) -> Judged:
        """Every unit of ``passages`` scored by the words of ``question``."""
        q = _saturated(_terms(question, question=True), self.max_unknown)
        total = sum(q.values())
        language = detect_language(question)
        judged = Judged(question, language, q, [])
        if not total:
            return judged
        said = _surface(question)
        asked = _terms(_asking(question), question=True)
        for rank, passage in enumerate(passages):
            for unit in _units(passage, rank):
                found = _in_context(q, _terms(unit.match_text, question=False))
                credits = {k: _credit(k, w, found) for k, w in q.items()}
                matched = sum(credits.values())
                share = matched / total
                # What the unit is about should be what the question asks about: how well its
                # title and the question agree (F1 of their shared terms' weight), and how
                # much of the question its best single sentence (the title included) covers.
                title = _terms(unit.title, question=True)
                both = sum(w for k, w in q.items() if k in title)
                about = 2 * both / (total + sum(title.values()))
                # A shop topic the question names (weight 1: points, invoice, warranty...) that
                # the unit never mentions means the unit answers another question.
                missing_topic = any(
                    k.startswith("c:") and w >= 1.0 and not credits[k] for k, w in q.items()
                )
                missing_asked = missing_topic and any(
                    k.startswith("c:") and w >= 1.0 and not credits[k] and k in asked
                    for k, w in q.items()
                )
                # A unit in the other language is matched on concepts alone: it must cover
                # more, as its wording cannot confirm what the concepts leave open.
                bar = self.min_score + (self.cross_language_margin
                                        if unit.language != language else 0.0)
                grounded = share >= bar and matched >= self.min_matched and not missing_topic
                focus = max(self._covered(q, s) for s in [unit.title, *_sentences(unit.answer)])
                # The question's own words in the unit break ties between units that share its
                # concepts: "Hong Kong" in the unit that names it beats "mainland China".
                literal = len(said & _surface(unit.match_text)) / len(said) if said else 0.0
                fit = share + 0.5 * about + 0.2 * focus / total + 0.2 * literal
                judged.units.append(_Scored(unit, grounded, fit, share, matched, missing_topic,
                                            missing_asked))
        return judged

    def closeness(self, question: str, judged: Judged) -> list[float]:
        """How close in meaning each unit of ``judged`` is to ``question``: a FAQ entry by its
        own question or its whole text, whichever is closer."""
        assert self.semantic is not None
        units = [s.unit for s in judged.units]
        texts = [t for u in units for t in (u.title or u.match_text, u.match_text)]
        sims = self.semantic(question, texts)
        return [max(sims[2 * i], sims[2 * i + 1]) for i in range(len(units))]

    def decide(self, judged: Judged, closeness: list[float] | None,
               rule: MeaningRule) -> Grounding:
        """The answer ``judged`` gives: a unit the words ground; else, with ``closeness``, the
        unit ``rule`` lets the meaning ground; else a refusal with the best fit."""
        scored = judged.units
        if not scored:
            return Grounding(False, 0.0, 0.0, None)
        if closeness is not None and not judged.any_grounded:
            chosen = _by_meaning(scored, closeness, rule)
            if chosen is not None:
                return Grounding(True, chosen.share, chosen.matched,
                                 self._quote(chosen.unit, judged.terms))
        # A grounded unit in the visitor's language first; then the best fit, then the better
        # retrieval rank.
        best = max(scored, key=lambda s: (
            s.grounded,
            s.fit + (_SAME_LANGUAGE if s.unit.language == judged.language else 0.0),
            -s.unit.rank,
        ))
        return Grounding(best.grounded, best.share, best.matched,
                         self._quote(best.unit, judged.terms))

    @staticmethod
    def _covered(q: dict[str, float], text: str) -> float:
        found = _terms(text, question=False)
        return sum(w for k, w in q.items() if k in found)

    def _quote(self, unit: _Unit, q: dict[str, float]) -> str:
        if len(unit.answer) <= _LONG_PARAGRAPH:
            return unit.answer
        sentences = _sentences(unit.answer)
        scored = [(self._covered(q, sentence), i) for i, sentence in enumerate(sentences)]
        top = sorted(scored, reverse=True)[: self.max_sentences]
        keep = {i for score, i in top if score > 0 and score >= top[0][0] * 0.5}
        keep |= {i for i, s in enumerate(sentences) if _CAVEAT_RE.search(s)}
        sep = "" if unit.language == "zh" else " "
        return sep.join(sentences[i] for i in sorted(keep)) or unit.answer

    def answer(self, call: EngineCall) -> tuple[str, EngineOutcome]:
        """The reply to ``call`` and how it ended: ``answered`` is false for a refusal."""
        question = next(
            (m["content"] for m in reversed(call.messages) if m.get("role") == "user"), ""
        )
        language = call.language or detect_language(question)
        language = "zh" if language.lower().startswith("zh") else "en"
        # The passages a model would be shown, then the further search results: each is
        # grounded here, so a wider pool costs no precision.
        found = self.grounding(question, [*call.passages, *call.more_passages])
        if not found.grounded or found.answer is None:
            return NO_ANSWER[language], _REFUSED
        return PREFIX[language] + found.answer, _ANSWERED

    async def stream(
        self, call: EngineCall, *, key: ApiKey | None = None
    ) -> AsyncIterator[str | EngineOutcome]:
        if self.semantic is None:
            text, outcome = self.answer(call)
        else:  # the model's inference (and its loading, once) off the event loop
            text, outcome = await asyncio.to_thread(self.answer, call)
        step = self.chunk_chars
        for i in range(0, len(text), step):
            yield text[i : i + step]
        yield outcome

    async def aclose(self) -> None:
        return None
