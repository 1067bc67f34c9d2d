"""PII detection: precision and recall on the labelled set in bench/data/pii_labelled.jsonl.

A detected span counts when its kind, start and end equal a labelled span's. The set mixes
Chinese and English customer-service messages with mobile numbers, resident IDs, bank cards and
e-mails written in the usual ways, and hard negatives (IDs with a wrong check digit or date,
cards failing Luhn, order / waybill / invoice numbers, timestamps, landlines, prices). It is
made by bench/data/pii_make.py.

    python -m bench.pii [--data bench/data/pii_labelled.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from kefu_llm import find_pii

DEFAULT = Path(__file__).resolve().parent / "data" / "pii_labelled.jsonl"


def evaluate(rows: list[dict]) -> dict[str, Counter[str]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    misses: list[str] = []
    for row in rows:
        gold = {(s["kind"], s["start"], s["end"]) for s in row["spans"]}
        found = {(s.kind, s.start, s.end) for s in find_pii(row["text"])}
        for kind, *_ in gold & found:
            tp[kind] += 1
            tp[f"{row['lang']}:all"] += 1
        for kind, start, end in found - gold:
            fp[kind] += 1
            fp[f"{row['lang']}:all"] += 1
            misses.append(f"  false positive {kind}: {row['text'][start:end]!r} in {row['text']!r}")
        for kind, start, end in gold - found:
            fn[kind] += 1
            fn[f"{row['lang']}:all"] += 1
            misses.append(f"  missed {kind}: {row['text'][start:end]!r} in {row['text']!r}")
    return {"tp": tp, "fp": fp, "fn": fn, "misses": misses}  # type: ignore[dict-item]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT))
    parser.add_argument("--show-errors", type=int, default=10)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines()]
    started = time.perf_counter()
    result = evaluate(rows)
    elapsed = time.perf_counter() - started
    tp, fp, fn = result["tp"], result["fp"], result["fn"]
    out = sys.stdout
    n_pos = sum(len(r["spans"]) for r in rows)
    n_neg = sum(1 for r in rows if not r["spans"])
    out.write(f"{len(rows)} messages, {n_pos} labelled values, {n_neg} hard negatives\n")
    out.write(f"{'kind':<10}{'precision':>10}{'recall':>10}{'tp':>6}{'fp':>6}{'fn':>6}\n")
    for kind in ["PHONE", "ID", "CARD", "EMAIL", "zh:all", "en:all"]:
        p = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0
        r = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else 1.0
        out.write(f"{kind:<10}{p:>10.1%}{r:>10.1%}{tp[kind]:>6}{fp[kind]:>6}{fn[kind]:>6}\n")
    kinds = ["PHONE", "ID", "CARD", "EMAIL"]
    t, f, m = (sum(c[k] for k in kinds) for c in (tp, fp, fn))
    out.write(f"{'overall':<10}{t / (t + f):>10.1%}{t / (t + m):>10.1%}{t:>6}{f:>6}{m:>6}\n")
    out.write(
        f"speed: {len(rows) / elapsed:,.0f} messages/s ({elapsed * 1e6 / len(rows):.0f} us each)\n"
    )
    for line in result["misses"][: args.show_errors]:  # type: ignore[index]
        out.write(line + "\n")
    out.write(f"reproduce: python -m bench.pii --data {args.data}\n")


if __name__ == "__main__":
    main()
