"""Two gateway replicas behind one Redis deliver to each other's connections."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import boto3
import pytest
import redis
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET, core_settings
from tests.support.gateway import (
    RunningGateway,
    gateway_for_test,
    redis_prefix_removed,
    run_gateway,
)


@pytest.fixture(scope="module")
def replicas(make_database, redis_url) -> Iterator[tuple[RunningGateway, RunningGateway]]:  # type: ignore[no-untyped-def]
    prefix = f"kefu-test:replicas:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=make_database(), redis_url=redis_url, redis_prefix=prefix)
    with redis_prefix_removed(redis_url, prefix), run_gateway(settings, replica_id="a") as a, \
            run_gateway(settings, replica_id="b") as b:
        yield a, b


async def frames_until(ws: websockets.ClientConnection, kind: str) -> list[dict]:  # type: ignore[type-arg]
    seen = []
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            seen.append(frame)
            if frame["type"] == kind:
                return seen


async def test_reply_reaches_the_visitors_tab_on_the_other_replica(
    replicas: tuple[RunningGateway, RunningGateway],
) -> None:
    a, b = replicas
    # GIVEN one visitor with a tab on replica A and another on replica B
    token = issue_token(secrets=[SECRET], tenant_id="acme", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{a.ws}?token={token}") as tab_a, \
            websockets.connect(f"{b.ws}?token={token}") as tab_b:
        for tab in (tab_a, tab_b):
            await tab.send(json.dumps({"action": "sync", "last_seq": 0}))
            await frames_until(tab, "history")
        # WHEN the visitor writes on replica A
        await tab_a.send(json.dumps({"action": "message", "client_msg_id": "c-x",
                                     "text": "你好"}))
        on_a = await frames_until(tab_a, "final")
        # THEN the tab on replica B sees the message and the whole streamed reply too
        on_b = await frames_until(tab_b, "final")
        assert any(f["type"] == "message" and f["text"] == "你好" for f in on_b)
        deltas_b = "".join(f["text"] for f in on_b if f["type"] == "delta")
        assert deltas_b == on_b[-1]["text"] == on_a[-1]["text"]


async def test_boto3_posts_through_one_replica_to_a_connection_on_the_other(
    replicas: tuple[RunningGateway, RunningGateway],
) -> None:
    a, b = replicas
    token = issue_token(secrets=[SECRET], tenant_id="acme", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{a.ws}?token={token}") as ws:
        await ws.send(json.dumps({"action": "ping"}))
        await frames_until(ws, "pong")
        (connection_id,) = [c for c in a.gateway.hub.local  # type: ignore[union-attr]
                            if a.gateway.hub.local[c].websocket.client.port  # type: ignore[union-attr]
                            == ws.local_address[1]]
        # WHEN boto3 posts to replica B's management API
        api = boto3.client("apigatewaymanagementapi", endpoint_url=b.http, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
        await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id,
                                Data=b'{"type":"notice","text":"via b"}')
        # THEN the connection held by replica A receives it
        frames = await frames_until(ws, "notice")
        assert frames[-1]["text"] == "via b"
        info = await asyncio.to_thread(api.get_connection, ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
    # AND once it is closed, replica B answers 410 for it
    await asyncio.sleep(0.3)
    with pytest.raises(api.exceptions.GoneException):
        await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b"x")


async def test_post_to_a_stopped_replicas_connection_is_gone(
    make_database, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    # GIVEN a connection on replica C, which then stops without cleaning up its owner record
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name="replicas-gone",
                          replica_id="survivor") as survivor:
        prefix = survivor.gateway.settings.redis_prefix
        r = redis.Redis.from_url(redis_url)
        r.set(f"{prefix}gw:owner:dead-conn=", "dead-replica", ex=60)
        api = boto3.client("apigatewaymanagementapi", endpoint_url=survivor.http,
                           region_name="us-east-1", aws_access_key_id="local",
                           aws_secret_access_key="local")
        # WHEN the survivor is asked to post to it
        with pytest.raises(api.exceptions.GoneException):
            await asyncio.to_thread(api.post_to_connection, ConnectionId="dead-conn=", Data=b"x")
        # THEN nobody listens on the dead replica's channel: 410, and the owner record is dropped
        assert r.get(f"{prefix}gw:owner:dead-conn=") is None
        r.close()


async def test_management_api_requires_a_valid_sigv4_key_when_keys_are_configured(
    make_database, redis_url: str  # type: ignore[no-untyped-def]
) -> None:
    # GIVEN a gateway whose management API takes one access key
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name="sigv4",
                          gateway_management_keys=["AKIDKEFU:s3cr3t-s3cr3t-s3cr3t"]) as gw:
        token = issue_token(secrets=[SECRET], tenant_id="acme",
                            subject=f"v-{uuid.uuid4().hex}", role="visitor", ttl_s=600)
        async with websockets.connect(f"{gw.ws}?token={token}") as ws:
            await ws.send(json.dumps({"action": "ping"}))
            await frames_until(ws, "pong")
            (connection_id,) = list(gw.gateway.hub.local)  # type: ignore[union-attr]

            def client(secret: str) -> object:
                return boto3.client("apigatewaymanagementapi", endpoint_url=f"{gw.http}/prod",
                                    region_name="eu-west-1", aws_access_key_id="AKIDKEFU",
                                    aws_secret_access_key=secret)

            good, bad = client("s3cr3t-s3cr3t-s3cr3t"), client("wrong")
            # WHEN a caller signs with the wrong secret / THEN 403 and nothing is delivered
            with pytest.raises(bad.exceptions.ForbiddenException):  # type: ignore[attr-defined]
                await asyncio.to_thread(bad.post_to_connection,  # type: ignore[attr-defined]
                                        ConnectionId=connection_id, Data=b'{"type":"x"}')
            # WHEN it signs with the configured key / THEN the frame arrives
            await asyncio.to_thread(good.post_to_connection,  # type: ignore[attr-defined]
                                    ConnectionId=connection_id,
                                    Data=b'{"type":"notice","text":"signed"}')
            assert (await frames_until(ws, "notice"))[-1]["text"] == "signed"
