"""Command line: `python -m kefu_memory.migrate --dsn postgresql://... [--dims 384,1536]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from ._migrations import DEFAULT_DIMS, migrate

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kefu_memory.migrate",
        description="Apply kefu_memory's schema migrations (idempotent).",
    )
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"), help="PostgreSQL DSN")
    parser.add_argument(
        "--dims",
        default=",".join(str(d) for d in DEFAULT_DIMS),
        help="embedding dimensions to create HNSW indexes for (comma separated)",
    )
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("--dsn or DATABASE_URL is required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    dims = [int(d) for d in str(args.dims).split(",") if d.strip()]
    applied = asyncio.run(migrate(args.dsn, dims=dims))
    sys.stdout.write(f"applied: {', '.join(applied) if applied else 'nothing (up to date)'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
