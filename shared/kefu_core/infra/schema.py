"""The database schema: applied at deploy time, verified cheaply at cold start.

Two sets of migrations make Kefu's schema: the core's (``kefu_core/infra/migrations``, recorded in
``kefu_core_migrations``) and the memory layer's (``kefu_memory/migrations`` plus the HNSW
index of the configured embedding dimension, recorded in ``kefu_memory_migrations``).

- :func:`apply_schema` applies both (``kefu migrate``; on AWS the ``SchemaMigration`` custom
  resource at deploy time, see :mod:`kefu_core.flows.deploy_migrations`; ``kefu run`` at start).
- :func:`verify_schema` is what a Lambda cold start does instead (``SCHEMA_MIGRATIONS=verify``):
  one query reads the names of the applied migrations, and a schema behind the code (a
  migration this code ships but the database lacks) is refused with :class:`SchemaBehind`,
  whose message names what is missing and how to apply it. The process then serves nothing
  (its first invocations fail, each with that message) rather than run on a schema it does
  not know. A schema ahead of the code (a newer deploy's migration) is accepted: migrations
  only add.
"""

from __future__ import annotations

import importlib.util
import logging
from importlib import resources
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

from kefu_core.infra.db import migrate
from kefu_core.infra.errors import StoreError

__all__ = ["SchemaBehind", "apply_schema", "expected_migrations", "verify_schema"]

logger = logging.getLogger("kefu.schema")


class SchemaBehind(StoreError):
    """The database lacks migrations this code needs."""


def _core_names() -> set[str]:
    folder = resources.files("kefu_core.infra") / "migrations"
    return {entry.name for entry in folder.iterdir() if entry.name.endswith(".sql")}


def _memory_versions() -> set[str] | None:
    """The memory layer's migration versions, read from its folder without importing it
    (importing kefu_memory loads its embedders and stores: a cold start of ``message``
    must not pay that);
    ``None`` when the function does not ship the memory layer."""
    spec = importlib.util.find_spec("kefu_memory")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "migrations"
    return {entry.name.removesuffix(".sql") for entry in folder.glob("*.sql")}


def expected_migrations() -> tuple[set[str], set[str] | None]:
    """The core migration names and the memory migration versions this code ships (``None``
    without the memory layer)."""
    return _core_names(), _memory_versions()


async def apply_schema(pool: AsyncConnectionPool, *, embedding_dim: int) -> list[str]:
    """Apply every pending core and memory migration (and the HNSW index for the configured
    embedder's dimension, :func:`kefu_core.answers.memory.embedding_dim`); the names applied
    now."""
    from kefu_memory import migrate as migrate_memory

    applied = await migrate(pool)
    applied += await migrate_memory(pool, dims=(embedding_dim,))
    return applied


async def verify_schema(pool: AsyncConnectionPool) -> None:
    """One query: raise :class:`SchemaBehind` when a shipped migration is not applied."""
    core, shipped_memory = expected_migrations()
    mem = shipped_memory or set()
    query = ("SELECT ARRAY(SELECT name FROM kefu_core_migrations),"
             + (" ARRAY(SELECT version FROM kefu_memory_migrations)"
                if shipped_memory is not None else " ARRAY[]::text[]"))
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(query)
            row = await cur.fetchone()
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaBehind(_behind(sorted(core) + sorted(mem))) from exc
    except psycopg.Error as exc:
        raise StoreError("cannot read the schema version") from exc
    applied_core, applied_memory = (set(row[0]), set(row[1])) if row else (set(), set())
    missing = sorted(core - applied_core) + sorted(mem - applied_memory)
    if missing:
        raise SchemaBehind(_behind(missing))


def _behind(missing: list[str]) -> str:
    return ("the database schema is behind this code (missing migrations: "
            f"{', '.join(missing)}): apply them with `kefu migrate` (on AWS the stack's "
            "SchemaMigration resource does at deploy time; see docs/deploy.md)")
