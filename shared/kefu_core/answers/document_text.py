"""The text of an uploaded knowledge-base file, in a form the knowledge base ingests.

- Markdown, plain text and FAQ CSV (``.md``, ``.markdown``, ``.txt``, ``.csv``): decoded as
  UTF-8 (a byte-order mark is dropped) or, failing that, GB18030 (text saved by Chinese
  Windows), and ingested as they are.
- PDF (pypdf): the text of each page, pages separated by a blank line, ingested as plain
  text. An encrypted PDF that does not open with an empty password, or one without a text
  layer (scanned pages), is refused.
- DOCX (python-docx): paragraphs in order, Word's heading styles as Markdown headings, list
  styles as list items, tables as ``a | b`` rows; ingested as Markdown.

Uploaded files are untrusted: the caller limits the bytes (the admin API's body limit); here a
PDF is read for at most :data:`MAX_PDF_PAGES` pages, a DOCX is refused when its zip members
would inflate past :data:`MAX_DOCX_INFLATED_BYTES` (a zip bomb), and the text is cut at
:data:`MAX_TEXT_CHARS`, the knowledge base's limit. The work is CPU-bound: call it in a thread.
A refusal is :class:`UnreadableDocument`, whose message is safe to show to the uploader; the
document's content never appears in a message or a log.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

__all__ = ["EXTENSIONS", "MAX_DOCX_INFLATED_BYTES", "MAX_PDF_PAGES", "MAX_TEXT_CHARS",
           "DocumentText", "UnreadableDocument", "document_text", "extension"]

logger = logging.getLogger("kefu.documents")

MAX_TEXT_CHARS = 2_000_000  # what POST /v1/admin/knowledge accepts as content
MAX_PDF_PAGES = 2_000
MAX_DOCX_INFLATED_BYTES = 64 * 1024 * 1024
MAX_DOCX_MEMBERS = 2_000
# The file extension -> how its text is ingested (kefu_memory's content types).
EXTENSIONS = {".md": ".md", ".markdown": ".md", ".txt": ".txt", ".csv": ".csv",
              ".pdf": ".txt", ".docx": ".md"}


class UnreadableDocument(ValueError):
    """The file cannot be turned into text; the message says why, for the uploader."""


@dataclass(frozen=True)
class DocumentText:
    content: str
    content_type: str  # ".md", ".txt" or ".csv": what kefu_memory ingests
    pages: int | None = None  # PDF only
    truncated: bool = False


def extension(name: str) -> str:
    """The lower-case extension of ``name`` (``""`` when none)."""
    return PurePosixPath(name.replace("\\", "/")).suffix.lower()


def document_text(name: str, data: bytes) -> DocumentText:
    """The text of the file ``name`` (its extension decides how it is read) from ``data``."""
    ext = extension(name)
    if ext not in EXTENSIONS:
        raise UnreadableDocument("unsupported file type: use .md, .txt, .csv, .pdf or .docx")
    if not data:
        raise UnreadableDocument("the file is empty")
    if ext == ".pdf":
        text, pages = _pdf(data)
        return _cut(text, EXTENSIONS[ext], pages)
    if ext == ".docx":
        return _cut(_docx(data), EXTENSIONS[ext], None)
    return _cut(_decode(data), EXTENSIONS[ext], None)


def _cut(text: str, content_type: str, pages: int | None) -> DocumentText:
    text = text.replace("\x00", "").strip()
    if not text:
        raise UnreadableDocument("no text found in the file" + (
            " (scanned pages need OCR first)" if pages is not None else ""))
    truncated = len(text) > MAX_TEXT_CHARS
    return DocumentText(content=text[:MAX_TEXT_CHARS], content_type=content_type, pages=pages,
                        truncated=truncated)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableDocument("the text is neither UTF-8 nor GB18030")


def _pdf(data: bytes) -> tuple[str, int]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("the PDF is encrypted")
        count = len(reader.pages)
        pages = [reader.pages[i].extract_text() or "" for i in range(min(count, MAX_PDF_PAGES))]
    except UnreadableDocument:
        raise
    except (PdfReadError, Exception) as exc:  # a malformed file may raise anything
        logger.info("PDF not readable: %s", type(exc).__name__)
        raise UnreadableDocument("the PDF cannot be read") from exc
    return "\n\n".join(p.strip() for p in pages if p.strip()), count


def _docx(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise UnreadableDocument("the DOCX cannot be read") from exc
    if len(members) > MAX_DOCX_MEMBERS or \
            sum(m.file_size for m in members) > MAX_DOCX_INFLATED_BYTES:
        raise UnreadableDocument("the DOCX is too large once uncompressed")
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        return "\n\n".join(_blocks(document))
    except Exception as exc:  # a malformed file may raise anything
        logger.info("DOCX not readable: %s", type(exc).__name__)
        raise UnreadableDocument("the DOCX cannot be read") from exc


def _blocks(document: Any) -> list[str]:
    """Paragraphs and tables in document order, as Markdown blocks."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    out: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            line = _paragraph(block)
            if line:
                out.append(line)
        elif isinstance(block, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows]
            out.append("\n".join(r for r in rows if r.strip(" |")))
    return out


def _paragraph(paragraph: Any) -> str:
    text = str(paragraph.text).strip()
    if not text:
        return ""
    style = str((paragraph.style.name if paragraph.style is not None else "") or "")
    if style == "Title":
        return f"# {text}"
    if style.startswith("Heading"):
        level = style.removeprefix("Heading").strip()
        depth = int(level) if level.isdigit() else 1
        return f"{'#' * min(max(depth, 1), 6)} {text}"
    if style.startswith("List"):
        return f"- {text}"
    return text
