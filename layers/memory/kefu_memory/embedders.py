"""Embedders behind one interface.

- `OfflineEmbedder`: model-free, no download, works for Chinese and English. Hashed features
  (CJK character uni/bi/trigrams, jieba words, Latin words and their character trigrams) with
  sub-linear term frequency, signed feature hashing into a fixed dimension, L2-normalised.
  Pure Python (``array('f')``, float32 like pgvector stores them): the answer path's Lambda
  layer ships no numpy.
- `OpenAIEmbedder`: the OpenAI embeddings API or any compatible endpoint (`base_url`).

Every embedder has a `name` and a `dim`; both are stored with each vector so that a changed
embedder is detected instead of silently comparing vectors from different spaces.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from array import array
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeAlias, runtime_checkable

from ._errors import EmbedderError
from ._text import STOP_TERMS, cjk_ngrams, normalize, words

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["Embedder", "OfflineEmbedder", "OpenAIEmbedder", "Vector", "Vectors", "to_pgvector"]

# typecode "f": float32 values, as pgvector stores them (a string: array is not
# subscriptable at run time before Python 3.12)
Vector: TypeAlias = "array[float]"
Vectors: TypeAlias = "list[Vector]"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Return one float32 vector of ``dim`` values per text, L2-normalised."""
        ...


def to_pgvector(vector: Sequence[float]) -> str:
    """Text form of a vector for PostgreSQL (`'[0.1,0.2]'::vector`), six decimals.

    Rounded as ``numpy.round(x, 6)`` rounds (scale, round half to even, unscale; the sign of a
    zero kept), so the stored text is the one the numpy-based version wrote."""
    values = array("d", vector)
    # Most of a short text's hashed vector is zero (a question sets a few dozen of its 512
    # values): zeros are written at once, only the other values are rounded one by one.
    if values.tobytes().count(_NEGATIVE_ZERO):  # rare; the pattern may also match across two
        out = ["-0.0" if math.copysign(1.0, x) < 0 else "0.0" for x in values]  # values
    else:
        out = ["0.0"] * len(values)
    for i in [i for i, x in enumerate(values) if x]:
        scaled = round(values[i] * 1e6)
        out[i] = str(scaled / 1e6) if scaled else ("-0.0" if values[i] < 0 else "0.0")
    return "[" + ",".join(out) + "]"


_NEGATIVE_ZERO = array("d", [-0.0]).tobytes()


def _f32(x: float) -> float:
    """``x`` rounded to the nearest float32."""
    return array("f", (x,))[0]


def _normalized(values: Sequence[float]) -> Vector:
    """A float32 copy of ``values`` scaled to unit length (a zero vector stays zero). The norm
    is summed in float64 then rounded to float32; each quotient is rounded to float32."""
    vec = array("f", values)
    norm = _f32(math.sqrt(math.fsum(x * x for x in vec)))
    if norm > 0:
        for i, x in enumerate(vec):
            vec[i] = x / norm
    return vec


class OfflineEmbedder:
    """A model-free embedder: hashed character n-gram and word features, L2-normalised.

    Deterministic across processes and machines (CRC32 hashing), needs nothing at run time
    beyond jieba. It captures lexical overlap, not paraphrase; use an API model when
    you need semantics.
    """

    _WEIGHTS: ClassVar[dict[str, float]] = {"u": 0.4, "b": 1.0, "t": 0.6, "w": 1.0, "l": 0.3}

    lexical = True  # it matches surface forms only; hybrid search weighs it accordingly

    def __init__(self, dim: int = 512, *, cache_size: int = 1024) -> None:
        if dim < 16:
            raise ValueError("dim must be at least 16")
        self._dim = dim
        # Short texts (queries) are often embedded twice per reply (long-term memory and the
        # knowledge base search the same question): keep the latest ones.
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    @property
    def name(self) -> str:
        return "offline-hash-v1"

    @property
    def dim(self) -> int:
        return self._dim

    def features(self, text: str) -> Counter[str]:
        norm = normalize(text)
        feats: Counter[str] = Counter()
        for gram in cjk_ngrams(norm, 1):
            if gram not in STOP_TERMS:
                feats["u:" + gram] += 1
        for gram in cjk_ngrams(norm, 2):
            feats["b:" + gram] += 1
        for gram in cjk_ngrams(norm, 3):
            feats["t:" + gram] += 1
        for word in words(norm):
            if word in STOP_TERMS:
                continue
            feats["w:" + word] += 1
            if word.isascii() and len(word) > 3:
                padded = f"#{word}#"
                for i in range(len(padded) - 2):
                    feats["l:" + padded[i : i + 3]] += 1
        return feats

    def embed_one(self, text: str) -> Vector:
        # float32 accumulation: each sum is rounded to float32, as numpy's float32 array did
        vec = array("f", bytes(4 * self._dim))
        for feat, count in self.features(text).items():
            h = zlib.crc32(feat.encode("utf-8"))
            sign = 1.0 if (h >> 31) & 1 else -1.0
            i = h % self._dim
            vec[i] = vec[i] + _f32(sign * self._WEIGHTS[feat[0]] * (1.0 + math.log(count)))
        return _normalized(vec)

    def _cached(self, text: str) -> Vector:
        if len(text) > 256 or self._cache_size <= 0:
            return self.embed_one(text)
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        vec = self.embed_one(text)
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vec

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        return [array("f", self._cached(t)) for t in texts]  # copies: the cache stays intact

    async def embed(self, texts: Sequence[str]) -> Vectors:
        # Pure CPU and fast for short texts; large batches go to a thread so the loop stays live.
        if sum(len(t) for t in texts) < 4000:
            return self.embed_sync(texts)
        # The cache is only touched from the event loop's thread.
        return await asyncio.to_thread(self._embed_uncached, texts)

    def _embed_uncached(self, texts: Sequence[str]) -> Vectors:
        return [self.embed_one(t) for t in texts]


class OpenAIEmbedder:
    """Embeddings from the OpenAI API or any compatible endpoint (vLLM, Ollama, Qwen...).

    Pass a configured `AsyncOpenAI` client, or `base_url`/`api_key` to build one. Set
    `send_dimensions=True` for models that accept a `dimensions` parameter
    (text-embedding-3-*), so that `dim` can be smaller than the model's native size.
    """

    def __init__(
        self,
        client: AsyncOpenAI | None = None,
        *,
        model: str = "text-embedding-3-small",
        dim: int = 1536,
        base_url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 128,
        send_dimensions: bool = False,
    ) -> None:
        if client is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(base_url=base_url, api_key=api_key)
        self._client = client
        self._model = model
        self._dim = dim
        self._batch_size = batch_size
        self._send_dimensions = send_dimensions
        self.lexical = False

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    @property
    def dim(self) -> int:
        return self._dim

    async def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = [t if t.strip() else " " for t in texts[start : start + self._batch_size]]
            try:
                if self._send_dimensions:
                    response = await self._client.embeddings.create(
                        model=self._model, input=batch, dimensions=self._dim
                    )
                else:
                    response = await self._client.embeddings.create(model=self._model, input=batch)
            except Exception as exc:
                raise EmbedderError(f"embedding request to {self._model} failed") from exc
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise EmbedderError(f"{self._model} returned {len(data)} vectors for {len(batch)}")
            rows.extend(list(item.embedding) for item in data)
        for row in rows:
            if len(row) != self._dim:
                raise EmbedderError(
                    f"{self._model} returned dimension {len(row)}, configured {self._dim}"
                )
        return [_normalized(row) for row in rows]
