"""Uploaded knowledge-base files turned into text (kefu_core.answers.document_text), with real
pypdf and python-docx on files made by tests.support.documents."""

from __future__ import annotations

import io
import zipfile

import pytest

from kefu_core.answers.document_text import (
    MAX_TEXT_CHARS,
    UnreadableDocument,
    document_text,
    extension,
)
from tests.support.documents import docx_bytes, pdf_bytes


def test_a_pdf_gives_the_text_of_each_page() -> None:
    # GIVEN a two-page PDF
    data = pdf_bytes(["Returns are accepted within 7 days.", "Shipping takes 24 hours."])
    # WHEN its text is read
    text = document_text("policy.PDF", data)
    # THEN both pages are there, in order, as plain text
    assert text.content_type == ".txt" and text.pages == 2 and not text.truncated
    assert text.content.index("7 days") < text.content.index("24 hours")


def test_a_docx_gives_markdown_headings_lists_and_table_rows() -> None:
    # GIVEN a Word document with headings, a list and a table
    data = docx_bytes(title="售后政策", sections=[("退货", "收到商品 7 天内可申请退货。")],
                      items=["保留原包装"], table=[("运费", "包邮")])
    # WHEN its text is read
    text = document_text("after-sales.docx", data)
    # THEN it is Markdown in document order
    assert text.content_type == ".md"
    assert text.content.split("\n\n") == ["# 售后政策", "## 退货", "收到商品 7 天内可申请退货。",
                                          "- 保留原包装", "运费 | 包邮"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_text_files_are_read_as_utf8_or_gb18030(encoding: str) -> None:
    text = document_text("faq.csv", "question,answer\n怎么退货?,7 天内\n".encode(encoding))
    assert text.content_type == ".csv" and text.content.startswith("question,answer\n怎么退货")


def test_text_beyond_the_knowledge_base_limit_is_cut() -> None:
    text = document_text("big.txt", b"a" * (MAX_TEXT_CHARS + 10))
    assert len(text.content) == MAX_TEXT_CHARS and text.truncated


@pytest.mark.parametrize(("name", "data", "why"), [
    ("notes.exe", b"MZ", "unsupported file type"),
    ("empty.md", b"", "empty"),
    ("broken.pdf", b"%PDF-1.4\nnot a pdf at all", "PDF cannot be read"),
    ("blank.pdf", pdf_bytes([""]), "no text found"),
    ("broken.docx", b"PK not a zip", "DOCX cannot be read"),
    ("binary.txt", bytes(range(128, 256)) * 3, "neither UTF-8 nor GB18030"),
])
def test_unreadable_files_are_refused_with_a_reason(name: str, data: bytes, why: str) -> None:
    with pytest.raises(UnreadableDocument, match=why):
        document_text(name, data)


def test_a_docx_that_inflates_past_the_limit_is_refused_before_it_is_parsed() -> None:
    # GIVEN a small zip whose member inflates to 80 MB (a zip bomb named .docx)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * (80 * 1024 * 1024))
    assert len(out.getvalue()) < 200_000
    # WHEN it is read THEN it is refused
    with pytest.raises(UnreadableDocument, match="too large once uncompressed"):
        document_text("bomb.docx", out.getvalue())


def test_extension_ignores_folders_and_case() -> None:
    assert extension("C:\\docs\\Policy.DOCX") == ".docx"
    assert extension("README") == ""
