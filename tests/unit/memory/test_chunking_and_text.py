"""Chunking, keyword terms and the offline embedder (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from kefu_memory import IngestError, OfflineEmbedder, UnsupportedContentType
from kefu_memory._chunking import chunk_document
from kefu_memory._text import estimate_tokens, keyword_terms, normalize


def test_markdown_chunks_carry_their_heading_path() -> None:
    # GIVEN nested headings / WHEN chunked / THEN each chunk names its section
    chunks = chunk_document("# A\nintro\n## B\nbody b\n### C\nbody c\n## D\nbody d", "md")
    assert [(c.heading, c.text) for c in chunks] == [
        ("A", "intro"), ("A > B", "body b"), ("A > B > C", "body c"), ("A > D", "body d")
    ]


def test_long_chinese_text_is_cut_at_sentence_ends_within_the_size() -> None:
    # GIVEN 60 Chinese sentences of 20 characters
    text = "".join(f"这是第{i:02d}句话用来测试中文分块是否合理。" for i in range(60))
    # WHEN chunked with 100-token chunks
    chunks = chunk_document(text, "text/plain", max_tokens=100, overlap_tokens=20)
    # THEN every chunk fits, ends at a sentence end, and neighbours overlap
    assert len(chunks) > 5
    assert all(estimate_tokens(c.text) <= 100 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    last_sentence = chunks[0].text.split("。")[-2] + "。"
    assert chunks[1].text.startswith(last_sentence)


def test_english_chunks_are_larger_in_characters() -> None:
    # GIVEN English paragraphs / WHEN chunked at 100 tokens / THEN ~400 characters per chunk
    text = "\n\n".join("The parcel ships within one day. " * 4 for _ in range(10))
    chunks = chunk_document(text, "txt", max_tokens=100)
    assert all(300 < len(c.text) <= 420 for c in chunks[:-1])


def test_faq_csv_makes_one_chunk_per_row_and_needs_its_columns() -> None:
    # GIVEN an FAQ with Chinese column names / WHEN chunked / THEN one chunk per answered row
    chunks = chunk_document("问题,答案\n怎么退货？,七天内申请。\n空行,\n", "csv")
    assert [(c.heading, c.text) for c in chunks] == [
        ("怎么退货？", "Q: 怎么退货？\nA: 七天内申请。")
    ]
    with pytest.raises(IngestError):
        chunk_document("a,b\n1,2\n", "csv")
    with pytest.raises(UnsupportedContentType):
        chunk_document("x", "application/pdf")


def test_keyword_terms_segment_chinese_and_normalise_full_width() -> None:
    # GIVEN mixed text with full-width digits / WHEN turned into terms
    terms = keyword_terms("我的订单ＡＢ１２３还没有发货")
    # THEN words, bigrams and the ASCII order id are there, stop words are not
    assert normalize("ＡＢ１２３") == "ab123"
    assert "w:ab123" in terms and "w:发货" in terms and "b:订单" in terms
    assert "w:的" not in terms


async def test_offline_embedder_is_normalised_deterministic_and_lexically_meaningful() -> None:
    # GIVEN the offline embedder
    embedder = OfflineEmbedder(dim=256)
    # WHEN embedding related and unrelated texts
    m = await embedder.embed(["退款什么时候到账", "退款多久能到账", "酒店有免费停车场吗", ""])
    # THEN rows are unit length (or zero for empty), stable, and related texts are closer
    assert m.shape == (4, 256)
    assert np.allclose(np.linalg.norm(m[:3], axis=1), 1.0, atol=1e-5)
    assert float(np.linalg.norm(m[3])) == 0.0
    again = await OfflineEmbedder(dim=256).embed(["退款什么时候到账"])
    assert np.array_equal(m[0], again[0])
    assert float(m[0] @ m[1]) > float(m[0] @ m[2]) + 0.2
