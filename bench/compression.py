"""Context compression on CrossWOZ: token ratio and share of annotated slot values kept.

Histories are built like a returning customer's: consecutive dialogues of val.json are chained
until the history passes ``--min-chars`` (default 1000; single dialogues rarely do). Each history
is compressed to ``--budget`` (default 0.5) of its own token count with
``kefu_llm.compress_history`` (extractive: no engine), keeping the last ``--keep-last`` messages
verbatim. A value counts when an ``Inform`` act's value occurs verbatim in the original history
and is still present verbatim in the compressed one.

    python -m bench.compression [PATH] [--min-chars 1000] [--budget 0.5] [--keep-last 4]

PATH is the folder with val.json.zip (default ../shared/data/crosswoz/) or the file itself.
Goal: at most 50% of the tokens with at least 95% of the values kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from kefu_llm import ChatMessage, compress_history, count_tokens

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "crosswoz"


def load_dialogues(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        path = path / "val.json.zip"
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".json"))
            data = json.loads(zf.read(name))
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
    items = data.values() if isinstance(data, dict) else data
    return [d for d in items if d.get("messages")]


def histories(dialogues: list[dict[str, Any]], min_chars: int) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for dialogue in dialogues:
        current.extend(dialogue["messages"])
        if sum(len(m["content"]) for m in current) > min_chars:
            out.append(current)
            current = []
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    dialogues = load_dialogues(Path(args.path))
    hist = histories(dialogues, args.min_chars)
    ratios: list[float] = []
    kept = total = 0
    started = time.perf_counter()
    for turns in hist:
        messages = [
            ChatMessage(role="user" if t["role"] == "usr" else "assistant", content=t["content"])
            for t in turns
        ]
        original = count_tokens(messages)
        compressed = await compress_history(
            messages, budget_tokens=int(original * args.budget), keep_last=args.keep_last
        )
        ratios.append(count_tokens(compressed) / original)
        full = "\n".join(m["content"] for m in turns)
        text = "\n".join(m.content for m in compressed)
        values = {
            a[3]
            for m in turns
            for a in m["dialog_act"]
            if a[0] == "Inform" and a[3] and a[3] in full
        }
        total += len(values)
        kept += sum(1 for v in values if v in text)
    elapsed = time.perf_counter() - started
    return {
        "histories": len(hist),
        "mean_chars": statistics.mean(sum(len(t["content"]) for t in h) for h in hist),
        "token_ratio_mean": statistics.mean(ratios),
        "token_ratio_max": max(ratios),
        "values": total,
        "values_kept": kept / total if total else 1.0,
        "ms_per_history": elapsed * 1000 / max(len(hist), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT))
    parser.add_argument("--min-chars", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--keep-last", type=int, default=4)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    out = sys.stdout
    out.write(f"histories over {args.min_chars} chars: {result['histories']} ")
    out.write(f"(mean {result['mean_chars']:.0f} chars)\n")
    out.write(
        f"tokens kept: mean {result['token_ratio_mean']:.1%}, max {result['token_ratio_max']:.1%}"
        f" (budget {args.budget:.0%})\n"
    )
    out.write(f"Inform values kept: {result['values_kept']:.1%} of {result['values']}\n")
    out.write(f"time: {result['ms_per_history']:.1f} ms per history\n")
    cmd = f"python -m bench.compression {args.path} --min-chars {args.min_chars} "
    cmd += f"--budget {args.budget} --keep-last {args.keep_last}"
    out.write(f"reproduce: {cmd}\n")


if __name__ == "__main__":
    main()
