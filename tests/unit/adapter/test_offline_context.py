"""The offline engine reads a question's terms in its context: the mail-in of a repair, a
kind of goods under a rule for all goods, a topic only the message's story names."""

from __future__ import annotations

from collections.abc import Sequence

from kefu_llm import EngineCall, OfflineEngine, detect_language
from kefu_llm._offline import _in_context, _terms
from kefu_llm._offline_semantic import Similarity

CLAIM_EN = (
    "# 保修政策 Warranty > Claiming the warranty\n"
    "Contact support with your order number and photos of the fault. We send a prepaid repair"
    " label; repairs take about 7 working days."
)
CLAIM_ZH = (
    "# 保修政策 Warranty > 如何申请保修\n"
    "联系在线客服并提供订单号和故障照片，客服确认后会发送免费寄修地址，维修周期约为7个工作日。"
)
WARRANTY_EN = (
    "# 保修政策 Warranty > Warranty period\n"
    "Electronics carry a one-year free warranty from the day of delivery; batteries and "
    "chargers six months. Physical damage, water damage and unauthorised repairs are not covered."
)
RETURN_EN = (
    "Q: How do I return an item?\n"
    "A: You can return any item within 7 days of delivery. Open My Orders, choose Request"
    " return, give a reason and wait for approval; then ship the item back as shown."
)
RETURN_ZH = (
    "Q: 怎么退货？\n"
    "A: 自签收之日起7天内可无理由退货。请在“我的订单”中点击“申请退货”，填写原因后等待审核，"
    "审核通过后按页面提示寄回商品。"
)
COUPONS_EN = (
    "# 会员与优惠券 Membership and coupons > Coupons\n"
    "Coupons are listed under My Coupons. One coupon per order; coupons do not stack with"
    " member discounts."
)
INVOICE_ZH = ("Q: 可以开发票吗？\n"
              "A: 可以。下单时选择“开具发票”，电子发票会在发货后24小时内发送到您的邮箱。")


def ask(question: str, passages: list[str], engine: OfflineEngine | None = None) -> str | None:
    """The answer quoted, or ``None`` for a refusal."""
    call = EngineCall(messages=[{"role": "user", "content": question}], passages=passages,
                      language=detect_language(question))
    text, outcome = (engine or OfflineEngine()).answer(call)
    return text if outcome.answered else None


def test_the_mail_in_of_a_repair_is_answered_by_the_repair_unit() -> None:
    # GIVEN questions about a repair that also say the item is sent in and comes back
    english = "sent my phone in for warranty repair, roughly how long does the repair take?"
    chinese = "送修的话一般多久能修好寄回来？"
    # WHEN the engine judges them against the warranty claim and the shipping units
    en = ask(english, [CLAIM_EN, WARRANTY_EN, RETURN_EN])
    zh = ask(chinese, [CLAIM_ZH, RETURN_ZH])
    # THEN the sending and getting back are the repair's, and its period is quoted
    assert en is not None and "about 7 working days" in en
    assert zh is not None and "7个工作日" in zh


def test_sending_an_item_back_without_a_repair_is_no_repair_question() -> None:
    # GIVEN a return question that names no repair
    question = "how do I send my headphones back and get my money?"
    # WHEN the only passage is the repair claim
    # THEN the repair unit does not answer it
    assert ask(question, [CLAIM_EN]) is None


def test_a_rule_for_every_item_answers_a_question_naming_a_kind_of_goods() -> None:
    # GIVEN a return question naming headphones, which the return policy (for any item) never
    # names
    question = ("hi, got my headphones on monday and honestly dont like them. how many days do"
                " i have to send them back?")
    # WHEN the engine judges it against the return policy
    answer = ask(question, [RETURN_EN, CLAIM_EN])
    # THEN the policy answers it
    assert answer is not None and "within 7 days of delivery" in answer


def test_a_unit_naming_other_kinds_of_goods_does_not_answer_for_this_kind() -> None:
    # GIVEN a question naming headphones, a unit stating a rule for batteries and one naming
    # no kind of goods
    question = _terms("do my headphones still have warranty?", question=True)
    batteries = _terms("Batteries and chargers carry six months of warranty.", question=False)
    any_item = _terms("Contact support with photos of the fault.", question=False)
    # WHEN each unit's terms are read in the question's context
    # THEN only the unit naming no kind answers for the headphones
    assert "c:electronics" not in _in_context(question, batteries)
    assert "c:electronics" in _in_context(question, any_item)


def test_a_price_difference_is_no_return() -> None:
    # GIVEN a question asking to refund a price drop (「退差价」), with the return policy
    question = "上周刚买的吹风机今天就降价了50，能退差价吗？"
    # WHEN the engine judges it
    # THEN it refuses: price protection is a topic the return policy never names
    assert ask(question, [RETURN_ZH]) is None


def meaning(scores: dict[str, float]) -> Similarity:
    def similarity(question: str, texts: Sequence[str]) -> list[float]:
        return [next((v for k, v in scores.items() if k in t), 0.0) for t in texts]

    return similarity


PROMO = "got 2 coupons from the promo email, can i use both on one order? thx"


def test_a_topic_only_the_story_names_is_excused_when_the_unit_is_far_ahead() -> None:
    # GIVEN a question whose story names an email, which the coupon unit never mentions
    passages = [COUPONS_EN, RETURN_EN, INVOICE_ZH]

    def engine(story_margin: float) -> OfflineEngine:
        return OfflineEngine(semantic=meaning({"Coupons": 0.9, "return": 0.85, "发票": 0.8}),
                             semantic_min=0.8, semantic_margin=0.01, semantic_share=0.5,
                             semantic_story_margin=story_margin)

    # WHEN the coupon unit is 0.05 ahead in meaning, with the story's topics excused at that
    # margin, and with them never excused
    excused = ask(PROMO, passages, engine(0.04))
    strict = ask(PROMO, passages, engine(float("inf")))
    # THEN the coupon rule is quoted only when the story's topic is excused
    assert excused is not None and "One coupon per order" in excused
    assert strict is None


def test_a_topic_the_asking_clause_names_is_never_excused() -> None:
    # GIVEN a question that asks about the email itself
    question = "can i get the coupons by email instead, and use both on one order?"
    engine = OfflineEngine(semantic=meaning({"Coupons": 0.9, "return": 0.8}),
                           semantic_min=0.8, semantic_margin=0.01, semantic_share=0.5,
                           semantic_story_margin=0.0)
    # WHEN the coupon unit is far ahead in meaning
    # THEN the missing topic of the asking clause still refuses
    assert ask(question, [COUPONS_EN, RETURN_EN], engine) is None
