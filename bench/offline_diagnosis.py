"""Which gate of the offline engine refused a question (``bench.offline_answers -v``).

For each refused answerable question: whether the search found the unit that answers it
(``retrieval``), and if so why neither the words nor the meaning let that unit answer:
``words share`` (it covers too little of the question's term weight), ``words weight`` (too
little weight covered), ``topic`` (a shop topic of the question it never mentions); for the
meaning, ``closest is another unit`` (another unit is closer in meaning), ``closeness`` (below
the rule's minimum), ``margin`` (another unit in its language is nearly as close), ``meaning
share`` (the words cover less than the rule's share). For an unanswerable question answered,
which path answered it (``words`` or ``meaning``).
"""

from __future__ import annotations

from typing import Any

from kefu_llm import OfflineEngine
from kefu_llm._offline import Judged
from kefu_llm._offline_semantic import MeaningRule


def _answers(row: dict[str, Any], answer: str) -> bool:
    return all(key in answer for key in row["answer_key"])


def refusal_gates(engine: OfflineEngine, row: dict[str, Any], passages: list[str],
                  rule: MeaningRule) -> str:
    """One line naming the gates that kept the right unit from answering ``row``."""
    judged: Judged = engine.judge(row["question"], passages)
    if not judged.units:
        return "retrieval: no unit"
    right = [i for i, s in enumerate(judged.units) if _answers(row, s.unit.answer)]
    if not right:
        return "retrieval: no retrieved unit holds the answer"
    i = max(right, key=lambda j: judged.units[j].share)
    s = judged.units[i]
    bar = engine.min_score + (engine.cross_language_margin
                              if s.unit.language != judged.language else 0.0)
    words = []
    if s.share < bar:
        words.append(f"words share {s.share:.2f} < {bar:.2f}")
    if s.matched < engine.min_matched:
        words.append(f"words weight {s.matched:.2f} < {engine.min_matched:.2f}")
    if s.missing_topic:
        missing = [k for k, w in judged.terms.items()
                   if k.startswith("c:") and w >= 1.0 and not _credited(k, w, s)]
        words.append(f"topic missing {','.join(missing) or '?'}")
    line = "words: " + ("; ".join(words) or "grounded") + f" [unit {s.unit.title[:30]!r}]"
    if engine.semantic is None:
        return line
    if judged.any_grounded:
        return line + " | another unit grounded by the words"
    closeness = engine.closeness(row["question"], judged)
    best = max(range(len(closeness)), key=lambda j: closeness[j])
    meaning = []
    if not _answers(row, judged.units[best].unit.answer):
        meaning.append(f"closest is another unit {judged.units[best].unit.title[:30]!r}"
                       f" {closeness[best]:.3f} vs {max(closeness[j] for j in right):.3f}")
    else:
        chosen = judged.units[best]
        runner = max((c for j, c in enumerate(closeness)
                      if judged.units[j].unit.answer != chosen.unit.answer
                      and judged.units[j].unit.language == chosen.unit.language), default=-1.0)
        if closeness[best] < rule.minimum:
            meaning.append(f"closeness {closeness[best]:.3f} < {rule.minimum}")
        if closeness[best] - runner < rule.margin:
            meaning.append(f"margin {closeness[best] - runner:.3f} < {rule.margin}")
        if chosen.share < rule.share:
            meaning.append(f"meaning share {chosen.share:.2f} < {rule.share}")
        story = closeness[best] - runner >= rule.story_margin
        if chosen.missing_asked if story else chosen.missing_topic:
            meaning.append("topic")
    return line + " | meaning: " + ("; ".join(meaning) or "passes")


def _credited(term: str, weight: float, scored: Any) -> bool:
    from kefu_llm._offline import _credit, _terms

    found = _terms(scored.unit.match_text, question=False)
    return _credit(term, weight, found) > 0


def answer_path(engine: OfflineEngine, row: dict[str, Any], passages: list[str]) -> str:
    """Which path answered ``row``: the words (with the unit), or the meaning."""
    judged = engine.judge(row["question"], passages)
    grounded = [s for s in judged.units if s.grounded]
    if grounded:
        best = max(grounded, key=lambda s: s.fit)
        return f"words: share {best.share:.2f} [unit {best.unit.title[:30]!r}]"
    return "meaning"


def diagnose(engine: OfflineEngine, rows: list[dict[str, Any]], passages: list[list[str]],
             answered: list[bool]) -> list[str]:
    """A line for every refused answerable and every answered unanswerable question."""
    rule = engine.meaning_rule
    lines = []
    for row, found, said in zip(rows, passages, answered, strict=True):
        if row["expected"] == "unanswerable" and said:
            lines.append(f"  [{row['id']}] answered by {answer_path(engine, row, found)}")
        elif row["expected"] != "unanswerable" and not said:
            lines.append(f"  [{row['id']}] refused by {refusal_gates(engine, row, found, rule)}")
    return lines
