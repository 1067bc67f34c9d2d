"""PII recognisers, placeholders and streamed restoration."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kefu_llm import RedactionError, Redactor, find_pii, redact_text
from kefu_llm._pii import Restorer, luhn_ok, normalize, resident_id_ok


def kinds(text: str) -> list[tuple[str, str]]:
    return [(s.kind, s.value) for s in find_pii(text)]


def test_check_digits() -> None:
    assert resident_id_ok("11010519491231002X")
    assert resident_id_ok("11010519491231002x")
    assert not resident_id_ok("110105194912310021")  # wrong check digit
    assert not resident_id_ok("110105194902300028")  # 30 February
    assert not resident_id_ok("110105209912310020", today=dt.date(2024, 1, 1))  # born in the future
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


@pytest.mark.parametrize(
    "text,value",
    [
        ("我的手机13812345678谢谢", "13812345678"),
        ("电话 138 1234 5678", "138 1234 5678"),
        ("电话138-1234-5678。", "138-1234-5678"),
        ("call +86 13812345678 now", "+86 13812345678"),
        ("0086 13812345678", "0086 13812345678"),
        ("手机：１３８１２３４５６７８", "１３８１２３４５６７８"),
        ("手机：１３８－１２３４－５６７８", "１３８－１２３４－５６７８"),
    ],
)
def test_mobile_numbers(text: str, value: str) -> None:
    assert kinds(text) == [("PHONE", value)]


def test_ids_cards_emails() -> None:
    assert kinds("身份证11010519491231002X") == [("ID", "11010519491231002X")]
    assert kinds("身份证 110105 19491231 002X") == [("ID", "110105 19491231 002X")]
    assert kinds("卡号4111 1111 1111 1111") == [("CARD", "4111 1111 1111 1111")]
    assert kinds("card 4111-1111-1111-1111.") == [("CARD", "4111-1111-1111-1111")]
    assert kinds("邮箱Li.Na+shop@Example.COM。") == [("EMAIL", "Li.Na+shop@Example.COM")]
    assert kinds("ｍａｉｌ：ｌｉ＠ｑｑ．ｃｏｍ") == [("EMAIL", "ｌｉ＠ｑｑ．ｃｏｍ")]


@pytest.mark.parametrize(
    "text",
    [
        "订单号202311051234567890还没发货",
        "订单号：13812345678",  # an order number that looks like a mobile
        "Order no. 15812345678 is late",
        "交易流水号4111111111111111",
        "身份证110105194912310021不对",  # wrong check digit
        "卡号4111111111111112",  # fails Luhn
        "时间戳1700000000123",
        "客服热线010-67389898",  # a company's service line
        "售后电话400-820-8820，或者800-830-1234，银行95588，移动10086",
        "订单号：6222787789328792172",  # a Luhn-valid order number after an order cue
        "我的订单 4512081003390757 还没到",
        "order # 6011612310077280 is late",
        "6217421809679297是我的订单号",  # the cue after the number
        "老身份证440305761305112",  # 15 digits, month 13
        "运单773012345678901",  # 15 digits, no such province
        "下单时间2024-11-24 15:30，共¥1399.00",
        "编号SF1234567890123",
        "价格¥13800.00",
        "12345678901",  # not a mobile prefix
        "138123456789",  # 12 digits
        "wang@@qq.com li.na@163 service(at)example.com",
    ],
)
def test_hard_negatives(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("手机139.4385.8037", "139.4385.8037"),
        ("号码 1394 385 8037 谢谢", "1394 385 8037"),
        ("号码1394-385-8037", "1394-385-8037"),
        ("号码138 123 45678", "138 123 45678"),
        ("(+86)13943858037", "(+86)13943858037"),
        ("（+86）139 4385 8037", "（+86）139 4385 8037"),
        ("call (+86) 186-7316-2198", "(+86) 186-7316-2198"),
        ("0086-159-2187-6543", "0086-159-2187-6543"),
        ("+86-138-1234-5678", "+86-138-1234-5678"),
    ],
)
def test_mobile_forms_and_prefixes_are_redacted_whole(text: str, value: str) -> None:
    assert kinds(text) == [("PHONE", value)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("我家座机010-12345678", "010-12345678"),
        ("电话021 1234 5678", "021 1234 5678"),
        ("固话(0755)12345678", "(0755)12345678"),
        ("固话（0755）2678 1234", "（0755）2678 1234"),
        ("座机0571-8765432", "0571-8765432"),
        ("landline +86 10 6234 5678", "+86 10 6234 5678"),
    ],
)
def test_private_landlines_are_redacted(text: str, value: str) -> None:
    spans = find_pii(text)
    assert [(s.kind, s.value, s.form) for s in spans] == [("PHONE", value, "landline")]


def test_old_15_digit_ids_and_more_card_groupings() -> None:
    assert kinds("老身份证440305760305112") == [("ID", "440305760305112")]
    assert kinds("身份证 440305 760305 112") == [("ID", "440305 760305 112")]
    assert kinds("身份证 3201 0220 0306 1101 9X") == [("ID", "3201 0220 0306 1101 9X")]
    assert kinds("卡号622588 6281948214") == [("CARD", "622588 6281948214")]  # 6+10
    assert kinds("卡号622202 5260181590832") == [("CARD", "622202 5260181590832")]  # 6+13
    assert kinds("卡号6228 4839 0996 0308 244") == [("CARD", "6228 4839 0996 0308 244")]
    assert kinds("Amex 3712 619345 14505") == [("CARD", "3712 619345 14505")]


def test_a_card_named_after_an_order_cue_is_still_a_card() -> None:
    assert kinds("订单已付款，请退到6228483909960308244") == [("CARD", "6228483909960308244")]
    assert kinds("我的订单退款到卡号6225886281948214") == [("CARD", "6225886281948214")]
    assert kinds("Refund to card no. 4392 3231 9487 5740 for order 2024112400078") == [
        ("CARD", "4392 3231 9487 5740")
    ]


def test_one_number_in_several_forms_gets_one_placeholder() -> None:
    r = Redactor()
    assert r.redact("手机139.4385.8037") == "手机[PHONE_1]"
    assert r.redact("或 (+86) 139 4385 8037") == "或 [PHONE_1]"
    assert r.redact("座机010-62345678，+86 10 6234 5678") == "座机[PHONE_2]，[PHONE_2]"
    assert r.restore("请拨 [PHONE_1] 或 [PHONE_2]") == "请拨 139.4385.8037 或 010-62345678"


def test_normalize_is_one_to_one() -> None:
    raw = "１３８－１２３４　ＡＢＣ＠ｘ．ｃｏｍ"
    assert len(normalize(raw)) == len(raw)
    assert normalize(raw) == "138-1234 ABC@x.com"


def test_same_value_same_placeholder_whatever_the_format() -> None:
    r = Redactor()
    a = r.redact("打13812345678")
    b = r.redact("或者 138 1234 5678 和 li@qq.com")
    assert a == "打[PHONE_1]"
    assert b == "或者 [PHONE_1] 和 [EMAIL_1]"
    assert r.values["[PHONE_1]"] == "13812345678"


def test_detector_failure_fails_closed() -> None:
    def broken(text: str) -> list:  # type: ignore[type-arg]
        raise RuntimeError("boom")

    with pytest.raises(RedactionError):
        Redactor(broken).redact("13812345678")
    assert redact_text("call 13812345678 or li@qq.com") == "call [PHONE_1] or [EMAIL_1]"


def _restore_in_pieces(values: dict[str, str], pieces: list[str]) -> str:
    r = Restorer(values)
    out = [r.feed(p) for p in pieces]
    out.append(r.flush())
    return "".join(out)


def test_restoration_across_every_split() -> None:
    values = {"[PHONE_1]": "13812345678", "[EMAIL_12]": "li@qq.com"}
    text = "call [PHONE_1] or mail [EMAIL_12]; [x] [PHONE] 【PHONE_1】 [PHONE_9] end["
    expected = "call 13812345678 or mail li@qq.com; [x] [PHONE] 13812345678 [PHONE_9] end["
    for i in range(len(text)):
        for j in range(i, len(text)):
            assert _restore_in_pieces(values, [text[:i], text[i:j], text[j:]]) == expected
    assert _restore_in_pieces(values, list(text)) == expected


def test_restorer_holds_back_only_a_possible_placeholder() -> None:
    r = Restorer({"[PHONE_1]": "x"})
    assert r.feed("hello [PHO") == "hello "
    assert r.feed("TO") == "[PHOTO"
    assert r.feed(" [a") == " [a"
    assert r.feed(" [CARD_12") == " "
    assert r.flush() == "[CARD_12"


@pytest.mark.parametrize(
    "text,value",
    [
        ("我的座机0571-8765 4321转802", "0571-8765 4321转802"),
        ("办公电话0755-2678-1234转8012，有事打这个", "0755-2678-1234转8012"),
        ("work number 0571-88776655-3021, ask for Ms. Fang", "0571-88776655-3021"),
        ("my office line 010-82341567 ext. 215", "010-82341567 ext. 215"),
        ("座机０１０－６２３４５６７８分机８０２１", "０１０－６２３４５６７８分机８０２１"),
    ],
)
def test_an_extension_written_right_after_a_landline_is_redacted_with_it(
    text: str, value: str
) -> None:
    # GIVEN a private landline followed directly by its extension
    # WHEN the message is scanned
    # THEN the number and its extension are one span, so the placeholder hides both
    assert kinds(text) == [("PHONE", value)]


def test_an_extension_set_off_by_a_comma_is_left_as_text() -> None:
    # GIVEN a landline, a comma, then the extension
    # WHEN the message is scanned
    # THEN only the number is redacted (the extension alone does not identify anyone)
    assert kinds("Office line: (0755) 2678 1234, ext. 802.") == [("PHONE", "(0755) 2678 1234")]


def test_the_spans_of_a_text_seen_before_are_not_searched_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the detector, counted
    from kefu_llm import _pii

    calls: list[str] = []
    real = _pii.find_pii

    def counted(text: str) -> list[_pii.Span]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(_pii, "find_pii", counted)
    text = f"我的手机是 13812345678，订单 {uuid.uuid4().int % 10**8}"
    # WHEN two requests redact the same text (a system prompt, a turn of the history)
    first, second = Redactor().redact(text), Redactor().redact(text)
    # THEN both get the same placeholders, and the text was searched once
    assert first == second and "[PHONE_1]" in first and "13812345678" not in first
    assert calls == [text]
    # AND a long text is searched every time (only short ones are kept)
    long_text = text + "。" * 3000
    Redactor().redact(long_text)
    Redactor().redact(long_text)
    assert calls.count(long_text) == 2
