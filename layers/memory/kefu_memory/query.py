"""The knowledge-search query of a reply, built from the conversation the product has.

A visitor's follow-up rarely names what it is about: 「它几点开门？」, "and the refund?". Searching
with the last message alone finds whatever passage mentions opening hours. This module builds
the query from what the product holds at reply time, the recent turns (the visitor's and the
assistant's own), in about a millisecond:

- **Entities** are the knowledge base's own titles: every heading segment of the tenant's chunks
  (a Markdown document's title and section names, a FAQ question), found verbatim in the turns
  by an index keyed on their first two characters (`EntityIndex`). A trailing qualifier in
  brackets (``故宫（景点）``, ``Pro X (headphones)``) also gives the bare name and a *kind*.
- **Focus**: the entity the conversation is about, tracked turn by turn. A visitor turn that
  names an entity makes it the focus; an assistant turn that introduces exactly one new entity
  (a recommendation) moves the focus to it, except when it answers a question about what is
  near or around the focus (``周边有什么餐馆？``, "what else is nearby?") or about the focus
  itself (``它的地址是？``): those names are its neighbours or attributes, not a new subject.
  Of several new entities, the one of the kind the visitor asked for is taken. When the
  question asks about a kind (``这个景点``) the focus kind does not match, the latest entity of
  that kind is used, except in a question about what is near (``附近有餐馆么？``), whose kind
  word is the neighbours' kind.
- **Requests by properties** ("推荐一个评分4.5分以上、价格200-300元的酒店"): when the question
  asks for a thing of a kind by conditions rather than naming it, the catalogue records that
  meet them (`records.RecordIndex`) are searched first (`SearchQuery.documents`). The kind
  asked for is the kind word read as the request's object (``…的酒店``, ``一家酒店``), not one
  the visitor is done with (``去完景点``).
- **Query**: the question itself when it names an entity; else the question plus the focus;
  else, with no entity anywhere, the question plus the previous visitor turn (the topic).
  `SearchQuery.entities` lists the focus first, then earlier subjects and the names of the last
  turn: `KnowledgeBase.search(prefer=...)` puts passages under those titles first.

With a language model, `condense_query` asks for a standalone question (one short call) and
falls back to the rule-based query on failure, a malformed answer or the deadline. The model is
injected as ``async complete(prompt) -> str``: this package never imports an engine.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ._models import Turn
from ._spans import longest_matches, normalized_with_offsets, tight_dashes
from ._text import normalize
from .records import Record, RecordIndex

__all__ = [
    "CondenseFn",
    "EntityIndex",
    "SearchQuery",
    "build_query",
    "condense_prompt",
    "condense_query",
    "heading_keys",
    "heading_names",
]

logger = logging.getLogger("kefu.memory.query")

CondenseFn = Callable[[str], Awaitable[str]]

_QUALIFIED_RE = re.compile(r"^(.+?)\s*[（(]([^（）()]{1,20})[)）]$")
_LATIN_EDGE_RE = re.compile(r"[a-z0-9]")
# A visitor turn asking what is near or around the focus: the names in the reply are the
# focus's neighbours or attributes, not a new subject (unless the visitor asked for a pick).
_NEAR_RE = re.compile(r"周边|附近|周围|旁边|边上|\b(?:nearby|around|near)\b")
_LIST_RE = re.compile(
    r"有什么|有哪些|有啥|都有|还有|别的|其他|其它|\b(?:what|which|any|other|else)\b"
)
_PICK_RE = re.compile(r"找|推荐|建议|安排|订|\b(?:recommend|find|suggest|book|pick)\b")
_OTHER_RE = re.compile(r"别的|其他|其它|另外|另一|换一|\b(?:another|other|else)\b")
_DETERMINER_RE = re.compile(r"(?:这|那|该|此)[个家间座所条款位]?$|\b(?:this|that|the)\s*$")
# Before a kind word: it is the object of a request ("...的餐馆", "一家酒店", "a hotel"); or a
# thing done with ("去完景点", "找好酒店以后").
_OBJECT_BEFORE_RE = re.compile(
    r"(?:(?<![别其])的|[一个家间座所处])\s*$|\b(?:a|an|any|some|another)\s+$")
_DONE_BEFORE_RE = re.compile(r"(?:完|好|过)$")
_DONE_AFTER_RE = re.compile(r"(?:以后|之后|后)")
MAX_NAME_CHARS = 60
MAX_TITLE_DOCUMENTS = 5  # a heading shared by more documents ("概述", "FAQ") is no entity
MIN_KIND_TITLES = 3  # a bracketed qualifier is a kind when at least this many titles carry it
MAX_TOPIC_CHARS = 200
MAX_CONDENSED_CHARS = 300


@dataclass(frozen=True)
class SearchQuery:
    """What the knowledge search is asked: `text` for the keyword and vector sides, and the
    entity names whose passages go first (`entities`, best first)."""

    text: str
    entities: tuple[str, ...] = ()
    source: Literal["question", "conversation", "condensed", "records"] = "question"
    documents: tuple[str, ...] = ()  # catalogue records matched, best first: searched first


def heading_names(headings: Iterable[str]) -> list[str]:
    """The title segments of chunk headings (``退货政策 > 退款时效`` gives both parts)."""
    out: dict[str, None] = {}
    for heading in headings:
        for part in heading.split(" > "):
            part = part.strip()
            if part:
                out[part] = None
    return list(out)


def _key(name: str) -> str:
    return normalize(name)


def heading_keys(heading: str) -> set[str]:
    """The entity names a chunk heading stands for: each segment, normalised, and its bare
    name without a bracketed qualifier (what `EntityIndex.find` returns for it)."""
    keys: set[str] = set()
    for part in heading_names([heading]):
        key = _key(part)
        keys.add(key)
        match = _QUALIFIED_RE.match(key)
        if match:
            keys.add(match.group(1).strip())
    return keys


@dataclass
class EntityIndex:
    """Entity names of a knowledge base, found verbatim in text in time linear in its length."""

    # first two characters -> [(length, names of that length)], longest first
    _by_prefix: dict[str, list[tuple[int, frozenset[str]]]] = field(default_factory=dict)
    _kinds: dict[str, frozenset[str]] = field(default_factory=dict)
    _qualified: dict[tuple[str, str], str] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset()
    size: int = 0
    records: RecordIndex | None = None  # the catalogue records (`ConversationRetriever`)

    @classmethod
    def from_titles(cls, titles: Iterable[str], *, documents: Iterable[str] | None = None
                    ) -> EntityIndex:
        """Index titles (heading segments). `documents`, parallel to `titles`, names the
        document of each: a title found in more than `MAX_TITLE_DOCUMENTS` documents is a
        generic heading, not an entity."""
        titles = list(titles)
        docs = list(documents) if documents is not None else [str(i) for i in range(len(titles))]
        spread: dict[str, set[str]] = {}
        for title, doc in zip(titles, docs, strict=True):
            spread.setdefault(_key(title), set()).add(doc)
        names: set[str] = set()
        name_kinds: dict[str, set[str]] = {}
        qualified: dict[tuple[str, str], str] = {}
        kind_counts: Counter[str] = Counter()
        for key, where in spread.items():
            if len(where) > MAX_TITLE_DOCUMENTS or len(key) > MAX_NAME_CHARS:
                continue
            names.add(key)
            match = _QUALIFIED_RE.match(key)
            if match:
                base, kind = match.group(1).strip(), match.group(2).strip()
                names.add(base)
                name_kinds.setdefault(base, set()).add(kind)
                name_kinds.setdefault(key, set()).add(kind)
                qualified[(base, kind)] = key
                kind_counts[kind] += 1
        by_prefix: dict[str, set[str]] = {}
        for name in names:
            if len(name) >= 2 and not (name.isascii() and len(name) < 3):
                by_prefix.setdefault(name[:2], set()).add(name)
        kinds = frozenset(k for k, n in kind_counts.items() if n >= MIN_KIND_TITLES)
        grouped: dict[str, list[tuple[int, frozenset[str]]]] = {}
        for prefix, group in by_prefix.items():
            lengths = sorted({len(n) for n in group}, reverse=True)
            grouped[prefix] = [(n, frozenset(x for x in group if len(x) == n)) for n in lengths]
        return cls(
            _by_prefix=grouped,
            _kinds={n: frozenset(k & kinds) for n, k in name_kinds.items() if k & kinds},
            _qualified={nk: key for nk, key in qualified.items() if nk[1] in kinds},
            kinds=kinds,
            size=sum(len(v) for v in by_prefix.values()),
        )

    @classmethod
    def from_headings(cls, pairs: Iterable[tuple[str, str]]) -> EntityIndex:
        """Index the heading segments of (document, heading) pairs (`KnowledgeBase.titles`).

        A section heading found under several parents ("Refund" under each product) names an
        aspect, not a thing: it is left out, so a follow-up naming it still carries the
        subject of the conversation."""
        titles: list[str] = []
        documents: list[str] = []
        parents: dict[str, set[tuple[str, str]]] = {}
        for document, heading in pairs:
            parts = [p.strip() for p in heading.split(" > ") if p.strip()]
            for depth, part in enumerate(parts):
                if depth:
                    parents.setdefault(_key(part), set()).add((document, _key(parts[depth - 1])))
                titles.append(part)
                documents.append(document)
        aspects = {name for name, where in parents.items() if len(where) > 1}
        kept = [(t, d) for t, d in zip(titles, documents, strict=True) if _key(t) not in aspects]
        return cls.from_titles([t for t, _ in kept], documents=[d for _, d in kept])

    def __len__(self) -> int:
        return self.size

    def find(self, text: str) -> list[str]:
        """Entity names in `text`, in order of appearance, longest match first, no overlap."""
        s = normalize(text)
        return [s[a:b] for a, b in longest_matches(s, self._by_prefix, self._edges_ok)]

    def terms_in(self, text: str) -> list[str]:
        """The entity names and catalogue values (`records`: dishes, types, neighbours' names)
        found in `text`, spelt as `text` writes them, each once, in order of appearance: the
        words of a conversation a compressed history keeps whole
        (``kefu_llm.compress_history(key_terms=...)``)."""
        s, offsets = normalized_with_offsets(text)
        found = [(offsets[a], offsets[b - 1] + 1)
                 for a, b in longest_matches(s, self._by_prefix, self._edges_ok)]
        if self.records is not None:
            tight, where = tight_dashes(s, offsets)
            found += [(where[a], where[b - 1] + 1)
                      for a, b in longest_matches(tight, self.records.value_groups)]
        return list(dict.fromkeys(text[a:b] for a, b in sorted(found)))

    @staticmethod
    def _edges_ok(s: str, start: int, stop: int) -> bool:
        """Latin names match whole words only ("tv" is not in "tvs")."""
        if start > 0 and _LATIN_EDGE_RE.match(s[start]) and _LATIN_EDGE_RE.match(s[start - 1]):
            return False
        return not (stop < len(s) and _LATIN_EDGE_RE.match(s[stop - 1])
                    and _LATIN_EDGE_RE.match(s[stop]))

    def kinds_of(self, name: str) -> frozenset[str]:
        return self._kinds.get(name, frozenset())

    def qualify(self, names: Sequence[str], kind: str | None) -> list[str]:
        """`names`, each preceded by its title of `kind` when it has one ("故宫" asked as a
        景点 -> "故宫(景点)", "故宫"): same-named entries of other kinds come after it."""
        out: list[str] = []
        for name in names:
            full = self._qualified.get((name, kind)) if kind else None
            out.extend([full, name] if full else [name])
        return list(dict.fromkeys(out))

    def kind_asked(self, question: str) -> str | None:
        """The kind a question is about (``这个景点的地址`` -> 景点): a kind word after a
        determiner or before 的 wins, else the first kind word."""
        s = normalize(question)
        found = self.kind_words(s)
        for pos, kind, _ in found:
            if _DETERMINER_RE.search(s[:pos]) or s[pos + len(kind) : pos + len(kind) + 1] == "的":
                return kind
        return found[0][1] if found else None

    def kind_wanted(self, question: str) -> tuple[str | None, bool]:
        """The kind a request for a pick asks for, and whether its word reads as the object of
        a request (`kind_words`): "去完景点，帮我找一家...的酒店" asks for a 酒店, although
        the 景点 comes first; the first kind word on a tie."""
        found = self.kind_words(normalize(question))
        if not found:
            return None, False
        best = max(score for _, _, score in found)
        return next(kind for _, kind, score in found if score == best), best > 0

    def kind_words(self, s: str) -> list[tuple[int, str, int]]:
        """Every kind word of normalised text `s`: (position, kind, score), in order. The score
        tells how much it reads as the thing asked for: +1 after an attributive 的 or a
        classifier ("...的餐馆", "一家酒店", "a hotel"), -1 after a determiner ("这个酒店")
        or when it is a thing done with ("去完景点", "找好酒店以后"), else 0."""
        found: list[tuple[int, str, int]] = []
        for kind in self.kinds:
            pos = s.find(kind)
            while pos >= 0:
                before, after = s[:pos], s[pos + len(kind) :]
                score = 1 if _OBJECT_BEFORE_RE.search(before) else 0
                if _DETERMINER_RE.search(before) or _DONE_BEFORE_RE.search(before) \
                        or _DONE_AFTER_RE.match(after):
                    score = -1
                found.append((pos, kind, score))
                pos = s.find(kind, pos + len(kind))
        return sorted(found)


@dataclass
class _Focus:
    current: str | None = None
    earlier: list[str] = field(default_factory=list)
    by_kind: dict[str, str] = field(default_factory=dict)
    kind_of: dict[str, str] = field(default_factory=dict)  # the kind it was brought up as

    def move(self, name: str, index: EntityIndex, asked: str | None) -> None:
        if self.current is not None and self.current != name:
            self.earlier.insert(0, self.current)
        self.current = name
        kinds = index.kinds_of(name)
        for kind in kinds:
            self.by_kind[kind] = name
        if asked in kinds:
            self.kind_of[name] = asked


def _track(history: Sequence[Turn], index: EntityIndex) -> _Focus:
    focus = _Focus()
    about_focus = False
    asked: list[str] = []
    asked_kind: str | None = None
    for turn in history:
        if turn.role == "system":
            continue
        names = list(dict.fromkeys(index.find(turn.content)))
        if turn.role == "user":
            text = normalize(turn.content)
            plain = _without(text, names)
            asked = names
            asked_kind = index.kind_asked(plain) if index.kinds else None
            wanted, as_object = index.kind_wanted(plain) if index.kinds else (None, False)
            wanted_kind = wanted if as_object else asked_kind
            near = bool(_NEAR_RE.search(text))
            # "周边有什么酒店？", "它的地址是？": the reply's names are the focus's neighbours
            # or attributes (an address naming a street), not a new subject
            about_focus = not _PICK_RE.search(text) and (
                (near and bool(_LIST_RE.search(text)))
                or (not names and not near and not as_object and not _OTHER_RE.search(text)
                    and _refers_to_focus(plain, asked_kind)))
            if names:
                focus.move(names[0], index, asked_kind)
            continue
        new = [n for n in names if n != focus.current and n not in asked]
        if focus.current is None and names:
            focus.move(names[0], index, asked_kind)
        elif about_focus:
            continue
        elif len(new) == 1:
            focus.move(new[0], index, asked_kind)
        elif wanted_kind is not None:
            # "推荐您去静之湖酒店，周边还有个草莓博览园": the one of the kind asked for
            of_kind = [n for n in new if wanted_kind in index.kinds_of(n)]
            if len(of_kind) == 1:
                focus.move(of_kind[0], index, wanted_kind)
    return focus


def _refers_to_focus(text: str, kind: str | None) -> bool:
    """Whether a visitor turn points at the one being discussed (它, 这家, 这个景点, 酒店的)."""
    return bool(_PRONOUN_RE.search(text)) or (kind is not None and _refers(text, kind))


def _without(text: str, names: Sequence[str]) -> str:
    for name in names:  # a kind word inside a name ("如家快捷酒店") asks nothing
        text = text.replace(name, " ")
    return text


def _kind_for(name: str, index: EntityIndex, *hints: str | None) -> str | None:
    """Which of the name's kinds is meant: the first hint it has, else a kind word inside the
    name itself ("如家快捷酒店" is a 酒店 rather than the metro entry of the same name)."""
    kinds = index.kinds_of(name)
    for hint in hints:
        if hint in kinds:
            return hint
    inside = [k for k in kinds if k in name]
    return inside[0] if len(inside) == 1 else None


def build_query(
    question: str,
    history: Sequence[Turn],
    entities: EntityIndex | None = None,
    *,
    records: RecordIndex | None = None,
    max_entities: int = 4,
    max_records: int = 5,
) -> SearchQuery:
    """The rule-based search query for `question` after `history` (oldest first, without the
    question). Pure and fast: about a millisecond for a long conversation."""
    question = question.strip()
    index = entities or EntityIndex()
    named = list(dict.fromkeys(index.find(question)))
    kind = index.kind_asked(_without(normalize(question), named)) if index.kinds else None
    if kind and named and records is not None:
        # "这家酒店有酒吧吗？": a name that is a feature of the kind asked about is no subject
        named = [n for n in named if kind in index.kinds_of(n) or not records.is_feature(n, kind)]
    if records is not None and len(records):
        picked = _pick(question, history, index, records, named, max_records)
        if picked is not None:
            return picked
    if named:
        preferred = index.qualify(named[:max_entities], _kind_for(named[0], index, kind))
        return SearchQuery(text=question, entities=tuple(preferred))
    turns = [t for t in history if t.role != "system" and t.content.strip()]
    if not turns:
        return SearchQuery(text=question)
    focus = _track(turns, index) if len(index) else _Focus()
    subject = focus.current
    text = normalize(question)
    if kind and _NEAR_RE.search(text) and not _refers(_without(text, named), kind):
        kind = None  # "周边有什么餐馆？": the kind of its neighbours, not of the subject
    if subject is not None and kind and kind not in index.kinds_of(subject):
        if kind not in focus.by_kind:
            # Asking for another kind of thing than anything named so far ("a restaurant
            # near it"): the subject helps the search but its passages are not the answer.
            return SearchQuery(text=f"{question} {subject}", source="conversation")
        subject = focus.by_kind[kind]
    if subject is None:
        previous = next((t.content for t in reversed(turns) if t.role == "user"), "")
        if not previous:
            return SearchQuery(text=question)
        return SearchQuery(text=f"{question} {previous[:MAX_TOPIC_CHARS]}",
                           source="conversation")
    last = index.find(turns[-1].content)
    preferred = list(dict.fromkeys([subject, *focus.earlier, *last]))[:max_entities]
    preferred = index.qualify(preferred,
                              _kind_for(subject, index, kind, focus.kind_of.get(subject)))
    return SearchQuery(text=f"{question} {subject}", entities=tuple(preferred),
                       source="conversation")


# A request for one thing by its properties ("推荐一家…的酒店", "any hotel under 300 yuan?").
_ASK_ONE_RE = re.compile(
    r"找|推荐|建议|安排|介绍|挑选|物色|订|预约|预定|有没有|有什么|有哪些|有啥|哪个|哪家|哪些|"
    r"哪里|哪儿|去哪|想去|想住|想吃|"
    r"\b(?:recommend|find|suggest|book|pick|any|which|looking for)\b"
)


_PRONOUN_RE = re.compile(
    r"它|他家|她家|这家|那家|这里|那里|\b(?:it|its|they|their|this one|that one)\b")
_AMONG_RE = re.compile(r"这两|这几|这些|其中|哪个|哪家|\b(?:which of|of them|of these)\b")


def _pick(question: str, history: Sequence[Turn], index: EntityIndex, records: RecordIndex,
          named: Sequence[str], limit: int) -> SearchQuery | None:
    """A request for a thing by its properties, answered by the catalogue records that match
    them; None when the question is not one (it names the thing, or asks about one already
    being discussed). A request word (推荐, 找, any...) or a kind word read as its object
    ("...评分4.5分以上的餐馆就行", "有...的酒店吗") makes it a request."""
    text = normalize(question)
    # a kind word inside a field's name ("酒店设施") asks for nothing
    plain = _without(text, [*named, *records.keys_in(text)])
    kind, as_object = index.kind_wanted(plain) if index.kinds else (None, False)
    if not as_object:
        kind = index.kind_asked(plain) if index.kinds else None
    if kind is not None and (any(kind in index.kinds_of(n) for n in named)
                             or _about_one(plain, kind)):
        return None
    if not as_object and not _ASK_ONE_RE.search(text):
        return None
    cue = _ASK_ONE_RE.sub(" ", text)
    if kind is None and index.kinds:
        # No kind word ("a place I can spend 3 hours in"): the only kind whose records can
        # meet the conditions stated, if there is one.
        if _PRONOUN_RE.search(text):
            return None  # "他家有没有叫醒服务？" asks about the one being discussed
        kind = records.kind_meeting(records.constraints(cue))
        if kind is None or any(kind in index.kinds_of(n) for n in named):
            return None
    constraints = records.constraints(cue, kind=kind, ignore=[kind] if kind else [])
    if not any(c.value is None or not records.is_name(c.value) for c in constraints):
        return None  # no property asked for: "a restaurant near it?" is the subject's record
    related = None
    if _NEAR_RE.search(text) and not named:
        turns = [t for t in history if t.role != "system" and t.content.strip()]
        related = _track(turns, index).current if turns and len(index) else None
    among: list[str] = []
    if _AMONG_RE.search(text):
        # "这两家哪个有…", "which of them ...": only the ones just listed
        last = next((t.content for t in reversed(history) if t.role == "assistant"), "")
        among = [n for n in dict.fromkeys(index.find(last))
                 if kind is None or kind in index.kinds_of(n)]
        if len(among) < 2:
            among = []
    found = records.rank(constraints, kind=kind, related_to=related, among=among, limit=limit)
    if not found:
        return None
    names = _record_names(found)
    return SearchQuery(text=question, entities=names, source="records",
                       documents=tuple(dict.fromkeys(r.document for r in found)))


def _about_one(text: str, kind: str) -> bool:
    """Whether the kind word refers to one already named (``这家酒店``, ``酒店的地址``)."""
    pos = text.find(kind)
    while pos >= 0:
        after = text[pos + len(kind) : pos + len(kind) + 1]
        if not _DETERMINER_RE.search(text[:pos]) and after != "的":
            return False
        pos = text.find(kind, pos + 1)
    return True


def _refers(text: str, kind: str) -> bool:
    """Whether a kind word points at one being discussed (``这个餐馆``, ``餐馆的``) somewhere."""
    pos = text.find(kind)
    while pos >= 0:
        if _DETERMINER_RE.search(text[:pos]) or text[pos + len(kind) : pos + len(kind) + 1] == "的":
            return True
        pos = text.find(kind, pos + 1)
    return False


def _record_names(found: Sequence[Record]) -> tuple[str, ...]:
    out: list[str] = []
    for record in found:
        out.append(f"{record.name}({record.kind})" if record.kind else record.name)
    return tuple(dict.fromkeys(out))


_CONDENSE_INSTRUCTION = (
    "Rewrite the customer's last message as one standalone search query for the company's "
    "knowledge base: name the product, place or topic it refers to (taken from the "
    "conversation), keep the customer's language, add nothing else. Answer with the query "
    "only.\n\n"
)


def condense_prompt(question: str, history: Sequence[Turn], *, max_turns: int = 6,
                    max_chars: int = 300) -> str:
    """The prompt for a standalone question: the last turns (each cut to `max_chars`)."""
    lines = []
    for turn in [t for t in history if t.role != "system"][-max_turns:]:
        who = "Customer" if turn.role == "user" else "Assistant"
        lines.append(f"{who}: {turn.content.strip()[:max_chars]}")
    lines.append(f"Customer (last message): {question.strip()[:max_chars]}")
    return _CONDENSE_INSTRUCTION + "\n".join(lines) + "\nQuery:"


async def condense_query(
    question: str,
    history: Sequence[Turn],
    *,
    complete: CondenseFn,
    fallback: SearchQuery,
    entities: EntityIndex | None = None,
    timeout_s: float,
) -> SearchQuery:
    """A standalone question from a language model, within `timeout_s`; `fallback` (the
    rule-based query) on timeout, failure or an empty or oversized answer. The model's query is
    searched together with the question, and entities it names lead the preference."""
    try:
        raw = await asyncio.wait_for(complete(condense_prompt(question, history)), timeout_s)
    except TimeoutError:
        logger.info("query condenser missed its deadline")
        return fallback
    except Exception as exc:  # an engine failure must never cost the reply its knowledge
        logger.warning("query condenser failed", extra={"error": type(exc).__name__})
        return fallback
    text = " ".join(raw.strip().strip("\"'“”「」").split())
    if text.lower().startswith("query:"):
        text = text[6:].strip()
    if not text or len(text) > MAX_CONDENSED_CHARS:
        return fallback
    named = list(dict.fromkeys(entities.find(text))) if entities is not None else []
    preferred = tuple(dict.fromkeys([*named, *fallback.entities]))[:4]
    return SearchQuery(text=f"{text} {question.strip()}", entities=preferred, source="condensed",
                       documents=fallback.documents)
