"""The token secret as deployed: read from Secrets Manager by every function, rotated with an
overlap window while connections stay up, and the development secret refused everywhere."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from kefu_core.infra.errors import Unauthorized
from kefu_core.infra.settings import DEV_TOKEN_SECRET
from kefu_core.product.tenants.tenants import ROOT_TENANT
from kefu_core.security.tokens import issue_token, verify_token
from tests.local.conftest import SUPER_EMAIL, SUPER_PASSWORD, TOKEN_SECRET_REFRESH_S
from tests.local.helpers import Client, admin_client, bearer, connect, login
from tests.support.local_stack import LocalStackProcess

# The first test also waits for `sam build` (when stale) and the stack's cold start.
pytestmark = pytest.mark.timeout(300)


def _forged(role: str, tenant: str, subject: str) -> str:
    return issue_token(secrets=[DEV_TOKEN_SECRET], tenant_id=tenant, subject=subject,
                       role=role, ttl_s=600)  # type: ignore[arg-type]


async def test_a_development_secret_token_is_refused_by_every_function(
    local_stack: LocalStackProcess,
) -> None:
    # GIVEN tokens forged with the public development secret
    admin = _forged("admin", "demo", "forged-admin")
    root = _forged("admin", "_root", "forged-root")
    visitor = _forged("visitor", "demo", f"v-{uuid.uuid4().hex}")
    agent = _forged("agent", "demo", "forged-agent")
    async with admin_client(local_stack) as http:
        # WHEN they are used on the admin function's token-protected routes
        answers = {
            "/v1/admin/agents": await http.get("/v1/admin/agents", headers=bearer(admin)),
            "/v1/conversations": await http.get("/v1/conversations", headers=bearer(admin)),
            "/v1/me": await http.get("/v1/me", headers=bearer(agent)),
            "/v1/tenants": await http.get("/v1/tenants", headers=bearer(root)),
        }
    # THEN every one is refused
    assert {path: r.status_code for path, r in answers.items()} == dict.fromkeys(answers, 401)
    # AND neither a visitor nor an agent can open a WebSocket with them
    for token in (visitor, agent):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(local_stack, token):
                pass
        assert refused.value.response.status_code == 401


async def _wait_until_signed_with(stack: LocalStackProcess, secret: str) -> dict[str, Any]:
    """Mint visitor tokens until the admin function signs with ``secret`` (it re-reads the
    secret every TOKEN_SECRET_REFRESH_S), within the per-address minting limit."""
    async with admin_client(stack) as http:
        for _ in range(60):
            response = await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})
            if response.status_code == 429:
                await asyncio.sleep(min(float(response.headers.get("retry-after", "5")), 10))
                continue
            assert response.status_code == 200, response.text
            minted: dict[str, Any] = response.json()
            try:
                verify_token(minted["token"], secrets=[secret])
            except Unauthorized:
                await asyncio.sleep(1)
                continue
            return minted
    raise AssertionError("the admin function never signed with the promoted secret")


async def test_rotating_the_token_secret_keeps_connections_and_old_tokens_working(
    local_stack: LocalStackProcess,
) -> None:
    sm = local_stack.secrets_manager()
    arn = local_stack.token_secret_arn
    old_secret = local_stack.signing_secrets()[0]
    async with admin_client(local_stack) as http:
        # GIVEN a visitor connected with a token signed by the current secret, and an agent
        before = (await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})).json()
        root = await login(http, ROOT_TENANT, SUPER_EMAIL, SUPER_PASSWORD)
    async with connect(local_stack, before["token"]) as ws:
        live = Client(ws)
        await live.send({"action": "message", "client_msg_id": "r-1", "text": "hello"})
        await live.until("final")
        # WHEN a new secret is staged as AWSPENDING, then promoted to AWSCURRENT
        new_secret = secrets.token_hex(32)
        current = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        current_id = next(v for v, stages in current.items() if "AWSCURRENT" in stages)
        pending_id = str(uuid.uuid4())
        sm.put_secret_value(SecretId=arn, ClientRequestToken=pending_id,
                            SecretString=json.dumps({"secrets": [new_secret]}),
                            VersionStages=["AWSPENDING"])
        await asyncio.sleep(float(TOKEN_SECRET_REFRESH_S) + 1)
        sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT",
                                       MoveToVersionId=pending_id,
                                       RemoveFromVersionId=current_id)
        sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING",
                                       RemoveFromVersionId=pending_id)
        after = await _wait_until_signed_with(local_stack, new_secret)
        # THEN the connection opened before the rotation still chats
        await live.send({"action": "message", "client_msg_id": "r-2", "text": "still there?"})
        assert (await live.until("ack"))["client_msg_id"] == "r-2"
        await live.until("final")
    # AND a token of the old secret (now AWSPREVIOUS) still connects and still reaches the API
    async with connect(local_stack, before["token"]) as again:
        client = Client(again)
        await client.send({"action": "sync", "last_seq": 0})
        assert (await client.until("history"))["conversation_id"]
    async with admin_client(local_stack) as http:
        assert (await http.get("/v1/tenants", headers=bearer(root["token"]))).status_code == 200
    # AND tokens of the new secret work everywhere
    async with connect(local_stack, after["token"]) as fresh:
        client = Client(fresh)
        await client.send({"action": "message", "client_msg_id": "r-3", "text": "new token"})
        await client.until("final")
    assert old_secret != new_secret
