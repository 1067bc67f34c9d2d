"""Cross-validated calibration of the offline engine's match in meaning."""

from __future__ import annotations

from collections.abc import Sequence

from bench.offline_calibration import Calibration
from kefu_llm._offline_semantic import MeaningRule

REFUND = ("Q: When will I get my refund?\n"
          "A: Refunds go back to the original payment method within 3 business days.")
SHIPPING = ("Q: How long does shipping take?\n"
            "A: Orders paid before 16:00 ship the same day; delivery takes 1-3 days.")
PASSAGES = [REFUND, SHIPPING]


def similarity(question: str, texts: Sequence[str]) -> list[float]:
    """A stand-in for the model: questions about money are close to the refund FAQ."""
    money = "money" in question or "cash" in question
    return [0.9 if money and "refund" in t.lower() else 0.1 for t in texts]


def row(split: str, question: str, expected: str, key: list[str]) -> dict[str, object]:
    return {"id": question, "split": split, "language": "en", "question": question,
            "expected": expected, "answer_key": key}


ROWS = [
    row("a", "my money went back 3 working days ago, is that normal for the money?",
        "faq.csv", ["3 business days"]),
    row("b", "when will I see my money back after my return?", "faq.csv", ["3 business days"]),
    row("b", "can I pay cash on delivery?", "unanswerable", []),
]


def test_a_rule_is_scored_on_a_part_with_the_words_judged_once() -> None:
    # GIVEN labelled questions in two parts and a similarity
    calibration = Calibration(ROWS, [PASSAGES] * len(ROWS), similarity)
    # WHEN a rule is scored on each part, with the words alone and with the meaning
    loose = MeaningRule(minimum=0.5, margin=0.1, share=0.0)
    strict = MeaningRule(minimum=0.95, margin=0.1, share=0.0)
    # THEN the parts are counted apart
    assert calibration.parts() == ["a", "b"]
    assert calibration.score(None, "b").unanswerable == 1
    assert calibration.score(None).answerable == 2
    # AND the question the words cannot ground is answered only under the rule its
    # closeness reaches
    assert calibration.score(None, "a").right == 0
    assert calibration.score(strict, "a").right == 0
    assert calibration.score(loose, "a").right == 1


def test_the_best_rule_refuses_enough_before_it_answers_more() -> None:
    # GIVEN two rules, one of which would answer the unanswerable question
    calibration = Calibration(ROWS, [PASSAGES] * len(ROWS), similarity)
    careful = MeaningRule(minimum=0.5, margin=0.1, share=0.3)
    reckless = MeaningRule(minimum=0.5, margin=0.1, share=0.0)
    # WHEN the best rule is chosen without part "a"
    chosen = calibration.best([careful, reckless], exclude="a")
    # THEN a rule that refuses the unanswerable question is chosen
    assert calibration.score(chosen, "b", alone=True).refused == 1


def test_the_best_rule_must_also_refuse_enough_in_the_engine() -> None:
    # GIVEN twenty unanswerable questions: eighteen nothing matches, one the words ground (so
    # the engine answers it whatever the rule) and one only a loose rule answers by meaning;
    # and an answerable one only the loose rule answers
    rows = [row("a", "do you have a store in Shanghai?", "unanswerable", []) for _ in range(18)]
    rows += [row("a", "When will I get my refund?", "unanswerable", []),
             row("a", "my money, nothing yet. is that normal?", "unanswerable", []),
             ROWS[0]]
    calibration = Calibration(rows, [PASSAGES] * len(rows), similarity)
    loose = MeaningRule(minimum=0.5, margin=0.1, share=0.0)
    strict = MeaningRule(minimum=0.95, margin=0.1, share=0.0)
    # WHEN the loose rule refuses 95% deciding alone but only 90% in the engine
    assert calibration.score(loose, alone=True).refused == 19
    assert calibration.score(loose).refused == 18
    # THEN the strict rule is chosen, although the loose one answers more
    assert calibration.best([loose, strict]) == strict
