"""Text helpers shared by the embedders, the keyword index and the chunker.

Chinese has no spaces, so keyword terms are jieba words (search mode) plus CJK character
bigrams; the bigrams keep recall when jieba segments a query and a document differently.
Latin text is lower-cased words. Everything is NFKC-normalised first (full-width digits and
letters become ASCII).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = [
    "estimate_tokens",
    "is_cjk",
    "keyword_terms",
    "load_segmenter",
    "normalize",
    "words",
]

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK_RUN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN_WORD_RE = re.compile(r"[a-z0-9]+(?:[-_.@][a-z0-9]+)*")
_WORD_RE = re.compile(r"[a-z0-9]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

# Very frequent function words and characters that carry no topic. Kept small on purpose.
STOP_TERMS = frozenset(
    """的 了 是 我 你 他 她 它 们 吗 呢 吧 啊 呀 哦 嗯 么 和 与 及 或 在 有 也 就 都 而 着 这 那 个
    请 想 要 能 会 可以 一下 一个 这个 那个 什么 怎么 哪 哪些 哪个 多少 还 给 帮 问 下 吗 呢
    a an the is are was were be been to of and or in on at for with by from as it this that
    i you we they he she my your our me us do does did can could would should will please
    what which who how when where there here have has had not no yes""".split()
)

# jieba's prefix dictionary, prebuilt next to the jieba package by the Lambda layer's build
# (layers/answer/Makefile): read from there (read-only), it spares each cold start rebuilding the
# 9 MB cache in /tmp (about 1 s). Without it (a pip install), jieba builds its usual cache in the
# temp directory once per machine.
PREBUILT_JIEBA_CACHE = "kefu-dict.cache"

_jieba_lock = threading.Lock()
_jieba_ready = False


def _jieba() -> Any:
    """Import and initialise jieba once (its dictionary load takes ~0.7 s; do it lazily)."""
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                prebuilt = os.path.join(os.path.dirname(jieba.__file__), PREBUILT_JIEBA_CACHE)
                if os.path.isfile(prebuilt):
                    jieba.dt.cache_file = prebuilt
                jieba.initialize()
                _jieba_ready = True
    return jieba


def load_segmenter() -> None:
    """Load jieba's dictionary now (blocking, ~0.7 s) instead of on first use."""
    _jieba()


def normalize(text: str) -> str:
    """NFKC-normalise and lower-case; collapse whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def is_cjk(char: str) -> bool:
    return bool(_CJK_RE.match(char))


def words(text: str) -> list[str]:
    """Words of normalised text: jieba search-mode words for CJK runs, Latin words otherwise."""
    out: list[str] = []
    norm = normalize(text)
    for match in _WORD_RE.finditer(norm):
        token = match.group(0)
        if _CJK_RE.match(token):
            if len(token) == 1:
                out.append(token)
            else:
                out.extend(w for w in _jieba().cut_for_search(token) if w.strip())
        else:
            out.append(token)
    return out


def cjk_ngrams(text: str, n: int) -> Iterable[str]:
    """Character n-grams of every CJK run in normalised text (runs shorter than n yield the run)."""
    for match in _CJK_RUN_RE.finditer(text):
        run = match.group(0)
        if len(run) < n:
            if n == 2:
                yield run
            continue
        for i in range(len(run) - n + 1):
            yield run[i : i + n]


def keyword_terms(text: str) -> Counter[str]:
    """Term frequencies for the keyword index: words plus CJK bigrams, stop terms removed."""
    norm = normalize(text)
    counts: Counter[str] = Counter()
    for word in words(norm):
        if word not in STOP_TERMS:
            counts["w:" + word] += 1
    for gram in cjk_ngrams(norm, 2):
        if gram not in STOP_TERMS:
            counts["b:" + gram] += 1
    return counts


def estimate_tokens(text: str) -> int:
    """A cheap token estimate: one per CJK character, ~4 characters per token otherwise."""
    cjk = len(_CJK_RE.findall(text))
    rest = len(text) - cjk
    return cjk + (rest + 3) // 4
