"""PII recognisers, placeholders and streamed restoration."""

from __future__ import annotations

import datetime as dt

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
        "座机010-67389898",
        "编号SF1234567890123",
        "价格¥13800.00",
        "12345678901",  # not a mobile prefix
        "138123456789",  # 12 digits
        "wang@@qq.com li.na@163 service(at)example.com",
    ],
)
def test_hard_negatives(text: str) -> None:
    assert kinds(text) == []


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
