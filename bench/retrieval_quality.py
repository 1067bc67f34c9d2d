"""Knowledge-base retrieval quality on CrossWOZ (Chinese, real dialogues).

The knowledge base is every entity of `database/*.json` (one document per entity, rendered as
Markdown with the entity name as heading). The questions are the user turns of `val.json.zip`
that carry a `Request` act, whose answering system turn names exactly one entity
(`sys_state[domain].selectedResults`) that is in the database and informs the requested slot.

The query is the user's utterance prefixed with what the dialogue so far says the user is
talking about: the entity the system last selected or informed by name in that domain. When the
dialogue has not named one yet, the previous system utterance is used instead.

Reported, for the offline embedder alone, keyword (BM25) alone and hybrid (RRF):
recall@1 and recall@5 of the document holding the answer, and how often every answer value
appears in the top-5 passages.

    .venv/bin/python -m bench.retrieval_quality [../shared/data/crosswoz/] [--dsn DSN]

The data is read from the given folder and never copied into the project.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from kefu_memory import KnowledgeBase, OfflineEmbedder, migrate

TENANT = "bench-crosswoz"
MODES = ("vector", "keyword", "hybrid")


@dataclass
class Question:
    query: str
    gold: str
    answers: list[str]
    with_context: bool


@dataclass
class Score:
    n: int = 0
    r1: int = 0
    r5: int = 0
    value5: int = 0
    latencies: list[float] = field(default_factory=list)


def render(domain: str, name: str, attrs: dict[str, Any]) -> str:
    lines = [f"# {name}（{domain}）", ""]
    for key, value in attrs.items():
        if key in ("名称", "领域"):
            continue
        if isinstance(value, list):
            value = "、".join(str(v) for v in value)
        if value in (None, ""):
            continue
        lines.extend([f"{key}：{value}", ""])
    return "\n".join(lines)


def load_entities(root: Path) -> dict[str, str]:
    docs: dict[str, str] = {}
    for file in sorted((root / "database").glob("*.json")):
        for name, attrs in json.loads(file.read_text(encoding="utf-8")):
            domain = attrs.get("领域", file.stem)
            docs[f"{domain}:{name}"] = render(domain, name, attrs)
    return docs


def load_questions(root: Path, docs: dict[str, str]) -> tuple[list[Question], int]:
    with zipfile.ZipFile(root / "val.json.zip") as archive:
        dialogues = json.loads(archive.read("val.json"))
    questions: list[Question] = []
    skipped = 0
    for dialogue in dialogues.values():
        messages = dialogue["messages"]
        entity: dict[str, str] = {}
        previous_sys = ""
        for i, message in enumerate(messages):
            if message["role"] == "sys":
                previous_sys = message["content"]
                for domain, state in message.get("sys_state", {}).items():
                    selected = state.get("selectedResults") or []
                    if len(selected) == 1:
                        entity[domain] = selected[0]
                for intent, domain, slot, value in message["dialog_act"]:
                    if intent == "Inform" and slot == "名称" and value:
                        entity[domain] = value
                continue
            requests = [a for a in message["dialog_act"] if a[0] == "Request"]
            if not requests or i + 1 >= len(messages):
                continue
            answer_turn = messages[i + 1]
            for domain in dict.fromkeys(a[1] for a in requests):
                slots = {a[2] for a in requests if a[1] == domain}
                selected = answer_turn["sys_state"].get(domain, {}).get("selectedResults") or []
                answers = [
                    str(a[3]) for a in answer_turn["dialog_act"]
                    if a[0] == "Inform" and a[1] == domain and a[2] in slots and a[3]
                ]
                gold = f"{domain}:{selected[0]}" if len(selected) == 1 else ""
                if not gold or gold not in docs or not answers:
                    skipped += 1
                    continue
                known = entity.get(domain)
                context = f"{known}（{domain}）" if known else previous_sys
                questions.append(
                    Question(
                        query=f"{context} {message['content']}",
                        gold=gold,
                        answers=answers,
                        with_context=known is not None,
                    )
                )
    return questions, skipped


async def ingest(
    kb: KnowledgeBase, tenant: str, docs: dict[str, str], workers: int = 4
) -> tuple[int, float]:
    started = time.perf_counter()
    queue = list(docs.items())
    changed = 0

    async def worker() -> None:
        nonlocal changed
        while queue:
            name, text = queue.pop()
            result = await kb.ingest_document(
                tenant_id=tenant, name=name, content=text, content_type="text/markdown"
            )
            changed += result.changed

    await asyncio.gather(*(worker() for _ in range(workers)))
    return changed, time.perf_counter() - started


async def evaluate(
    kb: KnowledgeBase, tenant: str, questions: list[Question]
) -> dict[str, dict[str, Score]]:
    scores: dict[str, dict[str, Score]] = {
        mode: {"all": Score(), "context": Score(), "no_context": Score()} for mode in MODES
    }
    for question in questions:
        for mode in MODES:
            t0 = time.perf_counter()
            passages = await kb.search(tenant, question.query, k=20, mode=mode)  # type: ignore[arg-type]
            latency = (time.perf_counter() - t0) * 1000
            ranked_docs: list[str] = []
            for p in passages:
                if p.document not in ranked_docs:
                    ranked_docs.append(p.document)
            top5_text = "\n".join(p.content + p.heading for p in passages[:5])
            for bucket in ("all", "context" if question.with_context else "no_context"):
                s = scores[mode][bucket]
                s.n += 1
                s.r1 += ranked_docs[:1] == [question.gold]
                s.r5 += question.gold in ranked_docs[:5]
                s.value5 += all(a in top5_text for a in question.answers)
                s.latencies.append(latency)
    return scores


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "   - "


async def main_async(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not (root / "database").is_dir() or not (root / "val.json.zip").is_file():
        print(f"CrossWOZ not found at {root} (need database/*.json and val.json.zip)")
        return 2
    dsn = args.dsn
    if not dsn:
        from kefu_core.embedded import EmbeddedPostgres

        dsn = EmbeddedPostgres(
            data_dir=Path(".kefu/bench-pg"), database="kefu_bench_quality"
        ).start()
    embedder = OfflineEmbedder(dim=args.dim)
    await migrate(dsn, dims=(embedder.dim,))
    docs = load_entities(root)
    questions, skipped = load_questions(root, docs)
    if args.limit:
        questions = questions[: args.limit]
    async with AsyncConnectionPool(dsn, min_size=2, max_size=6, open=False) as pool:
        kb = KnowledgeBase(pool, embedder, max_chunk_tokens=args.chunk_tokens)
        existing = set(await kb.document_names(args.tenant))
        for stale in existing - set(docs):
            await kb.delete_document(tenant_id=args.tenant, name=stale)
        changed, ingest_s = await ingest(kb, args.tenant, docs)
        scores = await evaluate(kb, args.tenant, questions)
    print("CrossWOZ knowledge-base retrieval (val split)")
    print(f"  knowledge base: {len(docs)} entities ({changed} (re)ingested in {ingest_s:.1f} s;"
          f" unchanged documents are skipped by content hash)")
    print(f"  questions: {len(questions)} user Request turns with one answering entity"
          f" ({skipped} skipped: no single entity in the database or no informed answer)")
    print(f"  embedder: {embedder.name}, dim {embedder.dim}")
    print()
    print(f"  {'mode':8} {'subset':11} {'n':>5} {'recall@1':>9} {'recall@5':>9}"
          f" {'value@5':>8} {'p50 ms':>7}")
    for mode in MODES:
        for bucket in ("all", "context", "no_context"):
            s = scores[mode][bucket]
            p50 = statistics.median(s.latencies) if s.latencies else 0.0
            print(f"  {mode:8} {bucket:11} {s.n:5d} {pct(s.r1, s.n):>9} {pct(s.r5, s.n):>9}"
                  f" {pct(s.value5, s.n):>8} {p50:7.1f}")
    print()
    print("  subsets: context = the dialogue had already named the entity; no_context = it had"
          " not (the question asks for one by constraints)")
    command = "  reproduce: .venv/bin/python -m bench.retrieval_quality " + str(args.path)
    if args.dsn:
        command += " --dsn <DSN>"
    if args.dim != 512:
        command += f" --dim {args.dim}"
    if args.limit:
        command += f" --limit {args.limit}"
    print(command)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval_quality")
    parser.add_argument("path", nargs="?", default="../shared/data/crosswoz/")
    parser.add_argument(
        "--dsn", help="PostgreSQL with pgvector (default: embedded, kefu_bench_quality)"
    )
    parser.add_argument("--dim", type=int, default=512, help="offline embedder dimension")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--chunk-tokens", type=int, default=200, help="chunk size (tokens)")
    parser.add_argument("--tenant", default=TENANT, help="tenant id to ingest into")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
