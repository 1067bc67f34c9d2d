"""The lexical and numeric grounding check (kefu_core.answers.grounding), sentence by
sentence, on the demo knowledge base's wording."""

from __future__ import annotations

import pytest

from kefu_core.answers.grounding import check_reply, sentences

SHIPPING = "订单满99元包邮；不满99元收取8元运费。偏远地区（新疆、西藏）运费另计。"
WARRANTY = ("所有电子产品自签收之日起享受一年免费保修；电池类配件保修六个月。"
            "人为损坏、进水和私自拆机不在保修范围内。")
REFUND = "退款在仓库收到退货并验收后3个工作日内原路退回；信用卡退款可能需要额外1-2个银行工作日。"
COUPONS = "Coupons are listed under My Coupons. One coupon per order; coupons do not stack " \
          "with member discounts."
GOLD = "满5000元成为金卡会员，享受9折和专属客服。"


def _reasons(reply: str, *sources: str) -> list[str | None]:
    return [s.reason for s in check_reply(reply, sources).sentences]


def test_sentences_keep_their_offsets_and_list_numbers() -> None:
    # GIVEN a reply with a Chinese sentence and a numbered list
    text = "请按以下步骤操作。\n1. 打开我的订单\n2. 点击申请退货"
    # WHEN it is cut into sentences
    spans = sentences(text)
    # THEN each span is one sentence, the list items whole (their numbers with them)
    assert [text[a:b].strip() for a, b in spans] == ["请按以下步骤操作。", "1. 打开我的订单",
                                                     "2. 点击申请退货"]


@pytest.mark.parametrize("reply", [
    "订单满99元包邮，不满99元收8元运费。",
    "所有电子产品享受1年免费保修，电池类配件保修6个月。",
    "金卡会员享受10%的折扣。",  # 9折, said as a percentage
])
def test_a_faithful_sentence_is_supported(reply: str) -> None:
    # GIVEN sources that say it (in other digits or words) WHEN checked THEN nothing is flagged
    assert _reasons(reply, SHIPPING, WARRANTY, GOLD) == [None]


@pytest.mark.parametrize(("reply", "reason"), [
    ("订单满59元包邮。", "number"),
    ("电子产品保修两年。", "number"),  # the 2 of "1-2个银行工作日" is about something else
    ("进水损坏也在保修范围内。", "negation"),
    ("Coupons stack with member discounts.", "negation"),
    ("我们提供免费上门取件服务。", "unmatched"),
])
def test_an_unsupported_sentence_is_flagged_with_why(reply: str, reason: str) -> None:
    # GIVEN sources that contradict or do not contain the claim
    # WHEN checked THEN the sentence is flagged with the reason
    assert _reasons(reply, SHIPPING, WARRANTY, REFUND, COUPONS) == [reason]


def test_courtesy_and_questions_are_not_checked() -> None:
    # GIVEN a reply that greets, states a fact and asks back
    result = check_reply("您好！订单满99元包邮。还有什么可以帮您？", [SHIPPING])
    # WHEN checked THEN only the fact was checked, and it is supported
    assert [s.checked for s in result.sentences] == [False, True, False]
    assert result.grounded


def test_the_visitors_own_number_is_a_source() -> None:
    # GIVEN a visitor who gave an order number
    question = "我的订单号是A20240917，什么时候发货？"
    # WHEN the reply repeats it THEN it is not an invention
    assert _reasons("您的订单A20240917会在今天16:00前发货。", question,
                    "工作日16:00前付款的订单当天发货。") == [None]


def test_no_source_leaves_every_claim_unsupported() -> None:
    # GIVEN no passage at all WHEN a reply states a price THEN it is unsupported
    assert _reasons("运费是8元。") == ["number"]
