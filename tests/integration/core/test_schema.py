"""Migrations at deploy time, a cheap check at cold start: a function whose database lacks a
migration refuses to serve, naming what is missing; once `kefu migrate` (or the deploy's
SchemaMigration resource) applied it, the check passes with one query."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kefu_core.answers.memory import embedding_dim
from kefu_core.infra.db import open_pool
from kefu_core.infra.schema import SchemaBehind, apply_schema, expected_migrations, verify_schema
from kefu_core.infra.settings import Settings


async def test_a_schema_behind_the_code_is_refused_until_it_is_migrated(
    make_database: Callable[[], str],
) -> None:
    dsn = make_database()
    pool = await open_pool(dsn, min_size=1, max_size=1)
    try:
        # GIVEN a database nobody migrated
        # WHEN a cold start verifies it THEN it is refused, with the way out in the message
        with pytest.raises(SchemaBehind, match="kefu migrate"):
            await verify_schema(pool)
        # WHEN the migrations are applied (what `kefu migrate` and the deploy do)
        dim = embedding_dim(Settings(kefu_env="production"))
        applied = await apply_schema(pool, embedding_dim=dim)
        # THEN the check passes
        await verify_schema(pool)
        core, memory = expected_migrations()
        assert core <= set(applied) and memory is not None and memory <= set(applied)
        # AND a migration this code ships but the database lost makes it refuse again
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM kefu_core_migrations WHERE name = %s",
                               (max(core),))
        with pytest.raises(SchemaBehind, match=max(core)):
            await verify_schema(pool)
    finally:
        await pool.close()
