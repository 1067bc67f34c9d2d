"""Migrations: idempotent, recorded in kefu_memory_migrations, runnable as a command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import psycopg
from psycopg_pool import AsyncConnectionPool

from kefu_memory import migrate
from kefu_memory._migrations import load_migrations


async def test_migrate_is_idempotent_and_creates_the_prefixed_tables(
    make_database: Callable[[], str],
) -> None:
    # GIVEN a fresh database
    dsn = make_database()
    # WHEN migrated twice, the second time through a pool and with one more dimension
    first = await migrate(dsn)
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=1, open=False)
    await pool.open()
    second = await migrate(pool)
    third = await migrate(pool, dims=(512, 1536))
    await pool.close()
    # THEN the SQL files ran once, then nothing, then only the new indexes
    versions = [m.version for m in load_migrations()]
    assert first == [*versions, "hnsw:mem_facts:512", "hnsw:kb_chunks:512"]
    assert second == []
    assert third == ["hnsw:mem_facts:1536", "hnsw:kb_chunks:1536"]
    with psycopg.connect(dsn) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%hnsw%'").fetchall()}
    assert tables == {"kefu_memory_migrations", "mem_facts", "mem_fact_sources", "mem_erasures",
                      "kb_tenants", "kb_documents", "kb_chunks", "kb_postings", "kb_terms"}
    assert indexes == {"mem_facts_hnsw_512", "kb_chunks_hnsw_512", "mem_facts_hnsw_1536",
                       "kb_chunks_hnsw_1536"}


def test_the_command_applies_and_reports(make_database: Callable[[], str]) -> None:
    # GIVEN a fresh database / WHEN the command runs twice / THEN it applies, then reports none
    dsn = make_database()
    cmd = [sys.executable, "-m", "kefu_memory.migrate", "--dsn", dsn]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    second = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    assert "0001_long_term" in first.stdout
    assert "up to date" in second.stdout
    assert "RuntimeWarning" not in first.stderr
