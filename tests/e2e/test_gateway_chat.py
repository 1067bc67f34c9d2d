"""End to end through the self-hosted gateway with a real WebSocket client.

The gateway runs in its own thread (its own event loop) on real Redis and PostgreSQL; the
assistant answers through the offline engine (no LLM configured).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import redis
import websockets
from botocore.config import Config
from websockets.exceptions import InvalidStatus

from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.gateway import RunningGateway, gateway_for_test


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name="e2e",
                          replica_id="replica-a") as running:
        yield running


def visitor_token(tenant: str = "acme", visitor: str | None = None) -> str:
    return issue_token(secrets=[SECRET], tenant_id=tenant,
                       subject=visitor or f"v-{uuid.uuid4().hex}", role="visitor", ttl_s=600)


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def until(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                self.seen.append(frame)
                if frame["type"] == kind:
                    return frame

    async def sync(self, last_seq: int = 0) -> dict[str, Any]:
        await self.send({"action": "sync", "last_seq": last_seq})
        return await self.until("history")

    async def ask(self, text: str, client_msg_id: str | None = None) -> tuple[dict[str, Any],
                                                                             dict[str, Any]]:
        cid = client_msg_id or f"c-{uuid.uuid4().hex[:10]}"
        await self.send({"action": "message", "client_msg_id": cid, "text": text})
        ack = await self.until("ack")
        final = await self.until("final")
        return ack, final


def connect(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


async def test_visitor_chats_and_sees_the_reply_stream(gateway: RunningGateway) -> None:
    # GIVEN a visitor connected with a valid token
    async with connect(gateway, visitor_token()) as ws:
        client = Client(ws)
        history = await client.sync()
        assert history["messages"] == [] and history["owner"] == "bot"
        # WHEN they send a message
        ack, final = await client.ask("你好，请问怎么退货？")
        # THEN it is acknowledged with a sequence number, then the reply streams in deltas
        deltas = [f for f in client.seen if f["type"] == "delta"]
        assert ack["seq"] == 1 and ack["duplicate"] is False
        assert deltas, "the reply streams as delta frames"
        assert "".join(d["text"] for d in deltas) == final["text"]
        assert final["seq"] == 2 and final["reply_to"] == 1 and final["status"] == "complete"
        # AND both messages are persisted: a fresh sync replays them
        replay = await client.sync(0)
        assert [(m["seq"], m["role"]) for m in replay["messages"]] == [(1, "visitor"),
                                                                     (2, "assistant")]
        assert replay["messages"][1]["text"] == final["text"]


async def test_bad_token_is_refused_with_401_and_leaves_no_record(
    gateway: RunningGateway, redis_url: str
) -> None:
    # GIVEN the connection records that exist now (other tests' sockets may still be closing)
    prefix = gateway.gateway.settings.redis_prefix
    r = redis.Redis.from_url(redis_url)
    before = set(r.scan_iter(match=f"{prefix}conn:*"))
    forged = issue_token(secrets=["x" * 40], tenant_id="acme", subject="v", role="visitor",
                         ttl_s=60)
    # WHEN forged, malformed and missing tokens try to connect
    for token in (forged, "garbage", ""):
        with pytest.raises(InvalidStatus) as info:
            async with connect(gateway, token):
                pass
        # THEN each handshake is refused with 401
        assert info.value.response.status_code == 401
    # AND none of them left a connection record
    new = set(r.scan_iter(match=f"{prefix}conn:*")) - before
    r.close()
    assert new == set()


async def test_bad_frames_get_error_frames_and_the_connection_survives(
    gateway: RunningGateway,
) -> None:
    async with connect(gateway, visitor_token()) as ws:
        client = Client(ws)
        for frame, code in (
            ("{oops", "bad_json"),
            ({"action": "fly"}, "unknown_action"),
            ({"action": "message", "client_msg_id": "c-1", "text": "x" * 5000}, "text_too_long"),
            ({"action": "message", "text": "no id"}, "invalid_frame"),
        ):
            await client.send(frame)
            error = await client.until("error")
            assert error["code"] == code
        # THEN the connection still works and nothing was stored
        assert (await client.sync())["messages"] == []
        ack, _ = await client.ask("still here?")
        assert ack["seq"] == 1


async def test_duplicate_client_msg_id_is_stored_and_answered_once(
    gateway: RunningGateway,
) -> None:
    async with connect(gateway, visitor_token()) as ws:
        client = Client(ws)
        first, _ = await client.ask("hello", client_msg_id="c-dup")
        # WHEN the client resends the same message (it never saw the ack, say)
        await client.send({"action": "message", "client_msg_id": "c-dup", "text": "hello"})
        again = await client.until("ack")
        # THEN the same seq comes back, marked duplicate, and no second reply is produced
        assert again["seq"] == first["seq"] and again["duplicate"] is True
        await asyncio.sleep(0.3)
        replay = await client.sync(0)
        assert [m["role"] for m in replay["messages"]] == ["visitor", "assistant"]


async def test_reconnect_and_resume_from_last_seq(gateway: RunningGateway) -> None:
    # GIVEN a visitor who sent a message and dropped the connection right after the ack
    token = visitor_token(visitor=f"v-{uuid.uuid4().hex}")
    async with connect(gateway, token) as ws:
        client = Client(ws)
        await client.sync()
        await client.send({"action": "message", "client_msg_id": "c-r1", "text": "快递到哪了？"})
        ack = await client.until("ack")
    # WHEN they reconnect and send the last sequence number they saw
    async with connect(gateway, token) as ws:
        client = Client(ws)
        for _ in range(50):
            history = await client.sync(ack["seq"])
            if history["messages"] and history["messages"][-1]["status"] == "complete":
                break
            await asyncio.sleep(0.1)
        # THEN they get exactly what they missed: the complete reply to their message
        assert [m["seq"] for m in history["messages"]] == [ack["seq"] + 1]
        assert history["messages"][0]["reply_to"] == ack["seq"]
        assert history["messages"][0]["text"]


async def test_boto3_management_api_posts_gets_and_deletes(gateway: RunningGateway) -> None:
    async with connect(gateway, visitor_token()) as ws:
        client = Client(ws)
        await client.sync()
        connection_id = next(iter(gateway.gateway.hub.local))  # type: ignore[union-attr]
        for cid, conn in gateway.gateway.hub.local.items():  # type: ignore[union-attr]
            if conn.websocket.client and conn.websocket.client.port == ws.local_address[1]:
                connection_id = cid
        api = boto3.client("apigatewaymanagementapi", endpoint_url=f"{gateway.http}/prod",
                           region_name="us-east-1", aws_access_key_id="local",
                           aws_secret_access_key="local",
                           config=Config(retries={"max_attempts": 1}))
        # WHEN boto3 posts to the connection
        await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id,
                                Data=json.dumps({"type": "notice", "text": "hi"}).encode())
        # THEN the client receives it
        assert (await client.until("notice"))["text"] == "hi"
        info = await asyncio.to_thread(api.get_connection, ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        # AND delete closes the socket
        await asyncio.to_thread(api.delete_connection, ConnectionId=connection_id)
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    # AND a post to a connection that is gone raises GoneException (HTTP 410)
    for _ in range(50):
        if connection_id not in gateway.gateway.hub.local:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.05)
    with pytest.raises(api.exceptions.GoneException):
        await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b"x")


async def test_gone_watcher_is_cleaned_up_not_the_sender(
    gateway: RunningGateway, redis_url: str
) -> None:
    # GIVEN a conversation whose watcher set holds a stale connection id (its socket is gone)
    async with connect(gateway, visitor_token()) as ws:
        client = Client(ws)
        _, first = await client.ask("hello")  # the first message starts the conversation
        prefix = gateway.gateway.settings.redis_prefix
        key = f"{prefix}conv:{first['conversation_id']}:conns"
        r = redis.Redis.from_url(redis_url)
        r.sadd(key, "stale-connection=")
        # WHEN the assistant replies to the live visitor
        _, final = await client.ask("hi")
        # THEN the reply reached the sender, and the stale connection was removed
        assert final["status"] == "complete"
        members = {m.decode() for m in r.smembers(key)}
        r.close()
        assert "stale-connection=" not in members
        assert len(members) == 1


async def test_visitor_token_endpoint_and_demo_page(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "WebSocket" in page.text
        refused = await http.post("/v1/visitor-token", json={"widget_key": "wrong"})
        assert refused.status_code == 403
        issued = await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})
        assert issued.status_code == 200
    body = issued.json()
    async with connect(gateway, body["token"]) as ws:
        assert (await Client(ws).sync())["owner"] == "bot"
