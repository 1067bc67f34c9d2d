"""PII redaction: Chinese-first recognisers, placeholders out, real values back in.

Recognised (after normalising full-width digits, letters, brackets and separators):

- ``PHONE``: mainland mobile numbers (1[3-9]x, 11 digits) written plain, 3-4-4, 4-3-4 or 3-8,
  with spaces, dashes or dots (``139.4385.8037``), and a ``+86`` / ``0086`` / ``86`` /
  ``(+86)`` prefix redacted together with the number; private landlines: an area code
  (``010``, ``02x``, ``0xxx``, or ``+86`` without the 0) and a 7-8 digit local number
  (``010-12345678``, ``021 1234 5678``, ``(0755)12345678``). Company hotlines (``400``/``800``
  numbers, ``95xxx`` and other short service numbers) are not personal and are kept, as is a
  landline written right after a hotline cue (``客服热线``, ``hotline``); an extension written
  right after a landline (``转802``, ``ext. 215``, ``-3021``) is redacted with it;
- ``ID``: resident identity numbers: 18 digits with a valid birth date and the ISO 7064
  MOD 11-2 check digit (6-8-4 groups allowed), or the old 15 digits (a province code, a valid
  19YYMMDD birth date, a 3-digit sequence);
- ``CARD``: bank card numbers, 15-19 digits with a card-network prefix and a valid Luhn sum,
  plain or grouped 4-4-4-4(-3), 4-6-5, 6-10, 6-13 (and 6-9..13);
- ``EMAIL``: e-mail addresses.

A phone or card number written after an identifier cue (``订单号``, ``订单``, ``单号``,
``流水号``, ``Order no.``, ``order #``, ``Transaction id``...) is taken as that identifier and
left alone, unless a card cue (``卡号``, ``card``) comes after the identifier cue.

`Redactor` keeps one value -> placeholder table per request (``[PHONE_1]``...), `Restorer` puts
the values back into a streamed answer, holding back only what could still become a
placeholder. `redact_text` is the one-call helper for logs and the audit trail; it fails closed
(returns ``[REDACTED]`` when detection itself fails).
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ._exceptions import RedactionError

__all__ = [
    "KINDS",
    "Redactor",
    "Restorer",
    "Span",
    "find_pii",
    "luhn_ok",
    "normalize",
    "redact_text",
    "resident_id_ok",
]

KINDS = ("ID", "CARD", "PHONE", "EMAIL")

# One character in, one character out: indexes in the normalised text are indexes in the
# original, so values can be cut from either.
_FULLWIDTH = {chr(0xFF10 + i): str(i) for i in range(10)}
_FULLWIDTH.update({chr(0xFF21 + i): chr(0x41 + i) for i in range(26)})
_FULLWIDTH.update({chr(0xFF41 + i): chr(0x61 + i) for i in range(26)})
_FULLWIDTH.update(
    {
        "\uff0b": "+",  # ＋
        "\uff20": "@",  # ＠
        "\uff0e": ".",  # ．
        "\u3002": "。",
        "\uff0d": "-",  # －
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u3000": " ",  # ideographic space
        "\u00a0": " ",
        "\u2002": " ",
        "\u2003": " ",
        "\u2009": " ",
        "\u200b": " ",
        "\uff3f": "_",  # ＿
        "\uff08": "(",  # （
        "\uff09": ")",  # ）
        "\u00b7": ".",  # · (middle dot between digit groups)
    }
)
_TRANSLATE = str.maketrans(_FULLWIDTH)


def normalize(text: str) -> str:
    """Full-width digits/letters/separators to ASCII, character for character."""
    return text.translate(_TRANSLATE)


_SEP = r"[ \-]?"
_PSEP = r"[ \-.]?"  # mobile groups: space, dash or dot
# +86 / 0086 / 86 / (+86) / (0086) / (86), redacted with the number it belongs to.
_CC = r"(?:\(\s*(?:\+|00)?86\s*\)|(?:\+|00)?86)"
_PHONE_RE = re.compile(
    r"(?<![0-9A-Za-z+])(?:" + _CC + r"[ \-]?)?"
    r"(?:1[3-9][0-9]" + _PSEP + r"[0-9]{4}" + _PSEP + r"[0-9]{4}"  # 3-4-4 / 3-8 / 11
    r"|1[3-9][0-9]{2}[ \-.][0-9]{3}[ \-.][0-9]{4}"  # 4-3-4
    r"|1[3-9][0-9][ \-.][0-9]{3}[ \-.][0-9]{5})"  # 3-3-5
    r"(?![0-9A-Za-z])"
)
# Area code (010, 02x, 0xxx; after +86 without its 0, optionally in brackets) and a 7-8 digit
# local number, optionally split 3-4 / 4-4.
_AREA = r"0(?:10|2[0-9]|[3-9][0-9]{2})"
_LANDLINE_RE = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[ \-]?\(?(?:10|2[0-9]|[3-9][0-9]{2})\)?"
    r"|\(\s*" + _AREA + r"\s*\)|" + _AREA + r")"
    r"[ \-]?[1-9][0-9]{2,3}[ \-]?[0-9]{4}(?![0-9A-Za-z])"
)
# An extension written right after a landline belongs to it: 「转802」, "ext. 215", "-3021"
# (not one set off by a comma: "…1234, ext. 802" leaves the extension as text).
_EXTENSION_RE = re.compile(
    r"[ ]?(?:转|分机|ext\.?|extension|x|-)[ ]?[0-9]{1,6}(?![0-9A-Za-z])", re.I
)
# 18 digits, plain, 6-8-4 or 4-4-4-4-2 (how a card-style copy groups them).
_ID_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:[1-9][0-9]{5}"
    + _SEP
    + r"(?:18|19|20)[0-9]{2}[01][0-9][0-3][0-9]"
    + _SEP
    + r"[0-9]{3}[0-9Xx]"
    + r"|[1-9][0-9]{3}(?:[ \-][0-9]{4}){3}[ \-][0-9][0-9Xx])(?![0-9A-Za-z])"
)
# Old 15-digit resident IDs: 6-digit region, YYMMDD (19YY), 3-digit sequence; 6-6-3 groups.
_ID15_RE = re.compile(
    r"(?<![0-9A-Za-z])[1-9][0-9]{5}" + _SEP + r"[0-9]{6}" + _SEP + r"[0-9]{3}(?![0-9A-Za-z])"
)
_PROVINCES = frozenset(
    [*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55),
     *range(61, 66)]
)
# 15-19 digits, plain or in groups of four (4-4-4-4[-1..3]), 4-6-5 (Amex) or 6 + the rest
# (6-10, 6-13: how UnionPay cards are often copied, bank prefix first).
_CARD_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9]{15,19}|[0-9]{4}(?:[ \-][0-9]{4}){3}(?:[ \-]?[0-9]{1,3})?"
    r"|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{5}|[0-9]{6}[ \-][0-9]{9,13})(?![0-9A-Za-z])"
)
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9])"
)
# Card networks: IIN prefix and the lengths that network issues. UnionPay 62/81 (16-19), Visa 4
# (16/19), Mastercard 51-55 and 2221-2720 (16), Amex 34/37 (15), JCB 35 (16-19), Discover
# 6011/644-649/65 (16-19), Diners 30/36/38/39 (14-19).
_CARD_NETWORKS = [
    (re.compile(r"^(?:62|81)"), range(16, 20)),
    (re.compile(r"^4"), (16, 19)),
    (re.compile(r"^(?:5[1-5]|222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)"), (16,)),
    (re.compile(r"^3[47]"), (15,)),
    (re.compile(r"^35"), range(16, 20)),
    (re.compile(r"^(?:6011|64[4-9]|65)"), range(16, 20)),
    (re.compile(r"^(?:30|36|38|39)"), range(14, 20)),
]


def _card_network_ok(digits: str) -> bool:
    return any(p.match(digits) and len(digits) in lengths for p, lengths in _CARD_NETWORKS)


_NOT_DIGIT = re.compile(r"[^0-9Xx]")
# A number after one of these is an identifier of ours (order, waybill, transaction...), not a
# phone or card number: ``订单号：13812345678``, ``我的订单 6222...``, ``Order no. 15812345678``.
_ID_CUE_RE = re.compile(
    r"(?:订单|单号|编号|流水|交易号|运单|工单|票号|发票号|取件码"
    r"|order|transaction|tracking|ticket|invoice|sku)"
    r"(?P<filler>[^0-9\n，,。;；!！?？]{0,12})$",
    re.IGNORECASE,
)
# ...unless the customer names a card after that cue: ``订单退款到卡号6222...``.
_CARD_CUE_RE = re.compile(r"卡|card|visa|mastercard|amex|unionpay", re.IGNORECASE)
# A landline right after one of these is a company's service line, not a person's.
_HOTLINE_CUE_RE = re.compile(
    r"(?:热线|客服电话|服务电话|客服|总机|售后电话|hotline"
    r"|customer\s*service(?:\s*(?:line|number))?|service\s*(?:line|number))"
    r"[^0-9\n，,。;；]{0,4}$",
    re.IGNORECASE,
)


# ...or right before one: ``6217...是我的订单号``, ``6217... is my order number``.
_ID_CUE_AFTER_RE = re.compile(
    r"^\s*(?:是|为|is|was)?\s*(?:我的|我们的|那个|这个|my|the|our)?\s*"
    r"(?:订单|单号|流水|交易号|运单|order|transaction|tracking)",
    re.IGNORECASE,
)


def _after_id_cue(text: str, start: int) -> bool:
    cue = _ID_CUE_RE.search(text[max(0, start - 24) : start])
    return cue is not None and not _CARD_CUE_RE.search(cue.group("filler"))


def _is_identifier(text: str, start: int, end: int) -> bool:
    """An order / transaction / tracking number by its cue, before or right after it."""
    if _after_id_cue(text, start):
        return True
    return bool(_ID_CUE_AFTER_RE.match(text[end : end + 16])) and not _CARD_CUE_RE.search(
        text[max(0, start - 12) : start]
    )


def _after_hotline_cue(text: str, start: int) -> bool:
    return bool(_HOTLINE_CUE_RE.search(text[max(0, start - 24) : start]))


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def resident_id_ok(value: str, *, today: _dt.date | None = None) -> bool:
    """18-digit PRC resident ID: valid birth date (not in the future) and MOD 11-2 check digit."""
    value = value.upper()
    if len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        born = _dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if born > (today or _dt.date.today()) or born.year < 1900:
        return False
    total = sum(int(value[i]) * _ID_WEIGHTS[i] for i in range(17))
    return _ID_CHECK[total % 11] == value[17]


@dataclass(slots=True, frozen=True)
class Span:
    kind: str
    start: int
    end: int
    value: str  # as written in the original text
    canonical: str  # digits only / lower-cased e-mail: the identity of the value
    form: str = ""  # mobile / landline, id18 / id15, card, email


def _canonical(kind: str, raw: str, form: str = "") -> str:
    if kind == "EMAIL":
        return raw.lower()
    digits = _NOT_DIGIT.sub("", raw).upper()
    if form == "landline":  # +86 10 ... / 0086 10 ... / 010 ... are one number
        if digits.startswith("0086"):
            digits = "0" + digits[4:]
        elif digits.startswith("86") and not raw.lstrip("( ").startswith("0"):
            digits = "0" + digits[2:]
    elif kind == "PHONE" and len(digits) > 11:
        digits = digits[-11:]
    return digits


def _id15_ok(digits: str, today: _dt.date | None = None) -> bool:
    """Old 15-digit resident ID: a province code and a real 19YYMMDD birth date."""
    if len(digits) != 15 or not digits.isdigit() or int(digits[:2]) not in _PROVINCES:
        return False
    try:
        born = _dt.date(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12]))
    except ValueError:
        return False
    return born <= (today or _dt.date.today())


def find_pii(text: str) -> list[Span]:
    """All PII spans in ``text``, non-overlapping, in order. ID wins over CARD over PHONE."""
    norm = normalize(text)
    found: list[Span] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(kind: str, start: int, end: int, form: str) -> None:
        canonical = _canonical(kind, norm[start:end], form)
        found.append(Span(kind, start, end, text[start:end], canonical, form))
        taken.append((start, end))

    def card_ok(digits: str) -> bool:
        return 15 <= len(digits) <= 19 and _card_network_ok(digits) and luhn_ok(digits)

    if "@" in norm:
        for m in _EMAIL_RE.finditer(norm):
            add("EMAIL", m.start(), m.end(), "email")
    for m in _ID_RE.finditer(norm):
        if free(m.start(), m.end()) and resident_id_ok(_NOT_DIGIT.sub("", m.group())):
            add("ID", m.start(), m.end(), "id18")
    for m in _ID15_RE.finditer(norm):
        digits = _NOT_DIGIT.sub("", m.group())
        before = norm[max(0, m.start() - 12) : m.start()]
        if (
            free(m.start(), m.end())
            and _id15_ok(digits)
            and not _is_identifier(norm, m.start(), m.end())
            # a 15-digit Amex number the customer calls a card stays a card
            and not (card_ok(digits) and _CARD_CUE_RE.search(before))
        ):
            add("ID", m.start(), m.end(), "id15")
    for m in _CARD_RE.finditer(norm):
        digits = _NOT_DIGIT.sub("", m.group())
        if free(m.start(), m.end()) and card_ok(digits) and not _is_identifier(
            norm, m.start(), m.end()
        ):
            add("CARD", m.start(), m.end(), "card")
    for m in _PHONE_RE.finditer(norm):
        if free(m.start(), m.end()) and not _is_identifier(norm, m.start(), m.end()):
            add("PHONE", m.start(), m.end(), "mobile")
    for m in _LANDLINE_RE.finditer(norm):
        if (
            free(m.start(), m.end())
            and not _is_identifier(norm, m.start(), m.end())
            and not _after_hotline_cue(norm, m.start())
        ):
            extension = _EXTENSION_RE.match(norm, m.end())
            end = extension.end() if extension and free(m.start(), extension.end()) else m.end()
            add("PHONE", m.start(), end, "landline")
    found.sort(key=lambda s: s.start)
    return found


# A reply redacts its whole request: the system prompt and the recent turns, the same texts
# reply after reply. Their spans are kept (short texts only: the memory stays bounded), keyed
# with the day, on which a resident ID's validity depends.
_CACHED_TEXT_CHARS = 2000


@functools.lru_cache(maxsize=2048)
def _spans_of(text: str, day: _dt.date) -> tuple[Span, ...]:
    return tuple(find_pii(text))


def find_pii_cached(text: str) -> list[Span]:
    """:func:`find_pii`, remembered for the latest short texts."""
    if len(text) > _CACHED_TEXT_CHARS:
        return find_pii(text)
    return list(_spans_of(text, _dt.date.today()))


_PLACEHOLDER_RE = re.compile(r"[\[【](ID|CARD|PHONE|EMAIL)_([0-9]{1,4})[\]】]")


@dataclass
class Redactor:
    """Replaces PII with numbered placeholders; one instance per request (or conversation)."""

    detector: Callable[[str], list[Span]] = find_pii_cached
    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)  # placeholder -> original value
    _counts: dict[str, int] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        """``text`` with every PII value replaced; raises `RedactionError` if detection fails."""
        try:
            spans = self.detector(text)
        except Exception as exc:  # fail closed: whatever broke, nothing is sent
            raise RedactionError("PII detection failed") from exc
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for span in spans:
            out.append(text[pos : span.start])
            out.append(self._placeholder(span))
            pos = span.end
        out.append(text[pos:])
        return "".join(out)

    def redact_all(self, texts: Iterable[str]) -> list[str]:
        return [self.redact(t) for t in texts]

    def _placeholder(self, span: Span) -> str:
        key = (span.kind, span.canonical)
        ph = self.by_value.get(key)
        if ph is None:
            n = self._counts.get(span.kind, 0) + 1
            self._counts[span.kind] = n
            ph = f"[{span.kind}_{n}]"
            self.by_value[key] = ph
            self.values[ph] = span.value
        return ph

    def restorer(self) -> Restorer:
        return Restorer(dict(self.values))

    def restore(self, text: str) -> str:
        return restore_text(text, self.values)


def _ph_key(kind: str, num: str) -> str:
    return f"[{kind}_{num}]"


def restore_text(text: str, values: dict[str, str]) -> str:
    if not values or ("[" not in text and "【" not in text):
        return text
    return _PLACEHOLDER_RE.sub(
        lambda m: values.get(_ph_key(m.group(1), m.group(2)), m.group(0)), text
    )


_MAX_PLACEHOLDER = len("[EMAIL_9999]")
_PARTIAL_RE = re.compile(r"[\[【](?:[A-Z]{0,5}(?:_[0-9]{0,4})?)?$")
_NAMES = ("ID", "CARD", "PHONE", "EMAIL")


def _could_be_placeholder(tail: str) -> bool:
    """Whether ``tail`` (starting with a bracket, no closing bracket) can still become one."""
    if len(tail) > _MAX_PLACEHOLDER or not _PARTIAL_RE.match(tail):
        return False
    name = tail[1:].split("_", 1)[0]
    if "_" in tail:
        return name in _NAMES
    return any(n.startswith(name) for n in _NAMES)


class Restorer:
    """Puts real values back into a streamed answer, also across delta boundaries.

    ``feed`` returns what can be shown now; at most one possible placeholder prefix (<= 12
    characters) is held back. ``flush`` returns what is left at the end of the stream.
    """

    __slots__ = ("_buf", "_values")

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self._buf = ""

    def feed(self, delta: str) -> str:
        if not self._values:
            return delta
        buf = self._buf + delta if self._buf else delta
        if "[" not in buf and "【" not in buf:
            self._buf = ""
            return buf
        restored = restore_text(buf, self._values)
        # Hold back a trailing bracket that may still open a placeholder.
        cut = max(restored.rfind("["), restored.rfind("【"))
        if cut >= 0 and _could_be_placeholder(restored[cut:]):
            self._buf = restored[cut:]
            return restored[:cut]
        self._buf = ""
        return restored

    def flush(self) -> str:
        rest, self._buf = self._buf, ""
        return rest


def redact_text(text: str) -> str:
    """``text`` with PII replaced by placeholders, for logs and the audit trail.

    Fails closed: if detection raises, the whole text is replaced by ``[REDACTED]``.
    """
    try:
        return Redactor().redact(text)
    except RedactionError:
        return "[REDACTED]"
