"""Rule-based and LLM fact extraction (no network; the model is an injected coroutine)."""

from __future__ import annotations

import pytest

from kefu_memory import ExtractionError, LlmExtractor, RuleBasedExtractor, Turn


async def extract(*turns: Turn) -> dict[str, tuple[str, dict[str, object], int | None]]:
    facts = await RuleBasedExtractor().extract(list(turns))
    return {f.key: (f.value, f.attributes, f.message_seq) for f in facts}


async def test_chinese_order_complaint_and_company_promises() -> None:
    # GIVEN a complaint about an order (full-width digits) and the company's answer
    facts = await extract(
        Turn(role="user", content="我的订单号是２０２４１１２０８８８，还没收到货，太差了！",
             seq=1),
        Turn(role="assistant", content="非常抱歉，我们会为您办理退款 50 元，并送您一张20元优惠券。"
             "客服会在24小时内联系您。", seq=2),
    )
    # THEN the order, the complaint and three promises tied to the order are found
    assert facts["order:20241120888"][2] == 1
    complaint = next(v for k, v in facts.items() if k.startswith("complaint:"))
    assert complaint[1]["order_id"] == "20241120888"
    assert facts["promise:refund:20241120888"][1]["amount"] == "50"
    assert facts["promise:coupon:20241120888"][1]["amount"] == "20"
    assert facts["promise:callback:20241120888"][2] == 2


async def test_chinese_address_phone_and_preference() -> None:
    # GIVEN a customer giving contact details and a preference
    facts = await extract(
        Turn(role="user", content="收货地址改成上海市浦东新区世纪大道100号。"
             "我的手机号 138-1234-5678。以后请用顺丰发货。", seq=3)
    )
    # THEN each is one fact with a stable key
    assert facts["address:shipping"][0] == "上海市浦东新区世纪大道100号"
    assert facts["phone"][0] == "13812345678"
    assert any(k.startswith("preference:") and "顺丰" in v[0] for k, v in facts.items())


async def test_english_facts() -> None:
    # GIVEN an English exchange
    facts = await extract(
        Turn(role="user", content="My order #A10023 arrived damaged. Please ship the replacement "
             "to 221B Baker Street, London. I prefer email. My phone number is +1 415 555 0134.",
             seq=4),
        Turn(role="agent", content="We'll refund the $35 shipping fee and I will call you back "
             "tomorrow. I've added a $10 coupon to your account.", seq=5),
    )
    # THEN order, complaint, address, phone, preference and three promises are found
    assert "order:A10023" in facts
    assert facts["address:shipping"][0] == "221B Baker Street, London"
    assert facts["phone"][0] == "+14155550134"
    assert any(k.startswith("complaint:") for k in facts)
    assert any(k.startswith("preference:") for k in facts)
    assert facts["promise:refund:A10023"][1]["amount"] == "35"
    assert facts["promise:coupon:A10023"][1]["amount"] == "10"
    assert "promise:callback:A10023" in facts


async def test_small_talk_yields_nothing_and_customers_cannot_make_promises() -> None:
    # GIVEN chit-chat and a customer asking for a refund (not a company promise)
    facts = await extract(
        Turn(role="user", content="你好，在吗？", seq=1),
        Turn(role="assistant", content="您好，请问有什么可以帮您？", seq=2),
        Turn(role="user", content="I want a refund.", seq=3),
    )
    # THEN nothing is remembered
    assert facts == {}


async def test_llm_extractor_validates_the_model_output() -> None:
    # GIVEN a model answering with facts, one without a key and one with an unknown seq
    async def complete(prompt: str) -> str:
        return ('Here you go: [{"kind": "complaint", "value": "Parcel arrived late", '
                '"message_seq": 2}, {"kind": "phone", "key": "phone", "value": "13800138000", '
                '"message_seq": 99}]')

    turns = [Turn(role="user", content="late parcel", seq=2)]
    facts = await LlmExtractor(complete).extract(turns)
    # THEN keys are filled in and unknown seqs point at the exchange's last message
    assert facts[0].key.startswith("complaint:h")
    assert facts[1].message_seq == 2


@pytest.mark.parametrize(
    "answer", ["no json here", '{"kind": "phone"}', '[{"kind": "mood", "key": "x", "value": "y"}]']
)
async def test_llm_extractor_rejects_bad_output(answer: str) -> None:
    # GIVEN a model answering something unusable / THEN an ExtractionError
    async def complete(prompt: str) -> str:
        return answer

    with pytest.raises(ExtractionError):
        await LlmExtractor(complete).extract([Turn(role="user", content="hi", seq=1)])


@pytest.mark.parametrize(
    "answer",
    [
        "抱歉，这个订单我们不会退款。",
        "定制商品无法退款。",
        "We will not refund opened items.",
        "Sorry, we can't send a coupon for this order.",
    ],
)
async def test_negated_promises_are_not_promises(answer: str) -> None:
    # GIVEN the company declining / WHEN extracted / THEN no promise is remembered
    facts = await extract(Turn(role="assistant", content=answer, seq=1))
    assert not any(k.startswith("promise:") for k in facts)
