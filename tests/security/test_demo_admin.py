"""The demo administrator (``admin@demo.kefu`` with its published password) never works in
production, even on a database that was used in development; the first administrator comes
from ``kefu admin create`` or from SUPER_ADMIN_EMAIL / SUPER_ADMIN_PASSWORD instead.

Production configuration, the real admin app and the real ``kefu`` command.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from importlib import resources

import psycopg
import pytest

from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.agents import AgentStore
from kefu_core.product.tenants.bootstrap import (
    DEMO_ADMIN_EMAIL,
    DEMO_ADMIN_PASSWORD,
    ensure_bootstrap,
)
from kefu_core.product.tenants.passwords import hash_password
from kefu_core.product.tenants.tenants import ROOT_TENANT
from kefu_core.security.tokens import issue_token
from tests.support.production import STRONG_SECRET, production_admin


def _kefu(command: list[str], stdin: str,
          env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, input=stdin, env=env, text=True, capture_output=True,
                          timeout=120, check=False)


DEMO_LOGIN = {"tenant": "demo", "email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD}


async def test_a_development_databases_demo_admin_is_refused_in_production(
    make_database, redis_url,  # type: ignore[no-untyped-def]
) -> None:
    # GIVEN a database first used in development, where the demo admin was created
    dsn = make_database()
    pool = await open_pool(dsn, max_size=1)
    try:
        await migrate(pool)
        development = Settings(kefu_env="development", database_url=dsn, redis_url=redis_url,
                               token_secrets=[STRONG_SECRET])
        await ensure_bootstrap(pool, development)
        demo = next(a for a in await AgentStore(pool).list("demo")
                    if a.email == DEMO_ADMIN_EMAIL)
    finally:
        await pool.close()
    # WHEN the same database is served in production
    async with production_admin(pg_dsn=dsn, redis_url=redis_url) as admin:
        async with admin.client() as http:
            login = await http.post("/v1/agent/login", json=DEMO_LOGIN)
            # THEN the demo admin cannot sign in with the published password
            assert login.status_code == 401
            # AND a token it was given before is refused
            old = issue_token(secrets=[STRONG_SECRET], tenant_id="demo", subject=demo.id,
                              role="admin", ttl_s=600, version=demo.token_version)
            for path in ("/v1/me", "/v1/admin/agents"):
                response = await http.get(path, headers={"authorization": f"Bearer {old}"})
                assert response.status_code == 401, path


@pytest.fixture(scope="module")
def dsn(make_database) -> str:  # type: ignore[no-untyped-def]
    """A database for the tests that start from an empty one in production."""
    value: str = make_database()
    return value


async def test_production_never_creates_the_demo_admin(dsn: str, redis_url: str) -> None:
    async with production_admin(pg_dsn=dsn, redis_url=redis_url,
                                widget_keys=["demo-key:demo"]) as admin:
        async with admin.client() as http:
            # WHEN the production admin app starts serving (bootstrap runs on first use)
            assert (await http.post("/v1/visitor-token",
                                    json={"widget_key": "demo-key"})).status_code == 200
            assert (await http.post("/v1/agent/login", json=DEMO_LOGIN)).status_code == 401
        # THEN no demo account exists
        assert [a for a in await admin.deps.agents.list("demo")] == []


async def test_the_first_admin_comes_from_kefu_admin_create(dsn: str, redis_url: str) -> None:
    email = f"boss-{uuid.uuid4().hex[:6]}@acme.test"
    env = {**os.environ, "KEFU_ENV": "production", "DATABASE_URL": dsn,
           "TOKEN_SECRETS": STRONG_SECRET}
    command = [sys.executable, "-m", "kefu_core.cli", "admin", "create", "--tenant", "acme",
               "--email", email, "--name", "Boss", "--password-stdin"]
    # WHEN an operator runs `kefu admin create`, the password on standard input
    done = await asyncio.to_thread(_kefu, command, "a-long-first-password\n", env)
    # THEN the tenant and its administrator exist, and the password is not echoed
    assert done.returncode == 0, done.stderr
    assert "created tenant acme" in done.stdout and "a-long-first-password" not in done.stdout
    # AND a short password is refused, and a second account with the same address too
    short = await asyncio.to_thread(_kefu, command, "short\n", env)
    twice = await asyncio.to_thread(_kefu, command, "a-long-first-password\n", env)
    assert short.returncode == 2 and twice.returncode == 1
    # AND the administrator signs in in production and administers the tenant
    async with production_admin(pg_dsn=dsn, redis_url=redis_url) as admin:
        async with admin.client() as http:
            login = await http.post("/v1/agent/login", json={
                "tenant": "acme", "email": email, "password": "a-long-first-password"})
            assert login.status_code == 200, login.text
            assert login.json()["agent"]["role"] == "admin"
            agents = await http.get("/v1/admin/agents", headers={
                "authorization": f"Bearer {login.json()['token']}"})
            assert agents.status_code == 200


async def test_the_super_admin_from_the_environment_creates_tenants(
    dsn: str, redis_url: str,
) -> None:
    # GIVEN SUPER_ADMIN_EMAIL and SUPER_ADMIN_PASSWORD, as compose.yaml passes them
    async with production_admin(pg_dsn=dsn, redis_url=redis_url,
                                super_admin_email="root@ops.test",
                                super_admin_password="root-password-0123") as admin:
        async with admin.client() as http:
            assert (await http.get("/healthz")).status_code == 200
            login = await http.post("/v1/agent/login", json={
                "tenant": ROOT_TENANT, "email": "root@ops.test",
                "password": "root-password-0123"})
            assert login.status_code == 200, login.text
            # WHEN the super-admin creates a tenant with its first administrator
            created = await http.post(
                "/v1/tenants", headers={"authorization": f"Bearer {login.json()['token']}"},
                json={"id": "initech", "name": "Initech", "admin_email": "boss@initech.test",
                      "admin_password": "boss-password-0123"})
            assert created.status_code == 201, created.text
            # THEN that administrator signs in
            boss = await http.post("/v1/agent/login", json={
                "tenant": "initech", "email": "boss@initech.test",
                "password": "boss-password-0123"})
            assert boss.status_code == 200


async def test_a_demo_admin_created_before_the_upgrade_is_refused_too(
    make_database, redis_url,  # type: ignore[no-untyped-def]
) -> None:
    # GIVEN a database of an earlier version (migrations 001 and 002) with the demo admin
    dsn = make_database()
    folder = resources.files("kefu_core.infra") / "migrations"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kefu_core_migrations (name text PRIMARY KEY,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        for name in ("001_conversations.sql", "002_product.sql"):
            conn.execute((folder / name).read_text(encoding="utf-8").encode())
            conn.execute("INSERT INTO kefu_core_migrations (name) VALUES (%s)", (name,))
        conn.execute("INSERT INTO tenants (id, name) VALUES ('demo', 'demo')")
        conn.execute("INSERT INTO agents (id, tenant_id, email, name, role, password_hash)"
                     " VALUES ('a-old-demo', 'demo', %s, 'Demo admin', 'admin', %s)",
                     (DEMO_ADMIN_EMAIL, hash_password(DEMO_ADMIN_PASSWORD)))
    # WHEN the new version starts in production (migrations applied)
    async with production_admin(pg_dsn=dsn, redis_url=redis_url) as admin:
        async with admin.client() as http:
            login = await http.post("/v1/agent/login", json=DEMO_LOGIN)
    # THEN the old demo admin is flagged and refused
    assert login.status_code == 401
