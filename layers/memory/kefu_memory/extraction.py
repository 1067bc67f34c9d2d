"""Fact extraction: which facts about a customer a finished exchange is worth remembering.

Two extractors behind one protocol:

- `LlmExtractor` asks a language model through an injected `complete(prompt) -> str`
  coroutine (kefu_core wires it to kefu_llm; this package never imports an engine) and
  validates the JSON it returns.
- `RuleBasedExtractor` needs nothing: Chinese and English patterns for order ids, addresses,
  phone numbers, preferences and complaints in the customer's words, and promises (refunds,
  coupons, call-backs) in the company's words.

Extraction runs after the reply is sent, never on the read path.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from pydantic import TypeAdapter, ValidationError

from ._errors import ExtractionError
from ._models import Fact, Turn
from ._text import normalize

__all__ = ["FactExtractor", "LlmExtractor", "RuleBasedExtractor", "fact_key_hash"]

CompleteFn = Callable[[str], Awaitable[str]]


@runtime_checkable
class FactExtractor(Protocol):
    @property
    def name(self) -> str: ...

    async def extract(self, turns: Sequence[Turn]) -> list[Fact]:
        """Facts found in `turns` (each with the seq of the message it came from)."""
        ...


def fact_key_hash(kind: str, value: str) -> str:
    """A key for facts without a natural slot: the kind plus a hash of the normalised value."""
    norm = re.sub(r"[\W_]+", "", normalize(value))
    return f"{kind}:h{hashlib.sha256(norm.encode()).hexdigest()[:12]}"


# ---------------------------------------------------------------- rule-based

_SENTENCE_SPLIT = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)\s+")
_ORDER_PATTERNS = [
    re.compile(r"(?:订单号?|单号)\s*(?:是|为|:|：|#)?\s*([A-Za-z0-9][A-Za-z0-9-]{4,31})"),
    re.compile(
        r"\border\s*(?:number|no\.?|id|#)?\s*(?:is|:|#)?\s*#?([A-Za-z]*\d[A-Za-z0-9-]{3,31})",
        re.I,
    ),
    re.compile(r"#([A-Za-z]*\d{5,}[A-Za-z0-9-]*)"),
]
_MOBILE_RE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d(?:[- ]?\d{4}){2})(?!\d)")
_PHONE_EN_RE = re.compile(
    r"\b(?:phone|mobile|number|call me at|reach me at)\b[^0-9+]{0,20}(\+?\d[\d\s().-]{6,18}\d)",
    re.I,
)
_ADDRESS_ZH_RE = re.compile(
    r"(?:收货地址|送货地址|配送地址|新地址|地址)\s*(?:是|为|改成|改为|换成|更新为|:|：)\s*"
    r"([^，。！？!?；;\n]{4,80})"
)
_ADDRESS_ZH_SHAPE_RE = re.compile(
    r"(?:寄到|送到|发到|改到|搬到)\s*([^，。！？!?；;\n]{2,40}(?:省|市|区|县|路|街|号|村|镇|室|楼)"
    r"[^，。！？!?；;\n]{0,40})"
)
_ADDRESS_EN_RE = re.compile(
    r"\b(?:(?:shipping|delivery|new|my)\s+)?address\s*(?:is|:|to)\s*([^.;!?\n]{6,120})"
    r"|\b(?:ship|send|deliver)\s+(?:[a-z]+\s+){0,2}to\s+"
    r"(\d+[^.;!?\n]{5,120})",
    re.I,
)
_PREFERENCE_ZH_RE = re.compile(
    r"(?:我(?:更|比较|一般|总是)?(?:喜欢|偏好|习惯|想要)|以后(?:请|都)|请(?:用|发|走)|"
    r"不要|别(?:用|打|发)|希望(?:用|走|发))"
)
_PREFERENCE_EN_RE = re.compile(
    r"\b(?:i (?:prefer|like|always|usually|would rather)|please (?:always|use|only|don't|do not)"
    r"|don't (?:call|email|text|use|send)|do not (?:call|email|text|use|send))\b",
    re.I,
)
_COMPLAINT_ZH_RE = re.compile(
    r"投诉|不满意|太差|很差|差评|态度(?:恶劣|很差|不好)|还没(?:收到|到|发货)|没收到|破损|坏了|"
    r"少发|漏发|发错|质量(?:问题|太差)|骗人|退款(?:还)?没到|等了?(?:很久|好久|\d+天)"
)
_COMPLAINT_EN_RE = re.compile(
    r"\b(?:complain\w*|terrible|unacceptable|disappointed|worst|broken|damaged|"
    r"never (?:arrived|received)|still (?:not|haven't)|wrong item|missing item|"
    r"poor (?:service|quality)|rude)\b",
    re.I,
)
_REFUND_ZH_RE = re.compile(
    r"(?:为您|给您|帮您|会|将|已|已经|马上|立即)[^。！？!?]{0,12}"
    r"(?:退款|退还|退回|返还|退钱)"
)
_REFUND_EN_RE = re.compile(
    r"\b(?:we(?:'ll| will| have| ve|'ve)?|i(?:'ll| will| have|'ve)?)\s+"
    r"(?:\w+\s+){0,3}(?:refund|reimburse)\w*|\b(?:issued|processed|approved)\s+(?:a|your)\s+"
    r"(?:full\s+|partial\s+)?refund",
    re.I,
)
_COUPON_ZH_RE = re.compile(
    r"(?:送|赠送|发放|补偿|给您|为您|发您|补发)[^。！？!?]{0,15}(?:优惠券|代金券|红包|积分|券)"
)
_COUPON_EN_RE = re.compile(
    r"\b(?:send|give|issue|add|credit)\w*\s+(?:[^\s.]+\s+){0,4}"
    r"(?:coupon|voucher|credit|discount)",
    re.I,
)
_CALLBACK_ZH_RE = re.compile(
    r"回电|回拨|给您(?:回|打)电话|(?:稍后|尽快|\d+\s*小时内)[^。！？]{0,8}联系您"
)
_CALLBACK_EN_RE = re.compile(
    r"\b(?:call you back|get back to you|contact you (?:within|by|tomorrow|shortly)|"
    r"follow up with you)\b",
    re.I,
)
_AMOUNT_STRICT_RE = re.compile(
    r"(?:¥|￥|\$|RMB\s*)(\d+(?:\.\d{1,2})?)|(\d+(?:\.\d{1,2})?)\s*(?:元|块|yuan|usd|dollars?)",
    re.I,
)


_WIDTH_FOLD = {
    code: code - 0xFEE0
    for code in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B), 0xFF03]
}


_NEGATION_RE = re.compile(
    r"不会|不能|无法|不予|不可以|不可|不给|没法|暂不|不支持|"
    r"\b(?:not|no|never|cannot|unable)\b|n't",
    re.I,
)


def _negated(sentence: str, match: re.Match[str]) -> bool:
    """True when the promise phrase is negated ("我们不会退款", "we will not refund")."""
    return bool(_NEGATION_RE.search(sentence[max(0, match.start() - 6) : match.end()]))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]


def _amount(sentence: str, near: re.Match[str]) -> str | None:
    """The amount inside the promise phrase or just after it."""
    match = _AMOUNT_STRICT_RE.search(sentence[near.start() : near.end() + 12])
    if not match:
        return None
    return match.group(1) or match.group(2)


def _orders(text: str) -> list[str]:
    found: list[str] = []
    for pattern in _ORDER_PATTERNS:
        for match in pattern.finditer(text):
            order = match.group(1).upper().strip("-")
            if sum(c.isdigit() for c in order) >= 3 and order not in found:
                found.append(order)
    return found


def _clip(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RuleBasedExtractor:
    """Pattern-based extraction for Chinese and English; no model needed."""

    @property
    def name(self) -> str:
        return "rules-v1"

    async def extract(self, turns: Sequence[Turn]) -> list[Fact]:
        facts: dict[str, Fact] = {}
        context_orders: list[str] = []
        for turn in turns:
            text = unicode_text(turn.content)
            orders = _orders(text)
            context_orders = orders or context_orders
            for fact in self._from_turn(turn, text, orders, context_orders):
                facts[fact.key] = fact  # a later mention in the same exchange wins
        return list(facts.values())

    def _from_turn(
        self, turn: Turn, text: str, orders: list[str], context_orders: list[str]
    ) -> list[Fact]:
        seq = turn.seq
        out: list[Fact] = []
        customer = turn.role == "user"
        company = turn.role in ("assistant", "agent")
        for sentence in _sentences(text):
            sentence_orders = _orders(sentence)
            if customer:
                for order in sentence_orders:
                    out.append(
                        Fact(kind="order", key=f"order:{order}", value=_clip(sentence),
                             attributes={"order_id": order}, message_seq=seq)
                    )
                out.extend(self._contact(sentence, seq))
                if _COMPLAINT_ZH_RE.search(sentence) or _COMPLAINT_EN_RE.search(sentence):
                    attrs = {"order_id": next(iter(sentence_orders or context_orders), None)}
                    out.append(
                        Fact(kind="complaint", key=fact_key_hash("complaint", sentence),
                             value=_clip(sentence), attributes=attrs, message_seq=seq,
                             confidence=0.8)
                    )
                elif _PREFERENCE_ZH_RE.search(sentence) or _PREFERENCE_EN_RE.search(sentence):
                    out.append(
                        Fact(kind="preference", key=fact_key_hash("preference", sentence),
                             value=_clip(sentence), message_seq=seq, confidence=0.7)
                    )
            if company:
                out.extend(self._promises(sentence, sentence_orders or context_orders, seq))
        return out

    @staticmethod
    def _contact(sentence: str, seq: int | None) -> list[Fact]:
        out: list[Fact] = []
        phones = [m.group(1) for m in _MOBILE_RE.finditer(sentence)]
        phones += [m.group(1) for m in _PHONE_EN_RE.finditer(sentence)]
        for phone in phones[:1]:
            digits = re.sub(r"[^\d+]", "", phone)
            out.append(Fact(kind="phone", key="phone", value=digits, message_seq=seq))
        address = None
        for pattern in (_ADDRESS_ZH_RE, _ADDRESS_ZH_SHAPE_RE):
            match = pattern.search(sentence)
            if match:
                address = match.group(1)
                break
        if address is None:
            match = _ADDRESS_EN_RE.search(sentence)
            if match:
                address = match.group(1) or match.group(2)
        if address:
            address = address.strip(" ，,。.")
            out.append(
                Fact(kind="address", key="address:shipping", value=address, message_seq=seq)
            )
        return out

    @staticmethod
    def _promises(sentence: str, orders: list[str], seq: int | None) -> list[Fact]:
        out: list[Fact] = []
        scope = orders[0] if orders else "general"
        kinds = (
            ("refund", _REFUND_ZH_RE, _REFUND_EN_RE),
            ("coupon", _COUPON_ZH_RE, _COUPON_EN_RE),
            ("callback", _CALLBACK_ZH_RE, _CALLBACK_EN_RE),
        )
        for promise, zh, en in kinds:
            match = zh.search(sentence) or en.search(sentence)
            if not match or _negated(sentence, match):
                continue
            attrs: dict[str, object] = {
                "promise": promise,
                "order_id": orders[0] if orders else None,
            }
            amount = _amount(sentence, match) if promise != "callback" else None
            if amount:
                attrs["amount"] = amount
            out.append(
                Fact(kind="promise", key=f"promise:{promise}:{scope}", value=_clip(sentence),
                     attributes=attrs, message_seq=seq)
            )
        return out


def unicode_text(text: str) -> str:
    """Fold full-width digits and letters to ASCII; keep punctuation, case and spacing."""
    return text.translate(_WIDTH_FOLD)


# ---------------------------------------------------------------- LLM

_LLM_PROMPT = """You extract durable facts about a customer from a customer-service exchange.
Return only a JSON array. Each element: {{"kind": one of "order", "address", "phone",
"preference", "complaint", "promise", "other"; "key": a stable slot id such as
"address:shipping", "phone", "order:<ORDER_ID>", "promise:refund:<ORDER_ID or general>",
"promise:coupon:<...>", "promise:callback:<...>"; "value": the fact in one short sentence in
the conversation's language; "message_seq": the seq of the message it came from;
"confidence": 0..1}}. Keep only facts useful in later conversations: orders, addresses, phone
numbers, preferences, complaints, and what the company promised (refunds, coupons, call-backs).
Return [] when there is nothing worth keeping. Never invent values.

Exchange:
{exchange}
"""

_FACTS = TypeAdapter(list[Fact])


class LlmExtractor:
    """Extraction by a language model through an injected completion coroutine."""

    def __init__(self, complete: CompleteFn, *, name: str = "llm") -> None:
        self._complete = complete
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @staticmethod
    def prompt(turns: Sequence[Turn]) -> str:
        lines = [f"[seq={t.seq}] {t.role}: {t.content}" for t in turns]
        return _LLM_PROMPT.format(exchange="\n".join(lines))

    async def extract(self, turns: Sequence[Turn]) -> list[Fact]:
        if not turns:
            return []
        try:
            raw = await self._complete(self.prompt(turns))
        except Exception as exc:
            raise ExtractionError("the extraction model failed") from exc
        start, end = raw.find("["), raw.rfind("]")
        if start < 0 or end < start:
            raise ExtractionError("the extraction model returned no JSON array")
        try:
            data = json.loads(raw[start : end + 1])
            if not isinstance(data, list):
                raise ExtractionError("the extraction model returned no JSON array")
            for item in data:
                if isinstance(item, dict) and not item.get("key"):
                    item["key"] = fact_key_hash(str(item.get("kind")), str(item.get("value")))
            facts = _FACTS.validate_python(data)
        except (ValueError, ValidationError) as exc:
            raise ExtractionError("the extraction model returned invalid facts") from exc
        known = {t.seq for t in turns}
        return [
            f if f.message_seq in known else f.model_copy(update={"message_seq": turns[-1].seq})
            for f in facts
            if f.value.strip()
        ]
