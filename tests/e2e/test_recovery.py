"""A resuming visitor never waits for a reply that nobody is writing.

Simulates what a killed replica leaves behind, directly in the stores: a reply row still
``streaming`` with no live writer, and an acknowledged message whose reply never started.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.gateway import RunningGateway, gateway_for_test


@pytest.fixture(scope="module")
def database(make_database) -> str:  # type: ignore[no-untyped-def]
    return make_database()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gateway(database: str, redis_url: str) -> Iterator[RunningGateway]:
    with gateway_for_test(dsn=database, redis_url=redis_url, name="recovery") as running:
        yield running


async def frames_until(ws: Any, kind: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not seen or seen[-1]["type"] != kind:
            seen.append(json.loads(await ws.recv()))
    return seen


def sql(dsn: str, query: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, args)
        return cur.fetchall() if cur.description else []


async def test_a_reply_whose_writer_died_is_incomplete_on_resume(
    gateway: RunningGateway, database: str
) -> None:
    token = issue_token(secrets=[SECRET], tenant_id="acme", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gateway.ws}?token={token}") as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1", "text": "hi"}))
        ack = (await frames_until(ws, "ack"))[-1]
        await frames_until(ws, "final")
    # GIVEN the reply row is back to "streaming", as a process killed mid-reply leaves it
    conversation_id = ack["conversation_id"]
    sql(database, "UPDATE messages SET status = 'streaming' WHERE conversation_id = %s"
        " AND seq = 2", conversation_id)
    # WHEN the visitor resumes
    async with websockets.connect(f"{gateway.ws}?token={token}") as ws:
        await ws.send(json.dumps({"action": "sync", "last_seq": 1}))
        history = (await frames_until(ws, "history"))[-1]
    # THEN the reply is replayed (and stored) as incomplete, not awaited forever
    assert [(m["seq"], m["status"]) for m in history["messages"]] == [(2, "incomplete")]
    assert sql(database, "SELECT status FROM messages WHERE conversation_id = %s AND seq = 2",
               conversation_id) == [("incomplete",)]


async def test_an_acknowledged_message_whose_reply_never_started_is_answered_on_resume(
    gateway: RunningGateway, database: str
) -> None:
    visitor_id = f"v-{uuid.uuid4().hex}"
    token = issue_token(secrets=[SECRET], tenant_id="acme", subject=visitor_id,
                        role="visitor", ttl_s=600)
    conversation_id = str(uuid.uuid4())  # an open conversation, its message inserted below
    sql(database, "INSERT INTO conversations (id, tenant_id, visitor_id) VALUES (%s, 'acme', %s)",
        conversation_id, visitor_id)
    # GIVEN a stored visitor message whose reply was never started (the process died first)
    sql(database, "UPDATE conversations SET last_seq = 1 WHERE id = %s", conversation_id)
    sql(database, "INSERT INTO messages (conversation_id, seq, role, text, client_msg_id,"
        " created_at) VALUES (%s, 1, 'visitor', '怎么退货？', 'c-lost', now() - interval '1 min')",
        conversation_id)
    # WHEN the visitor resumes
    async with websockets.connect(f"{gateway.ws}?token={token}") as ws:
        await ws.send(json.dumps({"action": "sync", "last_seq": 1}))
        frames = await frames_until(ws, "final")
    # THEN the reply is produced now, once
    final = frames[-1]
    assert final["reply_to"] == 1 and final["status"] == "complete"
    assert sql(database, "SELECT count(*) FROM messages WHERE conversation_id = %s"
               " AND role = 'assistant'", conversation_id) == [(1,)]
