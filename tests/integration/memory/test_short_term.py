"""Short-term memory on a real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from kefu_memory import ShortTermMemory, Turn


async def test_keeps_only_the_last_window_of_turns_oldest_first(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # GIVEN a window of 2 rounds (4 turns)
    memory = ShortTermMemory(redis_client, prefix=redis_prefix, window=2, ttl_s=60)
    # WHEN 7 turns are appended
    for seq in range(1, 8):
        role = "user" if seq % 2 else "assistant"
        await memory.append("c1", Turn(role=role, content=f"message {seq}", seq=seq))
    # THEN only the last 4 remain, in order
    turns = await memory.recent("c1")
    assert [t.seq for t in turns] == [4, 5, 6, 7]
    assert turns[-1].content == "message 7"
    assert await redis_client.llen(memory.key("c1")) == 4


async def test_append_sets_a_ttl_and_conversations_are_separate(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # GIVEN a memory with a one-minute TTL
    memory = ShortTermMemory(redis_client, prefix=redis_prefix, window=10, ttl_s=60)
    # WHEN two conversations get turns
    await memory.extend(
        "a", [Turn(role="user", content="你好"), Turn(role="assistant", content="您好")]
    )
    await memory.append("b", Turn(role="user", content="hello"))
    # THEN each has its own turns and a TTL no longer than configured
    assert [t.content for t in await memory.recent("a")] == ["你好", "您好"]
    assert [t.content for t in await memory.recent("b")] == ["hello"]
    ttl = await redis_client.ttl(memory.key("a"))
    assert 0 < ttl <= 60


async def test_clear_forgets_a_conversation(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # GIVEN a conversation with a turn
    memory = ShortTermMemory(redis_client, prefix=redis_prefix)
    await memory.append("c", Turn(role="user", content="my phone is 13800138000"))
    # WHEN it is cleared
    await memory.clear("c")
    # THEN nothing is left
    assert await memory.recent("c") == []


async def test_writes_queued_on_a_callers_transaction_arrive_when_it_is_sent(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # GIVEN a conversation with a turn, and a window of 1 round
    memory = ShortTermMemory(redis_client, prefix=redis_prefix, window=1, ttl_s=60)
    await memory.append("q", Turn(role="user", content="old", seq=1))
    async with redis_client.pipeline(transaction=True) as batch:
        # WHEN the conversation is cleared and extended on the caller's transaction
        memory.queue_clear(batch, "q")
        memory.queue_extend(batch, "q", [Turn(role="user", content="a", seq=3),
                                         Turn(role="assistant", content="b", seq=4),
                                         Turn(role="user", content="c", seq=5)])
        # THEN nothing changes before the caller sends it
        assert [t.seq for t in await memory.recent("q")] == [1]
        await batch.execute()
    # AND then the window holds the last turns, with the TTL set
    assert [t.seq for t in await memory.recent("q")] == [4, 5]
    assert 0 < await redis_client.ttl(memory.key("q")) <= 60


async def test_a_read_queued_on_a_callers_pipeline_gives_the_same_turns(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # GIVEN a conversation with two turns
    memory = ShortTermMemory(redis_client, prefix=redis_prefix, window=5, ttl_s=60)
    await memory.extend("r", [Turn(role="user", content="你好", seq=1),
                              Turn(role="assistant", content="您好", seq=2)])
    # WHEN its turns are read on the caller's pipeline
    async with redis_client.pipeline(transaction=False) as pipe:
        pipe.ping()
        memory.queue_recent(pipe, "r")
        _, raw = await pipe.execute()
    # THEN they are the turns a direct read gives
    assert memory.turns_of(raw, "r") == await memory.recent("r")
    assert [t.seq for t in memory.turns_of(raw, "r")] == [1, 2]
