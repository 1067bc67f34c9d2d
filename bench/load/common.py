"""Pieces shared by the harness processes: the per-prompt LLM latency and the dialogue source."""

from __future__ import annotations

import json
import random
import zipfile
import zlib
from pathlib import Path

FALLBACK_TURNS = [
    "你好，我想查一下我的订单到哪了。",
    "订单号是 20231105，昨天下的单。",
    "大概什么时候能送到？",
    "可以改一下收货地址吗？",
    "好的，谢谢。那退货要怎么操作？",
    "运费谁出？",
    "明白了，再见。",
]


def parse_range(text: str) -> tuple[float, float]:
    text = str(text).strip()
    if "-" in text.strip("-"):
        a, b = text.split("-", 1)
        lo, hi = float(a), float(b)
    else:
        lo = hi = float(text)
    return min(lo, hi), max(lo, hi)


def llm_ttft_ms(text: str, lo: float, hi: float) -> int:
    """The fake LLM's first-token latency for a prompt whose last user turn is ``text``.

    A pure function of the text (CRC-32), uniform over [lo, hi] across texts: the fake server
    applies it and the visitor computes it, so the system's own overhead is the measured time
    to first token minus this.
    """
    if hi <= lo:
        return int(lo)
    frac = (zlib.crc32(text.strip().encode("utf-8")) % 10007) / 10006
    return round(lo + frac * (hi - lo))


def load_dialogues(path: str | None, *, seed: int = 7) -> list[list[str]]:
    """User turns of each dialogue (CrossWOZ ``val.json(.zip)`` when given, else a small script)."""
    if not path:
        return [FALLBACK_TURNS]
    p = Path(path)
    if p.suffix == ".zip":
        with zipfile.ZipFile(p) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".json"))
            data = json.loads(zf.read(name))
    else:
        data = json.loads(p.read_text(encoding="utf-8"))
    items = data.values() if isinstance(data, dict) else data
    dialogues = []
    for item in items:
        turns = [m["content"].strip() for m in item.get("messages", [])
                 if m.get("role") == "usr" and str(m.get("content", "")).strip()]
        if turns:
            dialogues.append(turns)
    random.Random(seed).shuffle(dialogues)
    return dialogues or [FALLBACK_TURNS]
