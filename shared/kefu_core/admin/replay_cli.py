"""``kefu replay``: re-ask the visitor questions of a tenant's stored conversations (or of a JSONL
set) against the current knowledge base, curated answers and published tuning, and against a
draft, and print the figures before and after (:mod:`kefu_core.flows.replay`).

Reaches the database and Redis as the deployment does (``DATABASE_URL``, ``REDIS_URL``). The
offline engine answers unless ``--engines tenant`` is given. Nothing is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kefu_core.admin.personal_data_cli import _NoConnections
from kefu_core.infra.errors import KefuError

if TYPE_CHECKING:
    from kefu_core.flows.replay import ReplayReport

__all__ = ["add_parser", "format_report"]

MAX_QUESTIONS = 5000


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("replay", help="replay visitors' questions: published vs draft",
                         description=__doc__)
    cmd.add_argument("--tenant", required=True, help="tenant id, e.g. acme")
    cmd.add_argument("--file", help="a JSONL set instead of the stored conversations: lines "
                                    '{"question": ...}, visitor messages or exported '
                                    "conversations")
    cmd.add_argument("--days", type=int, default=30,
                     help="stored conversations of the last N days (default 30)")
    cmd.add_argument("--limit", type=int, default=200,
                     help=f"questions replayed, at most (default 200, max {MAX_QUESTIONS})")
    cmd.add_argument("--draft", help="a JSON file with the draft tuning (default: the "
                                     "tenant's stored draft; none: published only)")
    cmd.add_argument("--engines", choices=("offline", "tenant"), default="offline",
                     help="who answers: the offline engine (default) or the tenant's chain")
    cmd.add_argument("--min-score", type=float, default=0.0,
                     help="a retrieval hit's least fused score (default 0)")
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    cmd.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    from kefu_core.deps import build_deps
    from kefu_core.flows.replay import file_questions, replay, stored_questions
    from kefu_core.infra.secret_settings import get_settings
    from kefu_core.product.prompt_versions import PromptWorkbench, Tuning

    if not 1 <= args.limit <= MAX_QUESTIONS or not 1 <= args.days <= 366:
        print("kefu replay: --limit or --days out of range", file=sys.stderr)
        return 2
    settings = get_settings()
    try:
        given: list[str] | None = None
        if args.file:
            with Path(args.file).open(encoding="utf-8") as lines:
                given = file_questions(lines, limit=args.limit)
        draft_given = (Tuning.model_validate_json(Path(args.draft).read_text(encoding="utf-8"))
                       if args.draft else None)
    except (OSError, ValueError) as exc:
        print(f"kefu replay: {exc}", file=sys.stderr)
        return 2

    async def run() -> str:
        none = _NoConnections()
        deps = await build_deps(settings, poster=none, invoker=none)
        try:
            questions = given if given is not None else await stored_questions(
                deps, tenant_id=args.tenant, days=args.days, limit=args.limit)
            store = PromptWorkbench(deps.pool, deps.tenant_settings)
            draft = draft_given or await store.draft(args.tenant)
            report = await replay(deps, tenant_id=args.tenant, questions=questions,
                                  before=await store.published(args.tenant), after=draft,
                                  engines=args.engines, min_score=args.min_score)
        finally:
            await deps.aclose()
        return report.model_dump_json(indent=2) if args.json else format_report(report)

    try:
        print(asyncio.run(run()))
    except KefuError as exc:
        print(f"kefu replay: {exc.detail}", file=sys.stderr)
        return 1
    return 0


def format_report(report: ReplayReport) -> str:
    """The report as a table: one row per figure, a column per tuning."""
    columns = [("published", report.before)] + (
        [("draft", report.after)] if report.after is not None else [])
    rows = [("retrieval hit rate", "retrieval_hit_rate"), ("curated hits", "curated_hits"),
            ("refusals", "refusals"), ("refusal rate", "refusal_rate"),
            ("grounded rate", "grounded_rate")]
    lines = [f"{report.questions} questions, knowledge base v{report.kb_version}, "
             f"engines: {report.engines}",
             f"{'':22}" + "".join(f"{name:>12}" for name, _ in columns)]
    for label, field in rows:
        values = [getattr(figures, field) for _, figures in columns]
        lines.append(f"{label:22}" + "".join(f"{_cell(v):>12}" for v in values))
    for change in report.changed:
        lines.append(f"changed: {json.dumps(change.question, ensure_ascii=False)} "
                     f"{change.before.model_dump()} -> {change.after.model_dump()}")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}"
    return str(value)
