"""bench.offline_answers -v: the gate that refused each question."""

from __future__ import annotations

from bench.offline_diagnosis import refusal_gates
from kefu_llm import OfflineEngine
from kefu_llm._offline_semantic import MeaningRule

REFUND = ("Q: When will I get my refund?\n"
          "A: Refunds go back to the original payment method within 3 business days.")
RULE = MeaningRule(minimum=0.8, margin=0.01, share=0.5)


def row(question: str, key: list[str]) -> dict[str, object]:
    return {"id": "x", "question": question, "answer_key": key, "expected": "faq.csv"}


def test_a_refusal_names_the_words_gate_and_a_missing_retrieval() -> None:
    # GIVEN a question the refund FAQ answers but whose words it barely shares, and one whose
    # answer no retrieved passage holds
    engine = OfflineEngine()
    vague = row("my money from last week, nothing yet. is that normal for a credit card?",
                ["3 business days"])
    absent = row("how long does shipping take?", ["1-3 days"])
    # WHEN the gates are named
    words = refusal_gates(engine, vague, [REFUND], RULE)
    search = refusal_gates(engine, absent, [REFUND], RULE)
    # THEN the first names the words' share, the second the retrieval
    assert words.startswith("words: words share")
    assert search.startswith("retrieval:")


def test_a_refusal_names_the_meaning_gate() -> None:
    # GIVEN the same question and a similarity that finds the refund FAQ close but not enough
    engine = OfflineEngine(semantic=lambda q, texts: [0.7 for _ in texts])
    vague = row("my money from last week, nothing yet. is that normal for a credit card?",
                ["3 business days"])
    # WHEN the gates are named
    line = refusal_gates(engine, vague, [REFUND], RULE)
    # THEN the meaning's closeness is named
    assert "| meaning: closeness 0.700 < 0.8" in line
