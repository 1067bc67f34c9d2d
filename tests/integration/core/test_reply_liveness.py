"""A reply's liveness key (kefu_core.chat.liveness) on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from kefu_core.chat.liveness import ReplyHeartbeat, alive_replies


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_reply_is_alive_while_it_streams_and_not_after(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # GIVEN a reply streaming under its heartbeat
    async with ReplyHeartbeat(redis_client, prefix=redis_prefix, conversation_id="c1", seq=2):
        # THEN it is alive
        assert await alive_replies(redis_client, prefix=redis_prefix, conversation_id="c1",
                                   seqs=[2]) == {2}
    # AND once the block is left it is not
    assert await alive_replies(redis_client, prefix=redis_prefix, conversation_id="c1",
                               seqs=[2]) == set()


async def test_a_heartbeat_ended_on_a_batch_ends_when_the_batch_is_sent(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    async def alive() -> set[int] | None:
        return await alive_replies(redis_client, prefix=redis_prefix, conversation_id="c2",
                                   seqs=[4])

    # GIVEN a reply streaming under its heartbeat
    async with ReplyHeartbeat(redis_client, prefix=redis_prefix, conversation_id="c2",
                              seq=4) as heartbeat:
        async with redis_client.pipeline(transaction=True) as batch:
            # WHEN its end is queued on the caller's batch
            heartbeat.end(batch)
            # THEN it is alive until the batch is sent
            assert await alive() == {4}
            await batch.execute()
        # AND not after
        assert await alive() == set()
        await redis_client.set(f"{redis_prefix}live:c2:4", b"1")  # a later writer's key
    # AND leaving the block sends nothing more: the key written since is left alone
    assert await alive() == {4}


async def test_a_heartbeat_begun_on_a_batch_is_alive_once_the_batch_is_sent(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    async def alive() -> set[int] | None:
        return await alive_replies(redis_client, prefix=redis_prefix, conversation_id="c3",
                                   seqs=[6])

    heartbeat = ReplyHeartbeat(redis_client, prefix=redis_prefix, conversation_id="c3", seq=6)
    async with redis_client.pipeline(transaction=False) as batch:
        # GIVEN a reply's first beat queued on the caller's batch
        heartbeat.begin(batch)
        # THEN the reply is not alive before the batch is sent, and is after
        assert await alive() == set()
        await batch.execute()
    assert await alive() == {6}
    # AND entering the block sends no second first beat (a key deleted meanwhile stays so)
    await redis_client.delete(f"{redis_prefix}live:c3:6")
    async with heartbeat:
        assert await alive() == set()
    assert await alive() == set()
