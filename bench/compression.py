"""Context compression on CrossWOZ: token ratio and share of annotated slot values kept.

Two populations, each reported on its own:
- single dialogues of at least ``--single-min-chars`` characters (default 400: the data's
  README population, median length about 420);
- histories built like a returning customer's: consecutive dialogues chained until the history
  passes ``--min-chars`` (default 1000; single dialogues rarely do).
Each history is compressed to ``--budget`` (default 0.5) of its own token count with
``kefu_llm.compress_history`` (extractive: no engine), keeping the last ``--keep-last`` messages
verbatim while they fit ``--verbatim-share`` of the budget. As on the reply path, the words of
the history that the tenant's knowledge base names are kept whole (``key_terms``, found by
``EntityIndex.terms_in``): the knowledge base is the CrossWOZ database ``--database DIR``, one
Markdown document per entity as the retrieval benchmark ingests it, and the index is built
from its chunks' headings and records as ``ConversationRetriever`` builds it (``--no-terms``:
without). The compressor only sees the dialogue text and that index; the annotations only
score: a value counts when an ``Inform`` act's value occurs verbatim in the original history
and is still present verbatim in the compressed one.

    python -m bench.compression [--dialogues FILE] [--database DIR] [--no-terms]
        [--single-min-chars 400] [--min-chars 1000] [--budget 0.5] [--keep-last 4]
        [--verbatim-share S]

FILE is any CrossWOZ-format JSON or zip (default ../shared/data/crosswoz/val.json.zip; a folder
means its val.json.zip). Goal on both populations: at most 50% of the tokens with at least 95%
of the values kept.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from kefu_llm import ChatMessage, compress_history, count_tokens
from kefu_llm._tokens import VERBATIM_SHARE
from kefu_memory import EntityIndex
from kefu_memory._chunking import chunk_document
from kefu_memory.records import RecordIndex

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = Path("../shared/data/crosswoz")


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


def singles(dialogues: list[dict[str, Any]], min_chars: int) -> list[list[dict[str, Any]]]:
    return [d["messages"] for d in dialogues
            if sum(len(m["content"]) for m in d["messages"]) >= min_chars]


def histories(dialogues: list[dict[str, Any]], min_chars: int) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for dialogue in dialogues:
        current.extend(dialogue["messages"])
        if sum(len(m["content"]) for m in current) > min_chars:
            out.append(current)
            current = []
    return out


def knowledge_index(database: Path) -> EntityIndex:
    """The entity index the reply path would hold for a tenant whose knowledge base is the
    CrossWOZ database: its documents chunked as `KnowledgeBase` ingests them, names from the
    chunks' headings (`KnowledgeBase.titles`), records from their ``key：value`` lines
    (`KnowledgeBase.record_chunks`), built as `ConversationRetriever` builds it."""
    from bench.retrieval_quality import load_entities

    chunks = [(name, c.heading, c.text)
              for name, text in load_entities(database).items()
              for c in chunk_document(text, "markdown") if c.heading]
    index = EntityIndex.from_headings(dict.fromkeys((d, h) for d, h, _ in chunks))
    return dataclasses.replace(index, records=RecordIndex.from_chunks(chunks, index.kinds))


async def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    dialogues = load_dialogues(Path(args.dialogues))
    index = None
    if not args.no_terms:
        started = time.perf_counter()
        index = knowledge_index(Path(args.database))
        sys.stdout.write(f"knowledge index: {len(index)} names, {len(index.records or ())}"
                         f" records from {args.database}"
                         f" (built once per tenant: {time.perf_counter() - started:.1f} s)\n")
    return {
        "single": await measure(singles(dialogues, args.single_min_chars), args, index),
        "chained": await measure(histories(dialogues, args.min_chars), args, index),
    }


async def measure(hist: list[list[dict[str, Any]]], args: argparse.Namespace,
                  index: EntityIndex | None) -> dict[str, Any]:
    ratios: list[float] = []
    kept = total = 0
    started = time.perf_counter()
    for turns in hist:
        messages = [
            ChatMessage(role="user" if t["role"] == "usr" else "assistant", content=t["content"])
            for t in turns
        ]
        original = count_tokens(messages)
        terms = index.terms_in("\n".join(m.content for m in messages)) if index else []
        compressed = await compress_history(
            messages, budget_tokens=int(original * args.budget), keep_last=args.keep_last,
            verbatim_share=args.verbatim_share, key_terms=terms,
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
    parser.add_argument("--dialogues", default=str(DEFAULT / "val.json.zip"),
                        help="CrossWOZ-format dialogues, .json or .zip")
    parser.add_argument("--single-min-chars", type=int, default=400)
    parser.add_argument("--min-chars", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--database", default=str(DEFAULT / "database"),
                        help="CrossWOZ database folder: the tenant's knowledge base")
    parser.add_argument("--no-terms", action="store_true",
                        help="compress without the knowledge base's names and values")
    parser.add_argument("--keep-last", type=int, default=4)
    parser.add_argument("--verbatim-share", type=float, default=VERBATIM_SHARE)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    out = sys.stdout
    out.write(f"dialogues: {args.dialogues}\n")
    out.write(f"{'population':44} {'n':>5} {'chars':>6} {'tokens mean':>11} {'max':>6}"
              f" {'values':>6} {'kept':>6} {'ms':>6}\n")
    labels = {"single": f"single dialogues >= {args.single_min_chars} chars",
              "chained": f"chained histories > {args.min_chars} chars"}
    for key, result in results.items():
        out.write(f"{labels[key]:44} {result['histories']:5d} {result['mean_chars']:6.0f}"
                  f" {result['token_ratio_mean']:11.1%} {result['token_ratio_max']:6.1%}"
                  f" {result['values']:6d} {result['values_kept']:6.1%}"
                  f" {result['ms_per_history']:6.1f}\n")
    out.write(f"goal: tokens <= {args.budget:.0%} and values kept >= 95% on both populations\n")
    cmd = (f"python -m bench.compression --dialogues {args.dialogues}"
           + (" --no-terms" if args.no_terms else f" --database {args.database}")
           + f" --single-min-chars {args.single_min_chars} --min-chars {args.min_chars}"
           f" --budget {args.budget} --keep-last {args.keep_last}"
           f" --verbatim-share {args.verbatim_share}")
    out.write(f"reproduce: {cmd}\n")


if __name__ == "__main__":
    main()
