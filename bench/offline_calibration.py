"""Cross-validated calibration of the offline engine's match in meaning (``MeaningRule``).

The rule's three thresholds (closeness, margin, the share of the question its words still
cover) are chosen on every part of the labelled questions but one and measured on the part
left out, each part in turn: the pooled figure over the left-out parts is the honest estimate
of how the engine does on questions it was not tuned on (the rule chosen on all parts is what
the product ships, ``E5Similarity.rule`` / ``USESimilarity.rule``). The words' judgement and
the similarities are computed once per question; each rule only re-decides.

    .venv/bin/python -m bench.offline_answers --cross-validate [--questions FILE]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

from kefu_llm import OfflineEngine
from kefu_llm._offline import Judged
from kefu_llm._offline_semantic import E5Similarity, MeaningRule, Similarity

# Unanswerable questions answered weigh four right answers; a wrong answer to an answerable
# question ten: the goals are no wrong answer and 90% of unanswerable questions refused.
_ANSWERED_UNANSWERABLE = 4.0
_WRONG = 10.0
# The share of unanswerable questions a rule must refuse on the parts it is chosen on: above
# the 90% goal, so that unseen questions keep a margin.
MIN_REFUSED = 0.95


@dataclass
class Score:
    answerable: int = 0
    right: int = 0
    wrong: int = 0
    unanswerable: int = 0
    refused: int = 0

    def __iadd__(self, other: Score) -> Score:
        for name in ("answerable", "right", "wrong", "unanswerable", "refused"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def merit(self) -> float:
        return (self.right - _ANSWERED_UNANSWERABLE * (self.unanswerable - self.refused)
                - _WRONG * self.wrong)

    def line(self) -> str:
        right = 100 * self.right / self.answerable if self.answerable else 0.0
        refused = 100 * self.refused / self.unanswerable if self.unanswerable else 0.0
        return f"right {right:5.1f}%  refused {refused:5.1f}%  wrong {self.wrong}"


def grid(similarity: Similarity) -> list[MeaningRule]:
    """The rules tried: e5's cosines bunch near 0.9, USE's spread from 0 to 0.8."""
    if isinstance(similarity, E5Similarity):
        minimums = [round(0.80 + 0.01 * i, 2) for i in range(11)]
        margins = [0.0, 0.005, 0.01, 0.02]
    else:
        minimums = [round(0.3 + 0.05 * i, 2) for i in range(6)]
        margins = [0.0, 0.025, 0.05, 0.1]
    # Below the words' own bar (``min_score`` 0.6): a rule that asks as much of the words
    # only repeats their judgement, and scored alone it would look best for that.
    shares = [0.2, 0.3, 0.4, 0.5]
    # A topic named only in the message's story excused never, or when the unit is this far
    # ahead of every other.
    story = [float("inf"), 0.02, 0.03, 0.04]
    return [MeaningRule(*r) for r in itertools.product(minimums, margins, shares, story)]


def _strictness(rule: MeaningRule) -> tuple[float, ...]:
    return (rule.minimum, rule.margin, rule.share, rule.story_margin)


class Calibration:
    """The words' judgement and closeness of each question, decided under any rule."""

    def __init__(self, rows: list[dict[str, Any]], passages: list[list[str]],
                 similarity: Similarity) -> None:
        self.rows = rows
        self.engine = OfflineEngine(semantic=similarity)
        self.judged: list[Judged] = []
        self.alone: list[Judged] = []  # the same, as if the words grounded no unit
        self.closeness: list[list[float] | None] = []
        for row, found in zip(rows, passages, strict=True):
            judged = self.engine.judge(row["question"], found)
            self.judged.append(judged)
            self.alone.append(replace(judged, units=[replace(s, grounded=False)
                                                     for s in judged.units]))
            self.closeness.append(self.engine.closeness(row["question"], judged)
                                  if judged.units else None)
        self._cache: dict[tuple[MeaningRule | None, str, bool], Score] = {}

    def score(self, rule: MeaningRule | None, part: str | None = None,
              *, exclude: str | None = None, alone: bool = False) -> Score:
        """Right / refused / wrong under ``rule`` (``None``: words only) on ``part`` (every
        part but ``exclude``); ``alone``: the rule decides every question, as if the words
        had grounded none (what it does on the questions the words cannot read)."""
        total = Score()
        for name in self.parts():
            if (part is not None and name != part) or name == exclude:
                continue
            key = (rule, name, alone)
            if key not in self._cache:
                self._cache[key] = self._score_part(rule, name, alone)
            total += self._cache[key]
        return total

    def _score_part(self, rule: MeaningRule | None, part: str, alone: bool) -> Score:
        score = Score()
        judgements = self.alone if alone else self.judged
        for row, judged, closeness in zip(self.rows, judgements, self.closeness, strict=True):
            if row["split"] != part:
                continue
            found = self.engine.decide(judged, closeness if rule else None,
                                       rule or self.engine.meaning_rule)
            answered = found.grounded and found.answer is not None
            if row["expected"] == "unanswerable":
                score.unanswerable += 1
                score.refused += not answered
                continue
            score.answerable += 1
            if answered:
                right = all(k in (found.answer or "") for k in row["answer_key"])
                score.right += right
                score.wrong += not right
        return score

    def parts(self) -> list[str]:
        return sorted({row["split"] for row in self.rows})

    def best(self, rules: list[MeaningRule], *, exclude: str | None = None) -> MeaningRule:
        """The rule that answers most on every part but ``exclude`` (a wrong answer costing
        ten) while refusing at least ``MIN_REFUSED`` of the unanswerable questions, judged
        as if the rule decided every question alone (the words were tuned on those parts and
        ground nearly all of their answerable questions, which would leave the rule almost
        nothing to learn from: the unanswerable ones reach it either way), then in the
        engine; the strictest on a tie."""
        def merit(rule: MeaningRule) -> tuple[bool, float, float, tuple[float, ...]]:
            alone = self.score(rule, exclude=exclude, alone=True)
            engine = self.score(rule, exclude=exclude)
            refused = min(s.refused / s.unanswerable if s.unanswerable else 1.0
                          for s in (alone, engine))
            return (refused >= MIN_REFUSED and engine.wrong == 0,
                    alone.right - _WRONG * alone.wrong, engine.merit, _strictness(rule))

        return max(rules, key=merit)


def _name(rule: MeaningRule) -> str:
    return f"{rule.minimum:.2f}/{rule.margin:.3f}/{rule.share:.1f}/story {rule.story_margin}"


def cross_validate(rows: list[dict[str, Any]], passages: list[list[str]],
                   similarity: Similarity) -> None:
    """Print the leave-one-part-out figures of the match in meaning, and of words only."""
    calibration = Calibration(rows, passages, similarity)
    rules = grid(similarity)
    model = type(similarity).__name__
    print(f"  cross-validation of the match in meaning ({model}, {len(rules)} rules,"
          " leave one part out)")
    pooled, words = Score(), Score()
    for part in calibration.parts():
        rule = calibration.best(rules, exclude=part)
        held = calibration.score(rule, part)
        alone = calibration.score(None, part)
        pooled += held
        words += alone
        print(f"    {part:10} rule {_name(rule)}"
              f"  held out: {held.line()}   words only: {alone.line()}")
    print(f"    CROSS-VALIDATED (each part scored by a rule chosen without it): {pooled.line()}")
    print(f"    words only, same parts:                                     {words.line()}")
    final = calibration.best(rules)
    alone = calibration.score(final, alone=True)
    print(f"    that rule alone, deciding every question: {alone.line()}")
    print(f"    rule chosen on all parts: {_name(final)}"
          f" -> {calibration.score(final).line()} (tuned on all)")
