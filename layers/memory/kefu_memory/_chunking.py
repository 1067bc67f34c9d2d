"""Parse documents (Markdown, plain text, FAQ CSV) and cut them into chunks.

Sizes are in estimated tokens (one per CJK character, ~4 characters per token otherwise), so
the default (200) gives ~200 Chinese characters or ~800 English characters per chunk: about
one FAQ answer or one policy paragraph, small enough that a passage is about one thing.
Markdown chunks carry their heading path; a FAQ row is one chunk (question as heading).
Long paragraphs are cut at sentence ends, with a small sentence overlap between their pieces.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from ._errors import IngestError, UnsupportedContentType
from ._text import estimate_tokens

__all__ = ["Chunk", "chunk_document", "content_kind"]

_KINDS = {
    "markdown": "markdown",
    "md": "markdown",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text": "text",
    "txt": "text",
    "text/plain": "text",
    "csv": "faq",
    "faq": "faq",
    "text/csv": "faq",
    "faq/csv": "faq",
}
_SUFFIX_KINDS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".csv": "faq"}
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SENTENCE_RE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*\s*|\n")
_QUESTION_COLS = ("question", "q", "问题", "问")
_ANSWER_COLS = ("answer", "a", "答案", "回答", "答")


@dataclass(frozen=True)
class Chunk:
    heading: str
    text: str

    def embedding_text(self) -> str:
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def content_kind(content_type: str) -> str:
    """Map a content type, extension or file suffix to markdown / text / faq."""
    key = content_type.strip().lower().split(";")[0].strip()
    if key in _KINDS:
        return _KINDS[key]
    if key in _SUFFIX_KINDS:
        return _SUFFIX_KINDS[key]
    raise UnsupportedContentType(f"unsupported content type: {content_type!r}")


def _sentences(text: str) -> list[str]:
    return [s for s in (m.group(0) for m in _SENTENCE_RE.finditer(text)) if s.strip()]


def _hard_split(text: str, max_tokens: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for char in text:
        if current and estimate_tokens(current + char) > max_tokens:
            pieces.append(current)
            current = ""
        current += char
    if current:
        pieces.append(current)
    return pieces


def _split_block(block: str, max_tokens: int, overlap_tokens: int) -> list[str]:
    """Cut one long block at sentence ends; consecutive pieces share up to overlap_tokens."""
    units: list[str] = []
    for sentence in _sentences(block):
        if estimate_tokens(sentence) > max_tokens:
            units.extend(_hard_split(sentence, max_tokens))
        else:
            units.append(sentence)
    pieces: list[str] = []
    current: list[str] = []
    for unit in units:
        if current and estimate_tokens("".join([*current, unit])) > max_tokens:
            pieces.append("".join(current).strip())
            carry: list[str] = []
            for previous in reversed(current):
                if estimate_tokens("".join([previous, *carry])) > overlap_tokens:
                    break
                carry.insert(0, previous)
            current = carry
        current.append(unit)
    if current and "".join(current).strip():
        pieces.append("".join(current).strip())
    return pieces


def _pack(blocks: list[str], max_tokens: int, overlap_tokens: int) -> list[str]:
    """Greedily pack paragraphs into chunks of at most max_tokens."""
    out: list[str] = []
    current: list[str] = []
    for block in blocks:
        if estimate_tokens(block) > max_tokens:
            if current:
                out.append("\n\n".join(current))
                current = []
            out.extend(_split_block(block, max_tokens, overlap_tokens))
            continue
        if current and estimate_tokens("\n\n".join([*current, block])) > max_tokens:
            out.append("\n\n".join(current))
            current = []
        current.append(block)
    if current:
        out.append("\n\n".join(current))
    return [c for c in out if c.strip()]


def _paragraphs(lines: list[str]) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in lines:
        if line.strip().startswith("```"):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                blocks.append("\n".join(current).strip())
                current = []
            continue
        current.append(line.rstrip())
    if current:
        blocks.append("\n".join(current).strip())
    return [b for b in blocks if b]


def _markdown(content: str, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    sections: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        if lines:
            sections.append((" > ".join(title for _, title in path), list(lines)))
            lines.clear()

    for line in content.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else _HEADING_RE.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, match.group(2)))
            continue
        lines.append(line)
    flush()
    chunks: list[Chunk] = []
    for heading, body in sections:
        for text in _pack(_paragraphs(body), max_tokens, overlap_tokens):
            chunks.append(Chunk(heading=heading, text=text))
    if not chunks and path:
        # Headings only: the headings are the content.
        chunks.append(Chunk(heading="", text=" > ".join(title for _, title in path)))
    return chunks


def _faq(content: str) -> list[Chunk]:
    reader = csv.reader(io.StringIO(content.lstrip("\ufeff")))
    rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    q_col = next((header.index(c) for c in _QUESTION_COLS if c in header), None)
    a_col = next((header.index(c) for c in _ANSWER_COLS if c in header), None)
    if q_col is None or a_col is None:
        raise IngestError("FAQ CSV needs 'question' and 'answer' columns")
    chunks: list[Chunk] = []
    for row in rows[1:]:
        if max(q_col, a_col) >= len(row):
            continue
        question, answer = row[q_col].strip(), row[a_col].strip()
        if question and answer:
            chunks.append(Chunk(heading=question, text=f"Q: {question}\nA: {answer}"))
    return chunks


def chunk_document(
    content: str,
    content_type: str,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 30,
) -> list[Chunk]:
    """Parse `content` according to `content_type` and return its chunks."""
    kind = content_kind(content_type)
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    if kind == "faq":
        return _faq(content)
    if kind == "markdown":
        return _markdown(content, max_tokens, overlap_tokens)
    return [
        Chunk(heading="", text=text)
        for text in _pack(_paragraphs(content.splitlines()), max_tokens, overlap_tokens)
    ]
