"""Generate the labelled PII set ``pii_labelled.jsonl`` (deterministic: same seed, same file).

    python -m bench.data.pii_make            # rewrites bench/data/pii_labelled.jsonl

Each line: ``{"id", "lang", "text", "spans": [{"kind", "start", "end", "value"}], "note"}``.
Positives are mainland mobile numbers, 18-digit resident IDs (valid date and ISO 7064
MOD 11-2 check digit), bank cards (network prefix, Luhn) and e-mails, written the ways people
write them (spaces, dashes, +86, full-width digits), in Chinese and English customer-service
messages. Hard negatives look like them but are not: IDs with a wrong check digit or an
impossible date, card numbers failing Luhn, order / tracking / waybill numbers, timestamps,
company service lines (a landline after 客服热线, 400 numbers), prices, 11-digit numbers that
are not mobiles, malformed e-mails.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("pii_labelled.jsonl")
SEED = 20241124

MOBILE_PREFIXES = [
    *range(130, 140),
    145,
    147,
    *range(150, 154),
    *range(155, 160),
    166,
    *range(170, 179),
    *range(180, 190),
    191,
    198,
    199,
]
REGIONS = [
    "110101",
    "110105",
    "310104",
    "310115",
    "440305",
    "440106",
    "510107",
    "330106",
    "420102",
    "320102",
    "500103",
    "610113",
    "210102",
    "370202",
]
CARD_BINS = [
    ("622202", 19),
    ("621700", 19),
    ("622848", 19),
    ("622588", 16),
    ("621483", 16),
    ("436742", 16),
    ("400000", 16),
    ("512345", 16),
    ("524094", 16),
    ("625919", 16),
]
NAMES = [
    "zhangwei",
    "li.na",
    "wang_fang",
    "liu.yang88",
    "chen.jing",
    "alice.w",
    "bob.smith",
    "service",
    "kefu2024",
    "xiaoming.li",
]
DOMAINS = [
    "qq.com",
    "163.com",
    "126.com",
    "gmail.com",
    "outlook.com",
    "example.com.cn",
    "company.cn",
    "sina.com",
    "foxmail.com",
    "mail.example.org",
]
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
FULLWIDTH = str.maketrans("0123456789+-", "０１２３４５６７８９＋－")


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def id_check(body: str) -> str:
    return ID_CHECK[sum(int(body[i]) * ID_WEIGHTS[i] for i in range(17)) % 11]


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def digits(self, n: int) -> str:
        return "".join(self.r.choice("0123456789") for _ in range(n))

    def mobile(self) -> str:
        return f"{self.r.choice(MOBILE_PREFIXES)}{self.digits(8)}"

    def mobile_written(self) -> str:
        m = self.mobile()
        style = self.r.randrange(10)
        if style == 1:
            return f"{m[:3]} {m[3:7]} {m[7:]}"
        if style == 2:
            return f"{m[:3]}-{m[3:7]}-{m[7:]}"
        if style == 3:
            return f"+86 {m}"
        if style == 4:
            return f"+86-{m[:3]}-{m[3:7]}-{m[7:]}"
        if style == 5:
            return m.translate(FULLWIDTH)
        if style == 6:
            return f"0086 {m}"
        if style == 7:
            return f"{m[:3]} {m[3:]}"
        if style == 8:
            return f"{m[:3]}－{m[3:7]}－{m[7:]}".translate(FULLWIDTH)
        return m

    def birth(self, valid: bool = True) -> str:
        if valid:
            day = dt.date(1950, 1, 1) + dt.timedelta(days=self.r.randrange(20000))
            return day.strftime("%Y%m%d")
        return self.r.choice(["19900230", "19851341", "20010431", "19770000", "19921232"])

    def resident_id(self, *, valid: bool = True, bad_date: bool = False) -> str:
        body = self.r.choice(REGIONS) + self.birth(not bad_date) + self.digits(3)
        check = id_check(body)
        if not valid:
            check = self.r.choice([c for c in "0123456789X" if c != check])
        value = body + check
        if value.endswith("X") and self.r.random() < 0.3:
            value = value[:-1] + "x"
        if valid and not bad_date and self.r.random() < 0.15:
            value = f"{value[:6]} {value[6:14]} {value[14:]}"
        return value

    def card(self, *, valid: bool = True) -> str:
        bin_, length = self.r.choice(CARD_BINS)
        body = bin_ + self.digits(length - len(bin_) - 1)
        check = luhn_digit(body)
        if not valid:
            check = str((int(check) + self.r.randrange(1, 10)) % 10)
        return body + check

    def card_written(self, *, valid: bool = True) -> str:
        c = self.card(valid=valid)
        if self.r.random() < 0.4:
            return " ".join(c[i : i + 4] for i in range(0, len(c), 4))
        if self.r.random() < 0.15:
            return "-".join(c[i : i + 4] for i in range(0, len(c), 4))
        if self.r.random() < 0.15:
            return c.translate(FULLWIDTH)
        return c

    def email(self) -> str:
        name = self.r.choice(NAMES) + self.r.choice(["", str(self.r.randrange(1, 999)), "+shop"])
        value = f"{name}@{self.r.choice(DOMAINS)}"
        return value.upper() if self.r.random() < 0.1 else value


ZH_POS = {
    "PHONE": [
        "我的手机号是{v}，麻烦尽快联系我。",
        "联系电话：{v}",
        "快递员打我手机{v}就行",
        "请回电{v}，谢谢",
        "收货人王女士，电话{v}，地址上海市浦东新区张江路88号",
        "手机{v}（白天都在）",
    ],
    "ID": [
        "身份证号{v}，请帮我核实实名信息。",
        "我的证件号码是{v}",
        "实名认证填的{v}，为什么失败？",
        "身份证：{v}，姓名李雷",
    ],
    "CARD": [
        "退款请打到我的银行卡{v}上。",
        "卡号 {v}，开户行招商银行",
        "我用尾号的那张卡付的，完整卡号是{v}",
        "信用卡{v}被重复扣款了",
    ],
    "EMAIL": [
        "发票请发到邮箱{v}",
        "我的邮箱是 {v} ，收不到验证码",
        "联系邮箱：{v}。",
        "请把合同发给{v}谢谢",
    ],
}
EN_POS = {
    "PHONE": [
        "My phone number is {v}, please call me back.",
        "You can reach me at {v}.",
        "Courier can call {v} when arriving.",
        "Contact: {v} (mobile)",
    ],
    "ID": ["My ID card number is {v}.", "Resident ID {v}, please verify my account."],
    "CARD": [
        "Please refund to my card {v}.",
        "I was charged twice on card {v}.",
        "Card number: {v}, expiry 08/27.",
    ],
    "EMAIL": ["Send the invoice to {v} please.", "My email is {v}.", "Reply to {v}, thanks!"],
}
ZH_NEG = [
    "订单号{order}还没发货，什么时候能到？",
    "物流单号SF{waybill}显示已签收，但我没收到",
    "下单时间2024-03-15 14:32:07",
    "时间戳{ts}对应的那笔订单",
    "退款金额¥{amount}，什么时候到账？",
    "客服热线010-{land}，工作日9点到18点",
    "工单编号WO{order}",
    "会员号{member}积分没到账",
    "请拨打400-{tfree}咨询",
    "商品编码{sku}，规格XL",
    "我的身份证号好像是{bad_id}，系统说不对",
    "银行卡{bad_card}绑定失败",
    "发票号码{invoice}",
    "快递柜取件码{code}",
    "合同编号HT-{year}-{seq}",
    "邮箱写成了{bad_email}，能改吗",
    "转账流水号{flow}",
    "订单号：{order11}",
    "我的单号是{order11}，帮我查下",
    "手机尾号{code4}的那个订单",
    "京东订单{order12}",
    "交易流水号{card_like}",
    "运单编号{card_like}已揽收",
]
EN_NEG = [
    "Order #{order} has not shipped yet.",
    "Tracking number YT{waybill} shows delivered.",
    "Ordered at 2024-03-15T14:32:07Z.",
    "Refund of ${amount} has not arrived.",
    "Call our hotline 400-{tfree}.",
    "Ticket {order} was closed by mistake.",
    "My ID {bad_id} was rejected.",
    "Card {bad_card} could not be added.",
    "SKU {sku} is out of stock.",
    "Invoice no. {invoice}",
    "I typed my email as {bad_email}, can you fix it?",
    "Event timestamp {ts}.",
    "Order no. {order11} is missing an item.",
    "Transaction id {card_like}.",
]


def negatives_fill(g: Gen) -> dict[str, str]:
    while True:  # an order number that is neither a card nor an ID nor contains a mobile
        order = g.r.choice(["2023", "2024"]) + g.digits(14)
        if not order.startswith(("22", "23", "24")):
            break
    bad = g.r.random() < 0.5
    return {
        "order": order,
        "waybill": g.digits(12),
        "ts": g.r.choice(
            [
                str(g.r.randrange(1600000000, 1750000000)),
                str(g.r.randrange(1600000000000, 1750000000000)),
            ]
        ),
        "amount": f"{g.r.randrange(1, 99999)}.{g.digits(2)}",
        "land": g.digits(8),
        "tfree": f"{g.digits(3)}-{g.digits(4)}",
        "member": "M" + g.digits(11),
        "sku": g.r.choice(["SKU", "P", "HW"]) + g.digits(g.r.choice([10, 13])),
        "bad_id": g.resident_id(valid=False) if bad else g.resident_id(bad_date=True),
        "bad_card": g.card(valid=False),
        "invoice": g.digits(20),
        "code": g.digits(6),
        "year": str(g.r.randrange(2019, 2025)),
        "seq": g.digits(6),
        "bad_email": g.r.choice(
            [
                "zhangwei@",
                "li.na@163",
                "wang@@qq.com",
                "chen.jing#qq.com",
                "service(at)example.com",
                "@qq.com",
            ]
        ),
        "order11": g.mobile(),
        "order12": g.mobile() + g.digits(1),
        "code4": g.digits(4),
        "card_like": g.card(),
        "flow": "2" + g.digits(23),
    }


def value_for(g: Gen, kind: str) -> str:
    if kind == "PHONE":
        return g.mobile_written()
    if kind == "ID":
        v = g.resident_id()
        return v.translate(FULLWIDTH) if g.r.random() < 0.1 else v
    if kind == "CARD":
        return g.card_written()
    return g.email()


def fill(template: str, value: str) -> tuple[str, dict[str, Any]]:
    start = template.index("{v}")
    text = template.replace("{v}", value)
    return text, {"start": start, "end": start + len(value), "value": value}


def build() -> list[dict[str, Any]]:
    g = Gen(SEED)
    rows: list[dict[str, Any]] = []
    for lang, table in (("zh", ZH_POS), ("en", EN_POS)):
        for kind, templates in table.items():
            for _ in range(60 if lang == "zh" else 30):
                text, span = fill(g.r.choice(templates), value_for(g, kind))
                rows.append(
                    {
                        "lang": lang,
                        "text": text,
                        "spans": [{"kind": kind, **span}],
                        "note": "positive",
                    }
                )
    # two or three values in one message
    for _ in range(60):
        kinds = g.r.sample(["PHONE", "ID", "CARD", "EMAIL"], g.r.choice([2, 3]))
        lang = g.r.choice(["zh", "en"])
        table = ZH_POS if lang == "zh" else EN_POS
        sep = "；" if lang == "zh" else " "
        text = ""
        spans = []
        for kind in kinds:
            piece, span = fill(g.r.choice(table[kind]), value_for(g, kind))
            if text:
                text += sep
            spans.append(
                {
                    "kind": kind,
                    "start": span["start"] + len(text),
                    "end": span["end"] + len(text),
                    "value": span["value"],
                }
            )
            text += piece
        rows.append({"lang": lang, "text": text, "spans": spans, "note": "several"})
    for lang, templates in (("zh", ZH_NEG), ("en", EN_NEG)):
        for _ in range(200 if lang == "zh" else 100):
            text = g.r.choice(templates).format(**negatives_fill(g))
            rows.append({"lang": lang, "text": text, "spans": [], "note": "hard negative"})
    g.r.shuffle(rows)
    for i, row in enumerate(rows):
        row["id"] = i
        for span in row["spans"]:
            assert row["text"][span["start"] : span["end"]] == span["value"]
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(
                json.dumps(
                    {"id": row["id"], **{k: v for k, v in row.items() if k != "id"}},
                    ensure_ascii=False,
                )
                + "\n"
            )
    print(f"wrote {len(rows)} messages to {OUT}")


if __name__ == "__main__":
    main()
