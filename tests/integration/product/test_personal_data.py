"""Retention on backdated rows, one retention run across replicas, an erasure that fails midway
and is retried, and the migration that took customers' words out of old audit entries, on real
PostgreSQL and Redis.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import psycopg
import pytest

from kefu_core.chat.images import ImageService
from kefu_core.deps import Deps
from kefu_core.flows.personal_data import (
    CustomerRef,
    RetentionScheduler,
    erase_customer,
    run_retention,
)
from kefu_core.infra.blobs import DiskBlobs
from kefu_core.infra.errors import StoreError
from kefu_core.product.tenants.settings import RetentionSettings, TenantSettings
from kefu_memory import Fact, OfflineEmbedder, Turn
from kefu_memory.long_term import LongTermMemory
from tests.support.core import core_settings, make_deps

NOW = datetime.now(UTC)


@pytest.fixture
def pg_dsn(make_database: Callable[[], str]) -> str:
    """A database of the test's own: retention runs over every tenant in it."""
    return make_database()


@pytest.fixture
async def deps(pg_dsn: str, redis_url: str, redis_prefix: str) -> AsyncIterator[Deps]:
    built, _, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix))
    await built.load_memory()  # the memory schema, applied like `kefu run` does
    yield built
    await built.aclose()


async def _tenant(deps: Deps, retention: RetentionSettings | None = None) -> str:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await deps.tenants.ensure(tenant_id=tenant, name=tenant)
    if retention is not None:
        await deps.tenant_settings.put(tenant, TenantSettings(retention=retention))
    return tenant


async def _conversation(deps: Deps, tenant: str, visitor: str, text: str,
                        age_days: int = 0) -> str:
    conversation = await deps.conversations.open_for_visitor(tenant_id=tenant,
                                                             visitor_id=visitor)
    await deps.conversations.append(tenant_id=tenant, conversation_id=conversation.id,
                                    role="visitor", text=text, client_msg_id="m-1")
    await deps.service.rate(tenant_id=tenant, conversation_id=conversation.id, score=4,
                            comment=f"comment {text}", agent_id=None)
    await deps.conversations.close(tenant_id=tenant, conversation_id=conversation.id)
    if age_days:
        async with deps.pool.connection() as conn:
            await conn.execute("UPDATE conversations SET updated_at = %s WHERE id = %s",
                               (NOW - timedelta(days=age_days), conversation.id))
    return conversation.id


async def _offline(deps: Deps, tenant: str, visitor: str, text: str, age_days: int = 0) -> None:
    saved = await deps.service.leave_offline_message(
        tenant_id=tenant, visitor_id=visitor, conversation_id=None, name="", contact="",
        text=text)
    async with deps.pool.connection() as conn:
        await conn.execute("UPDATE offline_messages SET created_at = %s WHERE id = %s",
                           (NOW - timedelta(days=age_days), saved.id))


async def _fact(deps: Deps, tenant: str, visitor: str, conversation_id: str, key: str,
                age_days: int = 0) -> None:
    memory = LongTermMemory(deps.pool, OfflineEmbedder())
    await memory.remember(tenant_id=tenant, customer_id=visitor, conversation_id=conversation_id,
                          facts=[Fact(kind="preference", key=key, value=f"likes {key}")])
    async with deps.pool.connection() as conn:
        await conn.execute("UPDATE mem_facts SET last_seen_at = %s WHERE tenant_id = %s"
                           " AND key = %s", (NOW - timedelta(days=age_days), tenant, key))


async def _count(deps: Deps, sql: str, *params: object) -> int:
    async with deps.pool.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    assert row is not None
    return int(row[0])


async def test_retention_deletes_only_what_is_older_than_each_tenants_settings(
    deps: Deps,
) -> None:
    # GIVEN a tenant keeping transcripts and facts 30 days and offline messages 7 days, with
    # rows on both sides of each limit, and a tenant on the defaults with old-ish rows
    short = await _tenant(deps, RetentionSettings(transcripts_days=30, facts_days=30,
                                                  offline_messages_days=7))
    default = await _tenant(deps)
    old_ids = [await _conversation(deps, short, f"v-old{i}", f"old {i}", age_days=40)
               for i in range(3)]
    recent = await _conversation(deps, short, "v-new", "recent", age_days=10)
    kept = await _conversation(deps, default, "v-other", "kept", age_days=200)
    await _offline(deps, short, "v-old0", "old offline", age_days=8)
    await _offline(deps, short, "v-new", "new offline", age_days=6)
    await _fact(deps, short, "v-old0", old_ids[0], "tea", age_days=31)
    await _fact(deps, short, "v-new", recent, "coffee", age_days=29)
    await _fact(deps, default, "v-other", kept, "juice", age_days=200)
    # WHEN retention runs, one row per batch
    report = await run_retention(deps, now=NOW, batch=1)
    # THEN exactly the older rows went, with their messages and ratings
    assert report.complete
    mine = next(t for t in report.tenants if t.tenant_id == short)
    assert (mine.conversations, mine.offline_messages, mine.facts) == (3, 1, 1)
    remaining = await _count(deps, "SELECT count(*) FROM conversations WHERE tenant_id = %s",
                             short)
    assert remaining == 1
    assert await _count(deps, "SELECT count(*) FROM messages WHERE conversation_id ="
                        " ANY(%s::uuid[])", old_ids) == 0
    assert await _count(deps, "SELECT count(*) FROM csat WHERE conversation_id ="
                        " ANY(%s::uuid[])", old_ids) == 0
    assert await _count(deps, "SELECT count(*) FROM offline_messages WHERE tenant_id = %s",
                        short) == 1
    assert await _count(deps, "SELECT count(*) FROM mem_facts WHERE tenant_id = %s AND"
                        " key = 'coffee'", short) == 1
    assert await _count(deps, "SELECT count(*) FROM mem_facts WHERE tenant_id = %s", short) == 1
    # AND the tenant on the defaults (a year) kept its 200-day-old rows
    assert await _count(deps, "SELECT count(*) FROM conversations WHERE id = %s", kept) == 1
    assert await _count(deps, "SELECT count(*) FROM mem_facts WHERE tenant_id = %s",
                        default) == 1
    # AND the audit log of the tenant records the run with its counts
    (entry,) = await deps.audit.query(tenant_id=short, action="retention.applied")
    assert entry.actor_type == "system"
    assert entry.detail["conversations"] == 3 and entry.detail["facts"] == 1
    assert entry.detail["policy_days"]["offline_messages_days"] == 7
    assert not await deps.audit.query(tenant_id=default, action="retention.applied")
    # WHEN it runs again THEN nothing more goes
    again = await run_retention(deps, now=NOW, batch=1)
    assert next(t for t in again.tenants if t.tenant_id == short).conversations == 0


async def test_a_run_out_of_time_stops_and_the_next_one_goes_on(deps: Deps) -> None:
    tenant = await _tenant(deps, RetentionSettings(transcripts_days=1))
    for i in range(3):
        await _conversation(deps, tenant, f"v-{i}", f"text {i}", age_days=5)
    # WHEN a run has no time left after its first batch
    first = await run_retention(deps, now=NOW, batch=1, budget_s=1e-9)
    # THEN it reports itself incomplete, and a later run finishes the job
    assert not first.complete
    assert await _count(deps, "SELECT count(*) FROM conversations WHERE tenant_id = %s",
                        tenant) == 2
    assert (await run_retention(deps, now=NOW, batch=1)).complete
    assert await _count(deps, "SELECT count(*) FROM conversations WHERE tenant_id = %s",
                        tenant) == 0


async def test_one_replica_runs_retention_per_period(deps: Deps, pg_dsn: str, redis_url: str,
                                                     redis_prefix: str) -> None:
    # GIVEN two gateway replicas sharing Redis
    other, _, _ = await make_deps(core_settings(pg_dsn=pg_dsn, redis_url=redis_url,
                                                redis_prefix=redis_prefix))
    try:
        replicas = [RetentionScheduler(deps), RetentionScheduler(other)]
        # WHEN both wake up in the same period
        reports = [await replica.tick() for replica in replicas]
        # THEN exactly one ran, and neither runs again within the period
        assert sum(report is not None for report in reports) == 1
        assert [await replica.tick() for replica in replicas] == [None, None]
    finally:
        await other.aclose()


async def test_an_erasure_failing_midway_completes_when_retried(deps: Deps,
                                                                pg_dsn: str) -> None:
    # GIVEN a customer with a conversation, short-term memory, a fact and an offline message
    tenant = await _tenant(deps)
    visitor = f"v-{uuid.uuid4().hex}"
    conversation = await _conversation(deps, tenant, visitor, "我的暗号是青柠檬")
    memory = await deps.load_memory()
    assert memory is not None
    await memory.short_term.extend(conversation, [Turn(role="user", content="我的暗号是青柠檬",
                                                       seq=1)])
    await _fact(deps, tenant, visitor, conversation, "lime")
    await _offline(deps, tenant, visitor, "青柠檬留言")
    # AND PostgreSQL refuses to delete conversations (a failure in the middle of the erasure)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$BEGIN RAISE EXCEPTION 'refused'; END;$$")
        conn.execute("CREATE TRIGGER refuse BEFORE DELETE ON conversations"
                     " FOR EACH ROW EXECUTE FUNCTION refuse()")
    ref = CustomerRef(visitor_id=visitor)
    try:
        with pytest.raises(StoreError):
            await erase_customer(deps, tenant_id=tenant, ref=ref, actor_type="admin",
                                 actor_id="a-1")
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse ON conversations")
            conn.execute("DROP FUNCTION refuse()")
    # THEN part of it is done, the conversation is still there to be found
    assert await _count(deps, "SELECT count(*) FROM conversations WHERE id = %s",
                        conversation) == 1
    assert await memory.short_term.recent(conversation) == []
    # WHEN the erasure is sent again
    report = await erase_customer(deps, tenant_id=tenant, ref=ref, actor_type="admin",
                                  actor_id="a-1")
    # THEN it completes: nothing of the customer is left
    assert report.conversations == 1
    for table, column in (("messages", "text"), ("offline_messages", "text"),
                          ("mem_facts", "customer_id"), ("csat", "comment")):
        assert await _count(deps, f"SELECT count(*) FROM {table} WHERE {column} LIKE %s",
                            "%青柠檬%" if column != "customer_id" else visitor) == 0, table
    actions = [e.action for e in await deps.audit.query(tenant_id=tenant)]
    assert actions.count("customer.erasure_requested") == 2
    assert actions.count("customer.erased") == 1


async def test_old_audit_entries_lose_the_customers_words(deps: Deps, pg_dsn: str) -> None:
    # GIVEN entries written before this release, holding a rating's comment, a note's text and
    # an offline message's contact
    tenant = await _tenant(deps)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for action, detail in (("conversation.rated", '{"score": 2, "comment": "太慢了"}'),
                               ("conversation.note_added", '{"text": "客户住在幸福路"}'),
                               ("offline_message.left", '{"contact": "微信 lime_77"}')):
            conn.execute("INSERT INTO audit_log (tenant_id, actor_type, action, detail)"
                         " VALUES (%s, 'visitor', %s, %s)", (tenant, action, detail))
        # WHEN the migration that rewrites them runs
        sql = (resources.files("kefu_core.infra") / "migrations"
               / "005_personal_data.sql").read_text()
        with conn.transaction():
            conn.execute(sql.encode())
        # THEN they keep the shape of what happened, not the words
        rows = conn.execute("SELECT action, detail FROM audit_log WHERE tenant_id = %s"
                            " ORDER BY id", (tenant,)).fetchall()
        assert [r[1] for r in rows] == [{"score": 2, "comment_chars": 3}, {"chars": 7},
                                        {"contact_given": True}]
        # AND the log is append-only again
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_log SET action = 'x' WHERE tenant_id = %s", (tenant,))


async def _image_conversation(deps: Deps, tenant: str, visitor: str, age_days: int) -> str:
    """A conversation whose visitor sent a photo (uploaded with its ticket, then accepted)."""
    from tests.support.images import jpeg_with_exif

    conversation = await deps.conversations.open_for_visitor(tenant_id=tenant,
                                                             visitor_id=visitor)
    photo = jpeg_with_exif()
    ticket = await deps.images.ticket(tenant_id=tenant, conversation_id=conversation.id,
                                      content_type="image/jpeg", size=len(photo))
    await deps.images.receive(ticket.fields["ticket"], content_type="image/jpeg", data=photo)
    meta = await deps.images.accept(tenant_id=tenant, conversation_id=conversation.id,
                                    upload_id=ticket.upload_id)
    await deps.conversations.append(tenant_id=tenant, conversation_id=conversation.id,
                                    role="visitor", text="", client_msg_id="p-1",
                                    meta={"image": meta})
    async with deps.pool.connection() as conn:
        await conn.execute("UPDATE conversations SET updated_at = %s WHERE id = %s",
                           (NOW - timedelta(days=age_days), conversation.id))
    return conversation.id


class _BrokenBlobs:
    """An image store whose deletes fail (the bucket is unreachable)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def delete_prefix(self, prefix: str) -> int:
        raise StoreError("cannot delete the images")


async def test_retention_deletes_expired_conversations_images_and_keeps_rows_when_it_cannot(
    deps: Deps, tmp_path: Path,
) -> None:
    # GIVEN images kept on disk, a tenant keeping transcripts 30 days, and a photo in a
    # 40-day-old conversation and in a 10-day-old one
    images = ImageService(deps.settings.model_copy(update={"image_dir": str(tmp_path)}),
                          DiskBlobs(tmp_path), deps.redis)
    deps = dataclasses.replace(deps, images=images)
    tenant = await _tenant(deps, RetentionSettings(transcripts_days=30))
    old = await _image_conversation(deps, tenant, "v-old", age_days=40)
    recent = await _image_conversation(deps, tenant, "v-new", age_days=10)
    assert (tmp_path / "images" / tenant / old).is_dir()
    # WHEN retention runs while the image store fails
    broken = dataclasses.replace(deps, images=ImageService(images.settings,
                                                           _BrokenBlobs(images.blobs),  # type: ignore[arg-type]
                                                           deps.redis))
    with pytest.raises(StoreError):
        await run_retention(broken, now=NOW)
    # THEN the old conversation is still there (its images found again next time)
    assert await _count(deps, "SELECT count(*) FROM conversations WHERE id = %s", old) == 1
    # WHEN it runs with the store back
    report = await run_retention(deps, now=NOW)
    # THEN the old conversation went with its image; the recent one kept both
    assert next(t for t in report.tenants if t.tenant_id == tenant).conversations == 1
    assert not (tmp_path / "images" / tenant / old).exists()
    assert (tmp_path / "images" / tenant / recent).is_dir()
    assert await _count(deps, "SELECT count(*) FROM conversations WHERE id = %s", recent) == 1
