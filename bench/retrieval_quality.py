"""Knowledge-base retrieval quality of the product's own query path, on CrossWOZ dialogues.

The knowledge base is every entity of ``--database DIR/*.json`` (one Markdown document per
entity, its name and domain as heading). The questions are the user turns of ``--dialogues``
that carry a ``Request`` act and whose answering system turn names exactly one entity
(``sys_state[domain].selectedResults``) that is in the database and informs the requested slot.

Each question is searched exactly as a reply searches: ``ConversationRetriever.search`` (the
function ``MemoryService`` calls) with the question and the dialogue's earlier
turns as text (visitor and assistant utterances, nothing else: no annotations, no
``sys_state``, no ``dialog_act``). The annotations only score: which entity is right, and which
population a question belongs to, decided from the text (was the right entity's name written
in an earlier turn, in the question itself, or nowhere before the answer).

    .venv/bin/python -m bench.retrieval_quality [--dialogues FILE] [--database DIR] [--dsn DSN]
        [--limit N] [--upper-bound]

FILE is any CrossWOZ-format JSON or zip (default: the validation split in
../shared/data/crosswoz/); the data is read there and never copied into the project.
``--upper-bound`` adds the former annotation-built query (the entity the dialogue state had
selected), labelled as an upper bound: the product never has those annotations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bench import embedder_choice
from kefu_memory import KnowledgeBase, Passage, Turn, migrate
from kefu_memory.retrieval import ConversationRetriever

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "crosswoz"
TENANT = "bench-crosswoz"
BUCKETS = {
    "all": "all questions",
    "earlier": "entity already named in the conversation (its name in an earlier turn's text)",
    "question": "entity named in the question itself (not before)",
    "unnamed": "entity not named before the answer (the system picks it)",
}


@dataclass
class Question:
    text: str
    history: list[Turn]
    gold: str
    answers: list[str]
    bucket: str
    annotated_query: str  # the former, annotation-built query (upper bound only)


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


def load_entities(database: Path) -> dict[str, str]:
    docs: dict[str, str] = {}
    for file in sorted(database.glob("*.json")):
        for name, attrs in json.loads(file.read_text(encoding="utf-8")):
            domain = attrs.get("领域", file.stem)
            docs[f"{domain}:{name}"] = render(domain, name, attrs)
    return docs


def load_dialogues(path: Path) -> list[dict[str, Any]]:
    """CrossWOZ-format dialogues from a .json file or a .zip holding one."""
    if path.is_dir():
        path = path / "val.json.zip"
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".json"))
            data = json.loads(archive.read(name))
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
    items = data.values() if isinstance(data, dict) else data
    return [d for d in items if isinstance(d, dict) and d.get("messages")]


def _turn(message: dict[str, Any]) -> Turn:
    return Turn(role="user" if message["role"] == "usr" else "assistant",
                content=message["content"])


def load_questions(dialogues: list[dict[str, Any]], docs: dict[str, str]
                   ) -> tuple[list[Question], int]:
    questions: list[Question] = []
    skipped = 0
    for dialogue in dialogues:
        messages = dialogue["messages"]
        selected: dict[str, str] = {}  # annotation state, for the upper-bound query only
        previous_sys = ""
        for i, message in enumerate(messages):
            if message["role"] == "sys":
                previous_sys = message["content"]
                for domain, state in message.get("sys_state", {}).items():
                    chosen = state.get("selectedResults") or []
                    if len(chosen) == 1:
                        selected[domain] = chosen[0]
                for intent, domain, slot, value in message["dialog_act"]:
                    if intent == "Inform" and slot == "名称" and value:
                        selected[domain] = value
                continue
            requests = [a for a in message["dialog_act"] if a[0] == "Request"]
            if not requests or i + 1 >= len(messages):
                continue
            answer_turn = messages[i + 1]
            for domain in dict.fromkeys(a[1] for a in requests):
                slots = {a[2] for a in requests if a[1] == domain}
                chosen = answer_turn.get("sys_state", {}).get(domain, {}).get(
                    "selectedResults") or []
                answers = [
                    str(a[3]) for a in answer_turn["dialog_act"]
                    if a[0] == "Inform" and a[1] == domain and a[2] in slots and a[3]
                ]
                gold = f"{domain}:{chosen[0]}" if len(chosen) == 1 else ""
                if not gold or gold not in docs or not answers:
                    skipped += 1
                    continue
                name = chosen[0]
                earlier = [m["content"] for m in messages[:i]]
                bucket = ("earlier" if any(name in text for text in earlier)
                          else "question" if name in message["content"] else "unnamed")
                known = selected.get(domain)
                context = f"{known}（{domain}）" if known else previous_sys
                questions.append(Question(
                    text=message["content"], history=[_turn(m) for m in messages[:i]],
                    gold=gold, answers=answers, bucket=bucket,
                    annotated_query=f"{context} {message['content']}",
                ))
    return questions, skipped


async def ingest(kb: KnowledgeBase, tenant: str, docs: dict[str, str], workers: int = 4
                 ) -> tuple[int, float]:
    started = time.perf_counter()
    queue = list(docs.items())
    changed = 0

    async def worker() -> None:
        nonlocal changed
        while queue:
            name, text = queue.pop()
            result = await kb.ingest_document(tenant_id=tenant, name=name, content=text,
                                              content_type="text/markdown")
            changed += result.changed

    await asyncio.gather(*(worker() for _ in range(workers)))
    return changed, time.perf_counter() - started


def _score(scores: dict[str, Score], question: Question, passages: list[Passage],
           latency_ms: float) -> None:
    ranked: list[str] = []
    for p in passages:
        if p.document not in ranked:
            ranked.append(p.document)
    top5_text = "\n".join(p.heading + p.content for p in passages[:5])
    for bucket in ("all", question.bucket):
        s = scores.setdefault(bucket, Score())
        s.n += 1
        s.r1 += ranked[:1] == [question.gold]
        s.r5 += question.gold in ranked[:5]
        s.value5 += all(a in top5_text for a in question.answers)
        s.latencies.append(latency_ms)


async def evaluate(kb: KnowledgeBase, tenant: str, questions: list[Question], *,
                   upper_bound: bool) -> dict[str, dict[str, Score]]:
    retriever = ConversationRetriever(kb)
    version = await kb.kb_version(tenant)
    rows: dict[str, dict[str, Score]] = {"product": {}, "question alone": {}}
    if upper_bound:
        rows["upper bound (uses gold annotations)"] = {}
    for question in questions:
        t0 = time.perf_counter()
        passages, _ = await retriever.search(tenant, question.text, question.history, k=20,
                                             version=version)
        _score(rows["product"], question, passages, (time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        passages = await kb.search(tenant, question.text, k=20)
        _score(rows["question alone"], question, passages, (time.perf_counter() - t0) * 1000)
        if upper_bound:
            t0 = time.perf_counter()
            passages = await kb.search(tenant, question.annotated_query, k=20)
            _score(rows["upper bound (uses gold annotations)"], question, passages,
                   (time.perf_counter() - t0) * 1000)
    return rows


def query_cost_ms(kb: KnowledgeBase, questions: list[Question], index: Any) -> float:
    """Mean time of the rule-based query alone (no search), in milliseconds."""
    retriever = ConversationRetriever(kb)
    started = time.perf_counter()
    for question in questions:
        retriever.query(question.text, question.history, index)
    return (time.perf_counter() - started) * 1000 / max(len(questions), 1)


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "  -  "


async def main_async(args: argparse.Namespace) -> int:
    dialogues_path, database = Path(args.dialogues), Path(args.database)
    dsn = args.dsn
    if not dsn:
        from kefu_core.infra.embedded import EmbeddedPostgres

        dsn = EmbeddedPostgres(data_dir=Path(".kefu/bench-pg"),
                               database="kefu_bench_quality").start()
    embedder, kb_settings = embedder_choice.build(args.embedder, args.vector_weight)
    await migrate(dsn, dims=(embedder.dim,))
    docs = load_entities(database)
    questions, skipped = load_questions(load_dialogues(dialogues_path), docs)
    if args.limit:
        questions = questions[: args.limit]
    async with AsyncConnectionPool(dsn, min_size=2, max_size=6, open=False) as pool:
        kb = KnowledgeBase(pool, embedder, **kb_settings)
        for stale in set(await kb.document_names(args.tenant)) - set(docs):
            await kb.delete_document(tenant_id=args.tenant, name=stale)
        changed, ingest_s = await ingest(kb, args.tenant, docs)
        rows = await evaluate(kb, args.tenant, questions, upper_bound=args.upper_bound)
        retriever = ConversationRetriever(kb)
        index = await retriever.entities(args.tenant, await kb.kb_version(args.tenant))
        cost = query_cost_ms(kb, questions, index)
    print(f"CrossWOZ knowledge-base retrieval: {dialogues_path}")
    print(f"  knowledge base: {len(docs)} entities from {database} ({changed} (re)ingested in"
          f" {ingest_s:.1f} s), {len(index)} entity names indexed from its titles")
    print(f"  questions: {len(questions)} user Request turns with one answering entity"
          f" ({skipped} skipped: no single entity in the database or no informed answer)")
    print(f"  search: hybrid ({args.embedder}), embedder {embedder.name}/{embedder.dim}; rule-based"
          f" query {cost:.2f} ms per question (pure Python, no search)")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"  {'query':38} {'population':9} {'n':>5} {'recall@1':>9} {'recall@5':>9}"
          f" {'value@5':>8} {'p50 ms':>7}")
    for row, scores in rows.items():
        for bucket in BUCKETS:
            s = scores.get(bucket, Score())
            p50 = statistics.median(s.latencies) if s.latencies else 0.0
            print(f"  {row:38} {bucket:9} {s.n:5d} {ratio(s.r1, s.n):>9} {ratio(s.r5, s.n):>9}"
                  f" {ratio(s.value5, s.n):>8} {p50:7.1f}")
    print()
    for bucket, meaning in BUCKETS.items():
        print(f"  {bucket:9} = {meaning}")
    print("  product = the reply path's own query (question + earlier turns' text, catalogue"
          " records matched on the properties asked for); question alone = the visitor's last"
          " message only")
    product = rows["product"]["all"]
    print()
    r1, r5 = ratio(product.r1, product.n), ratio(product.r5, product.n)
    print(f"product recall@1 {r1} recall@5 {r5}")
    command = ("  reproduce: .venv/bin/python -m bench.retrieval_quality"
               f" --dialogues {args.dialogues} --database {args.database}")
    if args.limit:
        command += f" --limit {args.limit}"
    if args.upper_bound:
        command += " --upper-bound"
    if args.embedder != "offline":
        command += f" --embedder {args.embedder}"
    if args.vector_weight is not None:
        command += f" --vector-weight {args.vector_weight}"
    print(command)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval_quality",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dialogues", default=str(DATA / "val.json.zip"),
                        help="CrossWOZ-format dialogues, .json or .zip")
    parser.add_argument("--database", default=str(DATA / "database"),
                        help="folder of CrossWOZ database *.json files (the knowledge base)")
    parser.add_argument("--dsn", help="PostgreSQL with pgvector (default: embedded)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--upper-bound", action="store_true",
                        help="also the annotation-built query (an upper bound, not the product)")
    parser.add_argument("--tenant", default=TENANT, help="tenant id to ingest into")
    embedder_choice.add_argument(parser)
    args = parser.parse_args(argv)
    if args.embedder == "use-multilingual" and args.tenant == TENANT:
        args.tenant = f"{TENANT}-use"  # its vectors have another dimension
    if not Path(args.database).is_dir() or not Path(args.dialogues).exists():
        print(f"CrossWOZ data not found (dialogues {args.dialogues}, database {args.database})")
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
