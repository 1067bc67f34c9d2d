"""Revocation: an agent who is deactivated, demoted, whose password changes or who signs out
everywhere loses access at once, over the admin API and the WebSocket, whatever token it holds;
agent tokens are short-lived and a console stays signed in by refreshing them.

Production configuration (``KEFU_ENV=production``, a strong token secret), the real admin app
and a real gateway with real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kefu_core.infra.db import open_pool
from kefu_core.product.tenants.agents import Agent
from kefu_core.security.tokens import issue_token
from tests.support.gateway import RunningGateway, redis_prefix_removed, run_gateway
from tests.support.production import (
    STRONG_SECRET,
    AdminHarness,
    production_admin,
    production_settings,
)
from tests.support.staff import make_staff

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def dsn(make_database) -> str:  # type: ignore[no-untyped-def]
    """One database for the module (each test uses its own agents and Redis prefix)."""
    value: str = make_database()
    return value


@pytest.fixture
async def admin(dsn: str, redis_url: str) -> AsyncIterator[AdminHarness]:
    async with production_admin(pg_dsn=dsn, redis_url=redis_url) as harness:
        yield harness


async def _sign_in(http: httpx.AsyncClient, agent: Agent, password: str = PASSWORD) -> str:
    response = await http.post("/v1/agent/login", json={
        "tenant": agent.tenant_id, "email": agent.email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_a_demoted_admins_old_token_no_longer_creates_admins(admin: AdminHarness) -> None:
    # GIVEN two administrators of a tenant, both signed in
    ann = await make_staff(admin.deps.pool, tenant_id="acme", role="admin", password=PASSWORD)
    bob = await make_staff(admin.deps.pool, tenant_id="acme", role="admin", password=PASSWORD)
    async with admin.client() as http:
        ann_token, bob_token = await _sign_in(http, ann), await _sign_in(http, bob)
        assert (await http.get("/v1/admin/agents", headers=_bearer(bob_token))).status_code == 200
        # WHEN Ann demotes Bob to a plain agent
        demoted = await http.patch(f"/v1/admin/agents/{bob.id}", headers=_bearer(ann_token),
                                   json={"role": "agent"})
        assert demoted.status_code == 200, demoted.text
        # THEN Bob's old admin token creates no administrator and reads nothing any more
        created = await http.post("/v1/admin/agents", headers=_bearer(bob_token), json={
            "email": "mallory@acme.test", "name": "Mallory", "password": "p" * 12,
            "role": "admin"})
        assert created.status_code == 401
        assert (await http.get("/v1/me", headers=_bearer(bob_token))).status_code == 401
        # AND signing in again gives him an agent's token, refused on admin routes
        again = await _sign_in(http, bob)
        assert jwt.decode(again, options={"verify_signature": False})["role"] == "agent"
        assert (await http.get("/v1/admin/agents", headers=_bearer(again))).status_code == 403
    assert [a.email for a in await admin.deps.agents.list("acme")
            if a.email.startswith("mallory")] == []


async def test_deactivation_new_password_and_sign_out_revoke_every_old_token(
    admin: AdminHarness,
) -> None:
    boss = await make_staff(admin.deps.pool, tenant_id="acme", role="admin", password=PASSWORD)
    async with admin.client() as http:
        boss_token = await _sign_in(http, boss)
        changes: list[tuple[str, Any]] = [
            ("deactivated", lambda a: http.patch(f"/v1/admin/agents/{a.id}",
                                                 headers=_bearer(boss_token),
                                                 json={"active": False})),
            ("new password", lambda a: http.patch(f"/v1/admin/agents/{a.id}",
                                                  headers=_bearer(boss_token),
                                                  json={"password": "a-brand-new-password"})),
            ("signed out by an admin", lambda a: http.post(
                f"/v1/admin/agents/{a.id}/sign-out", headers=_bearer(boss_token))),
            ("signed out everywhere", None),
        ]
        for label, change in changes:
            # GIVEN an agent signed in, whose token works
            agent = await make_staff(admin.deps.pool, tenant_id="acme", password=PASSWORD)
            token = await _sign_in(http, agent)
            assert (await http.get("/v1/me", headers=_bearer(token))).status_code == 200
            # WHEN its access changes
            if change is None:
                response = await http.post("/v1/agent/sign-out", headers=_bearer(token))
            else:
                response = await change(agent)
            assert response.status_code in (200, 204), (label, response.text)
            # THEN the old token is refused at once, and cannot be refreshed either
            assert (await http.get("/v1/me", headers=_bearer(token))).status_code == 401, label
            assert (await http.get("/v1/conversations",
                                   headers=_bearer(token))).status_code == 401, label
            refreshed = await http.post("/v1/agent/refresh", headers=_bearer(token))
            assert refreshed.status_code == 401, label
        # AND the deactivated agent cannot sign in again
        gone = next(a for a in await admin.deps.agents.list("acme") if not a.active)
        login = await http.post("/v1/agent/login", json={
            "tenant": "acme", "email": gone.email, "password": PASSWORD})
        assert login.status_code == 401


async def test_agent_tokens_are_short_lived_and_refresh_keeps_the_console_signed_in(
    admin: AdminHarness,
) -> None:
    agent = await make_staff(admin.deps.pool, tenant_id="acme", password=PASSWORD)
    async with admin.client() as http:
        login = (await http.post("/v1/agent/login", json={
            "tenant": "acme", "email": agent.email, "password": PASSWORD})).json()
        claims = jwt.decode(login["token"], options={"verify_signature": False})
        # THEN the token lives minutes, not hours
        assert login["expires_in"] <= 15 * 60
        assert claims["exp"] - claims["iat"] <= 15 * 60
        # WHEN the console refreshes it
        refreshed = await http.post("/v1/agent/refresh", headers=_bearer(login["token"]))
        assert refreshed.status_code == 200, refreshed.text
        fresh = refreshed.json()
        # THEN the new token works and is short-lived too
        assert fresh["expires_in"] <= 15 * 60 and fresh["agent"]["id"] == agent.id
        me = await http.get("/v1/me", headers=_bearer(fresh["token"]))
        assert me.status_code == 200 and me.json()["id"] == agent.id
        # AND an expired token cannot be refreshed
        expired = issue_token(secrets=[STRONG_SECRET], tenant_id="acme", subject=agent.id,
                              role="agent", ttl_s=60, now=time.time() - 3600,
                              version=agent.token_version)
        assert (await http.post("/v1/agent/refresh",
                                headers=_bearer(expired))).status_code == 401
        # AND a staff token without a version (as issued before) is refused
        unversioned = issue_token(secrets=[STRONG_SECRET], tenant_id="acme",
                                  subject=agent.id, role="agent", ttl_s=600)
        assert (await http.get("/v1/me", headers=_bearer(unversioned))).status_code == 401


# -- the WebSocket ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway(dsn: str, redis_url: str) -> Iterator[RunningGateway]:
    prefix = f"kefu-test:revocation:{uuid.uuid4().hex[:8]}:"
    settings = production_settings(pg_dsn=dsn, redis_url=redis_url,
                                   redis_prefix=prefix, widget_keys=["acme-key:acme"])
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings) as running:
        yield running


async def _staff(gw: RunningGateway, role: str) -> Agent:
    pool = await open_pool(gw.gateway.settings.database_url or "", max_size=1)
    try:
        return await make_staff(pool, tenant_id="acme", role=role,  # type: ignore[arg-type]
                                password=PASSWORD)
    finally:
        await pool.close()


class Socket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if frame.get("type") == kind:
                    return frame

    async def closed(self, timeout: float = 15) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except ConnectionClosed:
            return True


def _ws(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


async def test_a_deactivated_agent_is_cut_off_the_websocket(gateway: RunningGateway) -> None:
    boss, agent = await _staff(gateway, "admin"), await _staff(gateway, "agent")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        boss_token, token = await _sign_in(http, boss), await _sign_in(http, agent)
        # GIVEN the agent's console connected and online
        async with _ws(gateway, token) as raw:
            console = Socket(raw)
            await console.send({"action": "presence", "status": "online"})
            await console.until("queue")
            # WHEN an administrator deactivates the agent
            response = await http.patch(f"/v1/admin/agents/{agent.id}",
                                        headers=_bearer(boss_token), json={"active": False})
            assert response.status_code == 200
            # THEN the console's next action is refused and the connection is closed
            await console.send({"action": "queue"})
            assert (await console.until("error"))["code"] == "unauthorized"
            assert await console.closed()
        # AND the old token no longer opens a connection
        with pytest.raises(InvalidStatus) as refused:
            async with _ws(gateway, token):
                pass
        assert refused.value.response.status_code == 401
        # AND the agent is no longer offered conversations
        online = (await http.post("/v1/visitor-token",
                                  json={"widget_key": "acme-key"})).json()["widget"]
        assert online["agents_online"] is False


async def test_a_demoted_admins_open_console_loses_admin_rights(gateway: RunningGateway) -> None:
    ann, bob = await _staff(gateway, "admin"), await _staff(gateway, "admin")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        ann_token, bob_token = await _sign_in(http, ann), await _sign_in(http, bob)
        visitor = (await http.post("/v1/visitor-token", json={"widget_key": "acme-key"})).json()
        async with _ws(gateway, visitor["token"]) as v_raw, _ws(gateway, bob_token) as b_raw:
            guest, bob_console = Socket(v_raw), Socket(b_raw)
            # the visitor's first message starts the conversation
            await guest.send({"action": "message", "client_msg_id": "c-0", "text": "hello"})
            conversation_id = (await guest.until("ack"))["conversation_id"]
            await guest.until("final")
            await bob_console.send({"action": "queue"})
            await bob_console.until("queue")
            # WHEN Ann demotes Bob while his console is open
            demoted = await http.patch(f"/v1/admin/agents/{bob.id}",
                                       headers=_bearer(ann_token), json={"role": "agent"})
            assert demoted.status_code == 200
            # THEN his console can no longer close a conversation that is not his
            await bob_console.send({"action": "close", "conversation_id": conversation_id})
            assert (await bob_console.until("error"))["code"] == "unauthorized"
            assert await bob_console.closed()
        transcript = await http.get(f"/v1/conversations/{conversation_id}",
                                    headers=_bearer(ann_token))
        assert transcript.json()["conversation"]["status"] == "open"
