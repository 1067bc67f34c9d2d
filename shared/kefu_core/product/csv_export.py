"""CSV exports that a spreadsheet opens as text, never as formulas.

A cell whose text begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read
by Excel, LibreOffice and Google Sheets as a formula (``=HYPERLINK(...)`` in a visitor's
message becomes a live link; DDE payloads can run commands). Following OWASP's advice on CSV
injection, such a cell is prefixed with a single quote, which the spreadsheet shows as text
and does not display. The full-width forms of those characters (``＝＋－＠``), which some
East Asian spreadsheet locales convert, are treated the same way. Numbers are written as
numbers. Every CSV the product exports goes through :func:`to_csv`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

__all__ = ["FORMULA_PREFIXES", "safe_cell", "to_csv"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: object) -> object:
    """``value``, with a leading single quote when it is text a spreadsheet would evaluate."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A whole CSV document (header first), every cell passed through :func:`safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()
