"""Recall: query every memory source in parallel under one deadline and merge the results.

Each source is a zero-argument coroutine function returning memory items (`MemoryItem` or
plain strings). All sources start at once (`gather_within`); at the deadline the ones still
running are cancelled and reported in `missing` (never awaited), failures are reported too.
The sections that arrived are de-duplicated in precedence order (CRM > long-term > short-term
by default: an item whose key or text an earlier source already gave is dropped) and rendered
into one prompt section that fits a token budget (`merge`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from ._gather import Gathered, gather_within
from ._models import MemoryItem, RecallResult, RecallSection
from ._text import estimate_tokens, normalize

__all__ = [
    "DEFAULT_PRECEDENCE", "DEFAULT_TITLES", "MergeOptions", "SourceFn", "items_of", "merge",
    "recall", "render",
]

logger = logging.getLogger("kefu.memory.recall")

SourceFn = Callable[[], Awaitable[Sequence[MemoryItem | str]]]

DEFAULT_PRECEDENCE: tuple[str, ...] = ("crm", "long_term", "short_term")
DEFAULT_TITLES: dict[str, str] = {
    "crm": "Customer record (CRM)",
    "long_term": "Remembered about this customer",
    "short_term": "Recent conversation",
    "knowledge": "Knowledge base",
}
_PUNCT_RE = re.compile(r"[\W_]+", re.UNICODE)


def _dedupe_text(text: str) -> str:
    return _PUNCT_RE.sub("", normalize(text))


def _as_items(value: Sequence[MemoryItem | str]) -> list[MemoryItem]:
    if isinstance(value, str):
        return [MemoryItem(text=value)] if value.strip() else []
    out: list[MemoryItem] = []
    for item in value:
        if isinstance(item, MemoryItem):
            out.append(item)
        elif isinstance(item, str):
            out.append(MemoryItem(text=item))
        else:
            raise TypeError(f"a recall source returned {type(item).__name__}")
    return [i for i in out if i.text.strip()]


def items_of(sources: Mapping[str, SourceFn]) -> dict[str, Awaitable[list[MemoryItem]]]:
    """The awaitables ``gather_within`` runs for recall sources: each source's memory items."""

    async def items(fn: SourceFn) -> list[MemoryItem]:
        return _as_items(await fn())

    return {name: items(fn) for name, fn in sources.items()}


class MergeOptions(TypedDict, total=False):
    """How recalled sections are merged and rendered (defaults in brackets): ``precedence``
    [``DEFAULT_PRECEDENCE``], ``token_budget`` [1200], ``count_tokens`` [one token per CJK
    character, one per four others], ``titles`` [``DEFAULT_TITLES``], ``keep_latest``
    [``("short_term",)``: sections that keep their newest items], ``heading``
    [``"## Memory"``]."""

    precedence: Sequence[str]
    token_budget: int
    count_tokens: Callable[[str], int]
    titles: Mapping[str, str] | None
    keep_latest: Sequence[str]
    heading: str


async def recall(
    *, sources: Mapping[str, SourceFn], deadline_s: float = 0.2,
    **options: Unpack[MergeOptions],
) -> RecallResult:
    """Run `sources` concurrently; keep what arrives within `deadline_s`; merge and render
    (`options`: `MergeOptions`)."""
    gathered = await gather_within(deadline_s, **items_of(sources))
    return merge(gathered, **options)


def merge(
    gathered: Gathered[Any], *, sources: Sequence[str] | None = None,
    **options: Unpack[MergeOptions],
) -> RecallResult:
    """Merge and render the recall sources ``gathered`` (by ``items_of``); ``sources`` names
    them when the same ``gather_within`` ran other awaitables too (default: all of them)."""
    precedence = options.get("precedence", DEFAULT_PRECEDENCE)
    count_tokens = options.get("count_tokens", estimate_tokens)
    keep_latest = options.get("keep_latest", ("short_term",))
    names = list(gathered.names if sources is None else sources)
    late = [n for n in gathered.late if n in names]
    failed = [n for n in gathered.failed if n in names]
    for name in failed:
        logger.warning("recall source failed",
                       extra={"source": name, "error": type(gathered.failed[name]).__name__})
    if late:
        logger.warning("recall sources missed the deadline", extra={"sources": late})
    arrived: dict[str, list[MemoryItem]] = {n: gathered.values[n] for n in names
                                            if n in gathered.values}
    order = [n for n in precedence if n in arrived] + [n for n in arrived if n not in precedence]
    section_titles = {**DEFAULT_TITLES, **(options.get("titles") or {})}
    seen_keys: set[str] = set()
    seen_texts: set[str] = set()
    sections: list[RecallSection] = []
    for name in order:
        kept: list[MemoryItem] = []
        for item in arrived[name]:
            text_key = _dedupe_text(item.text)
            if (item.key and item.key in seen_keys) or text_key in seen_texts:
                continue
            if item.key:
                seen_keys.add(item.key)
            seen_texts.add(text_key)
            kept.append(item)
        sections.append(
            RecallSection(
                source=name,
                title=section_titles.get(name, name.replace("_", " ").capitalize()),
                items=kept,
                elapsed_ms=round(gathered.arrived_ms.get(name, 0.0), 3),
                keep_latest=name in keep_latest,
            )
        )
    prompt, tokens, dropped = render(
        sections, token_budget=options.get("token_budget", 1200), count_tokens=count_tokens,
        heading=options.get("heading", "## Memory"),
    )
    return RecallResult(
        sections=sections,
        missing=[n for n in names if n in late or n in failed],
        failed=failed,
        late=late,
        elapsed_ms=round(gathered.elapsed_ms, 3),
        prompt=prompt,
        tokens=tokens,
        dropped_items=dropped,
    )


def render(
    sections: Sequence[RecallSection],
    *,
    token_budget: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
    heading: str = "## Memory",
) -> tuple[str, int, int]:
    """Render sections as Markdown within `token_budget`; return (text, tokens, dropped items).

    Sections are filled in order; a section marked `keep_latest` keeps its newest items.
    """
    total_items = sum(len(s.items) for s in sections)
    if total_items == 0:
        return "", 0, 0
    lines: list[str] = [heading]
    used = count_tokens(heading + "\n")
    kept_items = 0
    for section in sections:
        if not section.items:
            continue
        title = f"### {section.title}"
        title_cost = count_tokens(title + "\n")
        if used + title_cost >= token_budget:
            break
        chosen: list[str] = []
        cost = title_cost
        ordered = list(reversed(section.items)) if section.keep_latest else list(section.items)
        for item in ordered:
            line = f"- {item.text}"
            line_cost = count_tokens(line + "\n")
            if used + cost + line_cost > token_budget:
                break
            chosen.append(line)
            cost += line_cost
        if not chosen:
            continue
        if section.keep_latest:
            chosen.reverse()
        lines.append(title)
        lines.extend(chosen)
        used += cost
        kept_items += len(chosen)
    if len(lines) == 1:
        return "", 0, total_items
    text = "\n".join(lines)
    return text, count_tokens(text), total_items - kept_items
