"""WebSocket and HTTP helpers for the local-stack tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.local_stack import LocalStackProcess


class Client:
    """A WebSocket client that remembers every frame it saw."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        # Generous: the first frames may wait for cold starts on a busy machine.
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                self.seen.append(frame)
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.seen if f.get("type") == kind]


def connect(stack: LocalStackProcess, token: str) -> Any:
    return websockets.connect(f"{stack.ws}?token={token}", open_timeout=90)


def admin_client(stack: LocalStackProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.admin, timeout=90)


def visitor_token_signed_with(secrets: list[str], tenant: str = "demo") -> str:
    return issue_token(secrets=secrets, tenant_id=tenant, subject=f"v-{uuid.uuid4().hex}",
                       role="visitor", ttl_s=600)


async def login(http: httpx.AsyncClient, tenant: str, email: str, password: str
                ) -> dict[str, Any]:
    response = await http.post("/v1/agent/login",
                               json={"tenant": tenant, "email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
