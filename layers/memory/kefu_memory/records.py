"""Structured records of a knowledge base, matched against the constraints a visitor states.

Many knowledge bases are catalogues: one heading per thing (a hotel, a store, a plan) and
``key：value`` lines under it (``评分：4.7``, ``价格：1354``, ``酒店设施：无烟房、早餐服务``). A
visitor who asks for a pick ("推荐一个评分4.5分以上、价格200-300元的酒店", "a plan under 100 yuan
with roaming") names no entity: a text search over the question finds whatever passage repeats
its words. `RecordIndex` reads the catalogue's records and answers such a question by matching:

- **Records**: chunks whose lines hold at least `MIN_FIELDS` ``key：value`` pairs, grouped by
  document and heading (a long record cut into several chunks is read back whole). List values
  (``、`` / ``，`` / ``;``) are split into items. A key is *numeric* when nearly all its values are
  numbers, and a *scale* (a rating) when they all lie within 0-10.
- **Constraints** stated in the text (`RecordIndex.constraints`): any record value found verbatim
  (``经济型``, ``无烟房``, a dish, a neighbouring place's name), and numeric bounds: ``4.5分以上``,
  ``100-150元``, ``20元以下``, ``免费``, ``under 100 yuan``, "rated 4+". A bound applies to the
  numeric key named just before it (``人均消费在100-150元``), else by its unit: points/stars to
  the scale keys, money to the others; with neither, to the kind's one key that is no scale
  when its numbers are too large for a scale (``票价100-150的景点``).
- **Ranking** (`RecordIndex.rank`): records of the kind asked, by how many constraints they
  satisfy (a record that misses one still ranks, after those that meet all: the visitor may
  accept a near match), then by prominence, how much other records mention them, a mention
  early in a list weighing more than one at its end (the places neighbour lists name first),
  then by name.

Built in the background with the entity index (`ConversationRetriever`); pure Python.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ._spans import longest_matches
from ._text import normalize

__all__ = ["Constraint", "Record", "RecordIndex"]

MIN_FIELDS = 3  # ``key：value`` lines that make a chunk a record rather than prose
MAX_KEY_CHARS = 12
MAX_RECORDS = 50_000
MAX_VALUE_CHARS = 40  # longer values (addresses, descriptions) are not matched verbatim
MIN_VALUE_CHARS = 2
NUMERIC_SHARE = 0.9  # a key is numeric when this share of its values are numbers
SCALE_MAX = 10.0
NAMED_SHARE = 0.5  # a field is a list of neighbours when this share of its values are names
NEAR_MISS_SHARE = 0.5  # a number just outside a stated bound counts for up to half of it
NEAR_MISS_GAP = 0.5  # ... falling to nothing at half the bound's size away

_FIELD_RE = re.compile(
    rf"^\s*([^\s:：|#>*`\-][^:：|]{{0,{MAX_KEY_CHARS - 1}}}?)\s*[:：]\s*(.*)$")
_ITEM_SPLIT_RE = re.compile(r"\s*[、，,;；/]\s*")
_NUMBER_RE = re.compile(r"^-?\d+(?:\.\d+)?$")
_QUALIFIED_RE = re.compile(r"^(.+?)\s*\(([^()]{1,20})\)$")

_NUM = r"(\d+(?:\.\d+)?)"
_SCALE_UNIT = r"(?:分(?!钟)|星|points?|stars?)"
_MONEY_UNIT = r"(?:元|块钱|块|rmb|yuan|dollars?|usd|eur)"
_UNIT = rf"({_SCALE_UNIT}|{_MONEY_UNIT})?"
_CURRENCY = r"(?:[¥￥$€]\s*)?"
_RANGE_RE = re.compile(
    rf"{_CURRENCY}{_NUM}\s*{_UNIT}\s*(?:-|~|到|至|—|–|to)\s*{_CURRENCY}{_NUM}\s*{_UNIT}"
)
_ABOVE_AFTER_RE = re.compile(
    rf"{_CURRENCY}{_NUM}\s*{_UNIT}\s*"
    r"(?:及以上|或以上|以上|起|\+|or (?:more|higher|above)|and (?:up|above))"
)
_BELOW_AFTER_RE = re.compile(
    rf"{_CURRENCY}{_NUM}\s*{_UNIT}\s*(?:及以下|或以下|以下|以内|之内|内|or (?:less|lower|below))"
)
_ABOVE_BEFORE_RE = re.compile(
    r"(?:高于|超过|不低于|至少|大于|above|over|at least|more than|rated)"
    rf"\s*{_CURRENCY}{_NUM}\s*{_UNIT}"
)
_BELOW_BEFORE_RE = re.compile(
    rf"(?:低于|不超过|不到|少于|小于|最多|under|below|at most|less than|up to)\s*{_CURRENCY}{_NUM}"
    rf"\s*{_UNIT}"
)
_EXACT_RE = re.compile(rf"{_CURRENCY}{_NUM}\s*({_SCALE_UNIT}|{_MONEY_UNIT})")
_FREE_RE = re.compile(r"免费|免票|不要钱|不收费|不收门票|没有门票|不要门票|\bfree\b")
_DASH_SPACE_RE = re.compile(r"\s*([-~])\s*")
_SPAN_RE = re.compile(
    r"(\d+(?:\.\d+)?)(?:个)?\s*[、\-~到至]\s*(\d+(?:\.\d+)?)\s*(?:个)?(小时|天|分钟)")
_ONE_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)个(小时|天|分钟)")
_UNIT_SPAN_RE = re.compile(  # "2小时到3小时", "1个小时至2个小时"
    r"(\d+(?:\.\d+)?)个?(小时|天|分钟)(?:到|至|~|-)(\d+(?:\.\d+)?)个?\2")
_KEY_WINDOW = 8  # characters between a numeric key's name and its bound
# Words a catalogue may hold as a value (a dish list's "其他") that a question never means as
# a condition.
_NOT_CONDITIONS = frozenset({
    "其他", "其它", "没有", "什么", "还有", "这个", "那个", "一下", "可以", "一个", "推荐",
    "other", "others", "none", "something", "anything",
})


@dataclass(frozen=True)
class Constraint:
    """One condition a visitor stated: a value some record field holds (`value`), or a numeric
    bound [`low`, `high`] on one of `keys`."""

    value: str | None = None
    keys: frozenset[str] = frozenset()
    low: float | None = None
    high: float | None = None

    def __str__(self) -> str:
        if self.value is not None:
            return self.value
        keys = "|".join(sorted(self.keys))
        if self.low == self.high:
            return f"{keys}={self.low:g}"
        low = "" if self.low is None else f"{self.low:g}<="
        high = "" if self.high is None else f"<={self.high:g}"
        return f"{low}{keys}{high}"

    def holds(self, number: float) -> bool:
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high)


@dataclass(frozen=True)
class Record:
    """One catalogue entry: its document, heading, bare name, kind and fields (normalised)."""

    document: str
    heading: str
    name: str
    kind: str | None
    values: dict[str, frozenset[str]]
    numbers: dict[str, float]


@dataclass
class RecordIndex:
    """The records of a knowledge base and the values and bounds they can be matched on."""

    records: list[Record] = field(default_factory=list)
    numeric_keys: frozenset[str] = frozenset()
    scale_keys: frozenset[str] = frozenset()
    prominence: list[float] = field(default_factory=list)
    # value -> record ids; values found in text through their first two characters
    _holders: dict[str, frozenset[int]] = field(default_factory=dict)
    _by_prefix: dict[str, list[tuple[int, frozenset[str]]]] = field(default_factory=dict)
    _by_kind: dict[str | None, list[int]] = field(default_factory=dict)
    _by_name: dict[str, list[int]] = field(default_factory=dict)
    _kind_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    _keys: frozenset[str] = frozenset()  # every field name
    _attributes: dict[str, frozenset[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    @classmethod
    def from_chunks(cls, chunks: Iterable[tuple[str, str, str]],
                    kinds: Iterable[str] = ()) -> RecordIndex:
        """Records from (document, heading, content) chunks in document order. `kinds` are the
        knowledge base's kind qualifiers (``EntityIndex.kinds``): a heading ``name（kind）`` gives
        the record its kind."""
        known_kinds = frozenset(kinds)
        grouped: dict[tuple[str, str], list[str]] = {}
        for document, heading, content in chunks:
            grouped.setdefault((document, heading), []).append(content)
        records: list[Record] = []
        listed: dict[str, float] = {}
        for (document, heading), parts in grouped.items():
            fields = _fields(parts)
            if len(fields) < MIN_FIELDS or not heading.strip():
                continue
            records.append(_record(document, heading, fields, known_kinds))
            for raw in fields.values():
                items = list(dict.fromkeys(x for x in _ITEM_SPLIT_RE.split(raw) if x))
                for position, item in enumerate(items):
                    listed[item] = listed.get(item, 0.0) + 1 - position / len(items)
            if len(records) >= MAX_RECORDS:
                break
        return cls._build(records, listed)

    @classmethod
    def _build(cls, records: list[Record], listed: dict[str, float]) -> RecordIndex:
        """`listed`: how much each value is listed, a mention weighing more the earlier it
        comes in its list (1 first, falling linearly to the list's end)."""
        numbers_seen: Counter[str] = Counter()
        values_seen: Counter[str] = Counter()
        maxima: dict[str, float] = {}
        for record in records:
            for key in record.values:
                values_seen[key] += 1
            for key, number in record.numbers.items():
                numbers_seen[key] += 1
                maxima[key] = max(maxima.get(key, number), number)
        numeric = frozenset(
            k for k, n in numbers_seen.items()
            if n >= MIN_FIELDS and n >= NUMERIC_SHARE * (n + values_seen[k]))
        scale = frozenset(k for k in numeric if 0 <= maxima[k] <= SCALE_MAX)
        holders: dict[str, set[int]] = {}
        by_kind: dict[str | None, list[int]] = {}
        by_name: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            by_kind.setdefault(record.kind, []).append(i)
            by_name.setdefault(record.name, []).append(i)
            for values in record.values.values():
                for value in values:
                    if MIN_VALUE_CHARS <= len(value) <= MAX_VALUE_CHARS:
                        holders.setdefault(value, set()).add(i)
        kind_keys: dict[str, set[str]] = {}
        for record in records:
            if record.kind is not None:
                kind_keys.setdefault(record.kind, set()).update(numeric & record.numbers.keys())
        # names held as a feature rather than a neighbour ("酒吧" among 酒店设施), by kind: in
        # list fields whose items are mostly not names
        named_share: dict[str, list[int]] = {}
        for record in records:
            for key, values in record.values.items():
                share = named_share.setdefault(key, [0, 0, 0])
                share[0] += sum(v in by_name for v in values)
                share[1] += len(values)
                share[2] += 1
        features = {k for k, (n, total, holders_) in named_share.items()
                    if n < NAMED_SHARE * total and total >= 2 * holders_}
        attributes: dict[str, set[str]] = {}
        for record in records:
            if record.kind is None:
                continue
            for key in features & record.values.keys():
                for value in record.values[key]:
                    if value in by_name:
                        attributes.setdefault(record.kind, set()).add(value)
        by_prefix: dict[str, set[str]] = {}
        for value in holders:
            by_prefix.setdefault(value[:2], set()).add(value)
        grouped = {
            prefix: [(n, frozenset(v for v in group if len(v) == n))
                     for n in sorted({len(v) for v in group}, reverse=True)]
            for prefix, group in by_prefix.items()
        }
        return cls(
            records=records,
            numeric_keys=numeric,
            scale_keys=scale,
            prominence=[listed.get(r.name, 0.0) for r in records],
            _holders={v: frozenset(ids) for v, ids in holders.items()},
            _by_prefix=grouped,
            _by_kind=by_kind,
            _by_name=by_name,
            _kind_keys={k: frozenset(v) for k, v in kind_keys.items()},
            _keys=frozenset(k for r in records for k in (*r.values, *r.numbers)),
            _attributes={k: frozenset(v) for k, v in attributes.items()},
        )

    # ------------------------------------------------------------------ constraints

    @property
    def value_groups(self) -> Mapping[str, Sequence[tuple[int, frozenset[str]]]]:
        """The matchable values by their first two characters: [(length, values)], longest
        first (for `_spans.longest_matches`)."""
        return self._by_prefix

    def keys_in(self, text: str) -> list[str]:
        """The field names (``酒店设施``) found in normalised `text`, longest first."""
        return sorted((k for k in self._keys if len(k) >= MIN_VALUE_CHARS and k in text),
                      key=len, reverse=True)

    def values_in(self, text: str) -> list[str]:
        """Record values found verbatim in `text`, longest first, no overlap."""
        s = _canon(text)
        return [s[a:b] for a, b in longest_matches(s, self._by_prefix, _value_edges_ok)]

    def constraints(self, text: str, *, kind: str | None = None,
                    ignore: Sequence[str] = ()) -> list[Constraint]:
        """The conditions `text` states that records (of `kind`) can be checked against.
        `ignore`: words that are no condition (the kind word itself)."""
        s = _canon(text)
        for word in ignore:
            s = s.replace(normalize(word), " ")
        out: list[Constraint] = []
        seen: set[str] = set()
        for value in self.values_in(s):
            if value not in seen and value not in _NOT_CONDITIONS \
                    and not _NUMBER_RE.match(value):
                seen.add(value)
                out.append(Constraint(value=value))
                s = s.replace(value, " ")  # "免费市内电话" is a facility, not a price
        if self.numeric_keys:
            out[:0] = self._bounds(s, self.kind_keys(kind))
        return out

    def kind_meeting(self, constraints: Sequence[Constraint]) -> str | None:
        """The one kind of record that can meet more of `constraints` than any other kind
        (a dish only restaurants list, a key only hotels have); None on a tie."""
        counts: Counter[str] = Counter()
        for kind in self._by_kind:
            if kind is None:
                continue
            keys = self.kind_keys(kind)
            for c in constraints:
                if c.value is not None:
                    holders = self._holders.get(c.value, frozenset())
                    counts[kind] += any(self.records[i].kind == kind for i in holders)
                else:
                    counts[kind] += bool(c.keys & keys)
        ranked = counts.most_common(2)
        if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
            return None
        return ranked[0][0]

    def kind_keys(self, kind: str | None) -> frozenset[str]:
        """The numeric keys records of `kind` have (all numeric keys for None)."""
        if kind is None:
            return self.numeric_keys
        return self._kind_keys.get(kind, frozenset())

    def _bounds(self, s: str, numeric: frozenset[str]) -> list[Constraint]:
        found: list[tuple[int, Constraint]] = []
        taken: list[tuple[int, int]] = []

        def claim(match: re.Match[str], low: float | None, high: float | None,
                  *units: str | None) -> None:
            if any(a < match.end() and match.start() < b for a, b in taken):
                return
            unit = next((u for u in units if u), None)
            keys = self._keys_for(s, match.start(), unit, numeric)
            if not keys and unit is None:
                keys = self._unitless_keys(s, match, low, high, numeric)
            if keys:
                taken.append((match.start(), match.end()))
                found.append((match.start(), Constraint(keys=keys, low=low, high=high)))

        for m in _RANGE_RE.finditer(s):
            a, b = float(m.group(1)), float(m.group(3))
            claim(m, min(a, b), max(a, b), m.group(4), m.group(2))
        for m in _ABOVE_AFTER_RE.finditer(s):
            claim(m, float(m.group(1)), None, m.group(2))
        for m in _BELOW_AFTER_RE.finditer(s):
            claim(m, None, float(m.group(1)), m.group(2))
        for m in _ABOVE_BEFORE_RE.finditer(s):
            claim(m, float(m.group(1)), None, m.group(2))
        for m in _BELOW_BEFORE_RE.finditer(s):
            claim(m, None, float(m.group(1)), m.group(2))
        for m in _EXACT_RE.finditer(s):
            claim(m, float(m.group(1)), float(m.group(1)), m.group(2))
        for m in _FREE_RE.finditer(s):
            claim(m, 0.0, 0.0, "元")
        return [c for _, c in sorted(found, key=lambda x: x[0])]

    def _unitless_keys(self, s: str, match: re.Match[str], low: float | None,
                       high: float | None, numeric: frozenset[str]) -> frozenset[str]:
        """A bound with neither unit nor key ("票价100-150的景点"): the one numeric key of the
        kind that is no scale, when its numbers are too large for a scale and it is no part
        of a time or a phone number."""
        amounts = [x for x in (low, high) if x is not None]
        keys = numeric - self.scale_keys
        if len(keys) != 1 or not amounts or min(amounts) <= SCALE_MAX:
            return frozenset()
        before = s[match.start() - 1 : match.start()]
        after = s[match.end() : match.end() + 1]
        if re.match(r"[\d:.]", before) or re.match(r"[\d:.]", after):
            return frozenset()
        return keys

    def _keys_for(self, s: str, start: int, unit: str | None, numeric: frozenset[str]
                  ) -> frozenset[str]:
        """The numeric keys (of `numeric`) a bound at `start` is about: a key named just
        before it, else the keys its unit fits (points and stars: scales; money: the others)."""
        before = s[max(0, start - _KEY_WINDOW - MAX_KEY_CHARS) : start]
        named = [(before.rfind(k), k) for k in numeric if k in before]
        named = [(pos, k) for pos, k in named if len(before) - pos - len(k) <= _KEY_WINDOW]
        scale = unit is not None and re.fullmatch(_SCALE_UNIT, unit) is not None
        money = unit is not None and not scale
        if named:
            last = max(pos for pos, _ in named)
            keys = {k for pos, k in named if pos == last}
            if (scale and keys <= self.scale_keys) or (money and not keys & self.scale_keys) \
                    or unit is None:
                return frozenset(keys)
        if scale:
            return numeric & self.scale_keys
        if money:
            return numeric - self.scale_keys
        return frozenset()

    # ------------------------------------------------------------------ ranking

    def is_feature(self, name: str, kind: str) -> bool:
        """Whether the record name `name` is also a feature records of `kind` list ("酒吧"
        among a hotel's facilities): in a question about such a record, it is no subject."""
        return name in self._attributes.get(kind, frozenset())

    def is_name(self, value: str) -> bool:
        """Whether `value` is the name of a record (a neighbour named as a condition)."""
        return value in self._by_name

    def kind_records(self, kind: str | None) -> list[int]:
        if kind is None:
            return list(range(len(self.records)))
        return self._by_kind.get(kind, [])

    def satisfies(self, i: int, constraint: Constraint) -> bool:
        record = self.records[i]
        if constraint.value is not None:
            return i in self._holders.get(constraint.value, frozenset())
        return any(key in record.numbers and constraint.holds(record.numbers[key])
                   for key in constraint.keys)

    def _closeness(self, i: int, bound: Constraint) -> float:
        """1 at the bound, falling to 0 at `NEAR_MISS_GAP` of its size away."""
        best = 0.0
        for key in bound.keys:
            number = self.records[i].numbers.get(key)
            if number is None:
                continue
            edge = bound.low if bound.low is not None and number < bound.low else bound.high
            if edge is None:
                continue
            gap = abs(number - edge) / max(abs(edge), 1.0)
            best = max(best, 1 - gap / NEAR_MISS_GAP)
        return best

    def related(self, i: int, name: str) -> bool:
        """Whether record `i` and the entity `name` mention each other (neighbours)."""
        if i in self._holders.get(name, frozenset()):
            return True
        mine = self.records[i].name
        return any(i2 in self._holders.get(mine, frozenset())
                   for i2 in self._by_name.get(name, ()))

    def rank(self, constraints: Sequence[Constraint], *, kind: str | None,
             related_to: str | None = None, among: Sequence[str] = (),
             limit: int = 10) -> list[Record]:
        """Records of `kind` best matching `constraints` (and mentioning or mentioned by
        `related_to`), at most `limit`. Each condition met counts by how selective it is
        (log(candidates / records meeting it): a rare dish outweighs a common price band, so
        a record that meets the specific wish but not the broad one still ranks high), and a
        number just outside a bound counts for part of it (no 5-point hotel: the 4.8 one);
        ties go to prominence, then name. Records meeting none are left out, except with
        `among`: only the records of these names, all of them ("which of these two has ...")."""
        candidates = self.kind_records(kind)
        if among:
            wanted = set(among)
            candidates = [i for i in candidates if self.records[i].name in wanted]
        allowed = set(candidates) if kind is not None else None
        scores: dict[int, float] = {}
        checks: list[set[int]] = []
        for constraint in constraints:
            if constraint.value is not None:
                holders = self._holders.get(constraint.value, frozenset())
                checks.append(set(holders) if allowed is None else set(holders) & allowed)
            else:
                checks.append({i for i in candidates if self.satisfies(i, constraint)})
        if related_to:
            checks.append({i for i in candidates if self.related(i, related_to)})
        total = max(len(candidates), 1)
        for n, met in enumerate(checks):
            weight = math.log(1 + total / max(len(met), 1))
            for i in met:
                scores[i] = scores.get(i, 0.0) + weight
            bound = constraints[n] if n < len(constraints) else None
            if bound is None or bound.value is not None:
                continue
            for i in candidates:  # a near miss counts for part of it
                if i not in met:
                    closeness = self._closeness(i, bound)
                    if closeness > 0:
                        scores[i] = scores.get(i, 0.0) + NEAR_MISS_SHARE * weight * closeness
        if among:  # "which of these two": each of them is an answer, those meeting most first
            for i in candidates:
                scores.setdefault(i, 0.0)
        best = sorted(scores, key=lambda i: (-round(scores[i], 9), -self.prominence[i],
                                             self.records[i].name))
        return [self.records[i] for i in best[:limit]]


def _value_edges_ok(s: str, start: int, stop: int) -> bool:
    """A value is never read inside a longer number ("3小时" is no value of "0.3小时")."""
    return not (start and s[start].isdigit() and (s[start - 1].isdigit() or s[start - 1] == "."))


def _canon(text: str) -> str:
    """Normalised text with no spaces around dashes and tildes (``1小时 - 2小时``), durations
    written one way (``2、3个小时``, ``2-3小时``, ``2小时到3小时``: ``2小时-3小时``;
    ``1个小时``: ``1小时``)."""
    text = _DASH_SPACE_RE.sub(r"\1", normalize(text))
    text = _UNIT_SPAN_RE.sub(r"\1\2-\3\2", text)
    text = _SPAN_RE.sub(r"\1\3-\2\3", text)
    return _ONE_DURATION_RE.sub(r"\1\2", text)


def _fields(parts: Sequence[str]) -> dict[str, str]:
    """``key：value`` lines of a record's chunks; a chunk that starts inside a value (a long
    list cut in two) continues it."""
    fields: dict[str, str] = {}
    last: str | None = None
    for part in parts:
        for n, line in enumerate(part.splitlines()):
            if not line.strip():
                continue
            match = _FIELD_RE.match(line)
            if match and match.group(2).strip():
                last = normalize(match.group(1))
                fields.setdefault(last, _canon(match.group(2)))
            elif n == 0 and last is not None:
                fields[last] += _canon(line)
            else:
                last = None
    return fields


def _record(document: str, heading: str, fields: dict[str, str],
            kinds: frozenset[str]) -> Record:
    title = normalize(heading.split(" > ")[-1])
    name, kind = title, None
    match = _QUALIFIED_RE.match(title)
    if match and match.group(2).strip() in kinds:
        name, kind = match.group(1).strip(), match.group(2).strip()
    values: dict[str, frozenset[str]] = {}
    numbers: dict[str, float] = {}
    for key, raw in fields.items():
        if _NUMBER_RE.match(raw):
            numbers[key] = float(raw)
            continue
        items = {x for x in _ITEM_SPLIT_RE.split(raw) if x}
        items.add(raw)
        values[key] = frozenset(items)
    return Record(document=document, heading=heading, name=name, kind=kind, values=values,
                  numbers=numbers)
