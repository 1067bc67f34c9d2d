"""Chunking, keyword terms and the offline embedder (pure functions)."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from kefu_memory import IngestError, OfflineEmbedder, UnsupportedContentType
from kefu_memory._chunking import chunk_document
from kefu_memory._text import estimate_tokens, keyword_terms, normalize
from kefu_memory.embedders import to_pgvector


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
    assert len(m) == 4 and all(len(row) == 256 for row in m)
    assert np.allclose(np.linalg.norm(m[:3], axis=1), 1.0, atol=1e-5)
    assert float(np.linalg.norm(m[3])) == 0.0
    again = await OfflineEmbedder(dim=256).embed(["退款什么时候到账"])
    assert np.array_equal(m[0], again[0])
    assert float(np.dot(m[0], m[1])) > float(np.dot(m[0], m[2])) + 0.2


def _numpy_offline_vector(embedder: OfflineEmbedder, text: str) -> np.ndarray:
    """The offline embedder's maths as its numpy version computed it (float32 throughout)."""
    vec = np.zeros(embedder.dim, dtype=np.float32)
    for feat, count in embedder.features(text).items():
        h = zlib.crc32(feat.encode("utf-8"))
        sign = 1.0 if (h >> 31) & 1 else -1.0
        vec[h % embedder.dim] += sign * embedder._WEIGHTS[feat[0]] * (1.0 + math.log(count))
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def test_offline_embedder_matches_the_numpy_computation_and_its_stored_text() -> None:
    # GIVEN the pure-Python offline embedder, the demo knowledge base's lines and the offline
    # answers bench's questions
    embedder = OfflineEmbedder()
    root = Path(__file__).resolve().parents[3]
    texts = [line for path in [*sorted((root / "knowledge" / "demo").iterdir()),
                               root / "bench" / "data" / "offline_questions.jsonl"]
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(texts) > 150
    same_text = 0
    for text in texts:
        # WHEN a text is embedded by both
        ours, reference = embedder.embed_one(text), _numpy_offline_vector(embedder, text)
        # THEN they differ by float32 rounding at most (the norm's summation order)
        assert np.max(np.abs(np.asarray(ours, dtype=np.float32) - reference)) <= 2.5e-7
        same_text += to_pgvector(ours) == _numpy_pgvector(reference)
    # AND almost every stored text (six decimals) is the one numpy's version wrote
    assert same_text >= 0.95 * len(texts)


def _numpy_pgvector(vector: np.ndarray) -> str:
    return "[" + ",".join(map(str, np.round(vector.astype(np.float64), 6).tolist())) + "]"


def test_stored_text_of_a_vector_rounds_like_numpy() -> None:
    # GIVEN values around every rounding case (halves, signed zeros, tiny and large values)
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.standard_normal(20_000) / 10, [0.0, -0.0, -1e-9, 1e-9,
                             0.0000005, -0.0000005, 0.0000015, 0.1234565, 1.0, -1.0]])
    # WHEN written for pgvector THEN the text is numpy's, float64 and float32 values alike
    assert to_pgvector(values.tolist()) == _numpy_pgvector(values)
    as_f32 = values.astype(np.float32)
    assert to_pgvector(as_f32.tolist()) == _numpy_pgvector(as_f32)


def test_stored_text_of_a_mostly_zero_vector_rounds_like_numpy() -> None:
    # GIVEN a vector like a short question's: mostly zeros, a negative zero among them, and a
    # few values, one of them too small to survive six decimals
    values = np.zeros(512)
    values[[3, 100, 511]] = [0.1234565, -0.25, 0.5]
    values[7], values[9], values[11] = -0.0, -1e-9, 1e-9
    # WHEN written for pgvector THEN the text is numpy's (zeros keep their sign)
    assert to_pgvector(values.tolist()) == _numpy_pgvector(values)
    # AND a vector without a negative zero too
    values[7] = 0.0
    assert to_pgvector(values.astype(np.float32).tolist()) == \
        _numpy_pgvector(values.astype(np.float32))
