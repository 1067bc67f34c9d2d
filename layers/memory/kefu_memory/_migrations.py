"""Schema migrations for the tables this package owns (`mem_*`, `kb_*`).

Plain SQL files ship as package data (`kefu_memory/migrations/NNNN_name.sql`) and are applied
in order, each in its own transaction, recorded in `kefu_memory_migrations`. A PostgreSQL
advisory lock serialises concurrent runs, so `migrate` is safe to call at every cold start.

Vector indexes depend on the embedder's dimension, which SQL files cannot know: `migrate`
also creates one partial HNSW index per requested dimension on the expression
`embedding::vector(dim)` (the pgvector way to index a column holding several dimensions).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from ._errors import MigrationError

__all__ = ["DEFAULT_DIMS", "Migration", "load_migrations", "migrate"]

logger = logging.getLogger("kefu.memory.migrate")

MIGRATIONS_TABLE = "kefu_memory_migrations"
DEFAULT_DIMS: tuple[int, ...] = (512,)
_LOCK_KEY = 0x6B65_6675_6D65_6D  # "kefumem"
VECTOR_TABLES = ("mem_facts", "kb_chunks")


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The SQL migrations shipped with the package, in order."""
    folder = resources.files("kefu_memory") / "migrations"
    found = [
        Migration(version=entry.name.removesuffix(".sql"), sql=entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found, key=lambda m: m.version)


def hnsw_index_statements(dim: int) -> list[tuple[str, sql.Composed]]:
    """(version, statement) pairs creating the HNSW indexes for one dimension."""
    out: list[tuple[str, sql.Composed]] = []
    for table in VECTOR_TABLES:
        out.append(
            (
                f"hnsw:{table}:{dim}",
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {idx} ON {table} USING hnsw "
                    "((embedding::vector({dim})) vector_cosine_ops) WHERE dim = {dim}"
                ).format(
                    idx=sql.Identifier(f"{table}_hnsw_{dim}"),
                    table=sql.Identifier(table),
                    dim=sql.Literal(dim),
                ),
            )
        )
    return out


async def _apply(conn: psycopg.AsyncConnection[object], dims: Iterable[int]) -> list[str]:
    applied: list[str] = []
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " version text PRIMARY KEY, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        cur = await conn.execute(f"SELECT version, checksum FROM {MIGRATIONS_TABLE}")
        done = {str(row[0]): str(row[1]) for row in await cur.fetchall()}  # type: ignore[index]
        for migration in load_migrations():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    logger.warning(
                        "applied migration differs from the shipped file",
                        extra={"version": migration.version},
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, checksum) VALUES (%s, %s)",
                    (migration.version, migration.checksum),
                )
            applied.append(migration.version)
            logger.info("applied migration", extra={"version": migration.version})
        for dim in sorted(set(dims)):
            for version, statement in hnsw_index_statements(dim):
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(statement)
                    await conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, checksum) VALUES (%s, %s)"
                        " ON CONFLICT (version) DO NOTHING",
                        (version, hashlib.sha256(statement.as_string().encode()).hexdigest()),
                    )
                applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


async def migrate(
    dsn_or_pool: str | AsyncConnectionPool[Any],
    *,
    dims: Iterable[int] = DEFAULT_DIMS,
) -> list[str]:
    """Apply pending migrations (and HNSW indexes for `dims`); return what was applied."""
    try:
        if isinstance(dsn_or_pool, str):
            async with await psycopg.AsyncConnection.connect(
                dsn_or_pool, autocommit=True
            ) as conn:
                return await _apply(conn, dims)
        async with dsn_or_pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                return await _apply(conn, dims)
            finally:
                await conn.set_autocommit(False)
    except psycopg.Error as exc:
        raise MigrationError("kefu_memory migration failed") from exc
