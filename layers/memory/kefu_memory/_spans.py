"""Where normalised names occur in a text as it is written.

`EntityIndex` and `RecordIndex` hold names and values normalised (NFKC, lower case, single
spaces: ``鸟巢(国家体育场)``); a text may write them otherwise (``鸟巢（国家体育场）``). Scanning
the text normalised character by character, with the offset of each character in the
original, gives back the original spelling of every match.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence

__all__ = ["longest_matches", "normalized_with_offsets", "tight_dashes"]

Groups = Mapping[str, Sequence[tuple[int, frozenset[str]]]]


def normalized_with_offsets(text: str) -> tuple[str, list[int]]:
    """``text`` normalised like `normalize` (NFKC per character, lower case, a run of spaces
    as one), and for each character of the result the offset of its source in ``text``."""
    out: list[str] = []
    offsets: list[int] = []
    space = True  # leading spaces are dropped
    for i, ch in enumerate(text):
        if ch.isspace():
            if not space:
                out.append(" ")
                offsets.append(i)
            space = True
            continue
        for c in unicodedata.normalize("NFKC", ch).lower():
            out.append(c)
            offsets.append(i)
        space = False
    return "".join(out), offsets


def tight_dashes(s: str, offsets: list[int]) -> tuple[str, list[int]]:
    """``s`` without the spaces around dashes and tildes (``3小时 - 4小时`` as ``3小时-4小时``,
    as `RecordIndex` holds values), with the offsets of the characters kept."""
    keep = [
        i for i, c in enumerate(s)
        if c != " " or not ((i and s[i - 1] in "-~") or (i + 1 < len(s) and s[i + 1] in "-~"))
    ]
    return "".join(s[i] for i in keep), [offsets[i] for i in keep]


def longest_matches(
    s: str, groups: Groups, edges_ok: Callable[[str, int, int], bool] | None = None
) -> list[tuple[int, int]]:
    """(start, stop) of the names of ``groups`` (first two characters -> [(length, names)],
    longest first) in ``s``, left to right, longest match first, no overlap."""
    out: list[tuple[int, int]] = []
    i, end = 0, len(s) - 1
    while i < end:
        stop = None
        for length, names in groups.get(s[i : i + 2], ()):
            if s[i : i + length] in names and (edges_ok is None or edges_ok(s, i, i + length)):
                stop = i + length
                break
        if stop is None:
            i += 1
            continue
        out.append((i, stop))
        i = stop
    return out
