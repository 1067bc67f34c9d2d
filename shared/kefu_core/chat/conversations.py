"""Conversations and messages in PostgreSQL: the zero-loss part of the chat path.

A visitor message is inserted with the conversation's next sequence number in one transaction
(the conversation row lock orders concurrent writers) and de-duplicated on ``client_msg_id``:
a retried frame gets the original sequence number back and stores nothing new.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel

from kefu_core.infra.errors import ConversationClosed, StoreError
from kefu_core.security.roles import MessageRole

__all__ = [
    "CUSTOMER_PREFIX",
    "Conversation",
    "ConversationStore",
    "ConversationSummary",
    "Stored",
    "StoredMessage",
]

Status = Literal["complete", "streaming", "incomplete"]
Owner = Literal["bot", "queue", "human"]


class Conversation(BaseModel):
    id: str
    tenant_id: str
    visitor_id: str
    status: str
    owner: str
    assigned_agent: str | None
    last_seq: int
    created_at: datetime
    updated_at: datetime
    handoff_reason: str | None = None
    queued_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def customer_id(self) -> str | None:
        """The company's customer id when the visitor was identified by the host page."""
        return self.visitor_id[len(CUSTOMER_PREFIX):] if self.visitor_id.startswith(
            CUSTOMER_PREFIX) else None


class StoredMessage(BaseModel):
    conversation_id: str
    seq: int
    role: MessageRole
    author: str | None
    text: str
    status: Status
    client_msg_id: str | None
    reply_to: int | None
    engine: str | None
    meta: dict[str, Any]
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """The shape sent to clients in history frames."""
        return {
            "seq": self.seq,
            "role": self.role,
            "author": self.author,
            "text": self.text,
            "status": self.status,
            "client_msg_id": self.client_msg_id,
            "reply_to": self.reply_to,
            "at": self.created_at.isoformat(),
            **({"event": self.meta["event"]} if self.meta.get("event") else {}),
            **({"agent_name": self.meta["agent_name"]} if self.meta.get("agent_name") else {}),
            # a handoff queued outside business hours: when agents are back
            **({"opens_at": self.meta["opens_at"]} if "opens_at" in self.meta else {}),
            # the kept image (chat.images): clients get it with an expiring link instead
            **({"image": self.meta["image"]} if self.meta.get("image") else {}),
        }


class Stored(BaseModel):
    seq: int
    duplicate: bool
    # The conversation as the statement that stored the message read it (``append``), when
    # it was read: None otherwise (read it with ``get``).
    conversation: Conversation | None = None


_MSG_BASE = (
    "m.conversation_id::text AS conversation_id, m.seq, m.role, m.author, m.text,"
    " m.client_msg_id, m.reply_to, m.engine, m.meta, m.created_at"
)
_MSG_COLUMNS = _MSG_BASE + ", m.status"
_CONV_COLUMNS = (
    "id::text AS id, tenant_id, visitor_id, status, owner, assigned_agent, last_seq,"
    " created_at, updated_at, handoff_reason, queued_at, closed_at"
)
_CONV_C_COLUMNS = ", ".join(
    "c.id::text AS id" if col.strip().startswith("id::") else "c." + col.strip()
    for col in _CONV_COLUMNS.split(",")
)
# How long storing a message waits for one of the messages' own connections before it takes
# one of the shared pool instead.
INGRESS_WAIT_S = 0.05
# Visitors identified by a signed identity from the host page have this subject prefix.
CUSTOMER_PREFIX = "cust:"


# One statement, one round trip, one transaction: the de-duplication on client_msg_id, the
# conversation's next sequence number and the row, and the conversation itself (who answers
# it: the message flow needs nothing else before the reply starts). A conflict on a unique
# index (a concurrent writer of the same message or reply) fails the whole statement, the
# increment with it.
_APPEND = f"""
WITH dup AS (
    SELECT seq FROM messages
    WHERE %(client_msg_id)s::text IS NOT NULL AND conversation_id = %(conversation_id)s::uuid
      AND client_msg_id = %(client_msg_id)s::text
), conv AS (
    SELECT {_CONV_COLUMNS} FROM conversations
    WHERE id = %(conversation_id)s::uuid AND tenant_id = %(tenant_id)s::text
), bump AS (
    UPDATE conversations SET last_seq = last_seq + 1, updated_at = now()
    WHERE id = %(conversation_id)s::uuid AND tenant_id = %(tenant_id)s::text
      AND NOT EXISTS (SELECT 1 FROM dup)
      AND (status = 'open' OR %(role)s::text <> 'visitor')
    RETURNING last_seq
), ins AS (
    INSERT INTO messages (conversation_id, seq, role, author, text, status, client_msg_id,
                          reply_to, engine, meta)
    SELECT %(conversation_id)s::uuid, last_seq, %(role)s::text, %(author)s::text,
           %(text)s::text, %(status)s::text, %(client_msg_id)s::text, %(reply_to)s::bigint,
           %(engine)s::text, %(meta)s::jsonb
    FROM bump
    RETURNING seq
)
SELECT conv.*, (SELECT seq FROM dup) AS duplicate_seq, (SELECT seq FROM ins) AS new_seq,
       COALESCE((SELECT last_seq FROM bump), conv.last_seq) AS bumped_seq
FROM (SELECT 1) AS one LEFT JOIN conv ON true
""".encode()

# The stream flow's first step in one round trip: the conversation, and the reply reserved (an
# empty ``streaming`` assistant row under the next sequence number) when the bot owns it and no
# reply to that message exists yet.
_RESERVE = f"""
WITH conv AS (
    SELECT {_CONV_COLUMNS} FROM conversations
    WHERE id = %(conversation_id)s::uuid AND tenant_id = %(tenant_id)s::text
), earlier AS (
    SELECT seq FROM messages
    WHERE conversation_id = %(conversation_id)s::uuid AND reply_to = %(reply_to)s::bigint
      AND role = 'assistant'
), bump AS (
    UPDATE conversations SET last_seq = last_seq + 1, updated_at = now()
    WHERE id = %(conversation_id)s::uuid AND tenant_id = %(tenant_id)s::text AND owner = 'bot'
      AND NOT EXISTS (SELECT 1 FROM earlier)
    RETURNING last_seq
), ins AS (
    INSERT INTO messages (conversation_id, seq, role, text, status, reply_to)
    SELECT %(conversation_id)s::uuid, last_seq, 'assistant', '', 'streaming',
           %(reply_to)s::bigint
    FROM bump
    RETURNING seq
)
SELECT conv.*, (SELECT seq FROM ins) AS reserved_seq, (SELECT seq FROM earlier) AS existing_seq
FROM conv
""".encode()


class ConversationStore:
    """All conversation and message persistence; every call is tenant-scoped."""

    def __init__(
        self, pool: AsyncConnectionPool, *, ingress: AsyncConnectionPool | None = None,
    ) -> None:
        self._pool = pool
        # Messages are stored through connections of their own when given: the visitor's
        # acknowledgement then does not wait behind the replies' reads and writes.
        self._ingress = ingress

    async def open_for_visitor(self, *, tenant_id: str, visitor_id: str) -> Conversation:
        """The visitor's open conversation, created when there is none."""
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    f"SELECT {_CONV_COLUMNS} FROM conversations WHERE tenant_id = %s"
                    " AND visitor_id = %s AND status = 'open' ORDER BY updated_at DESC LIMIT 1",
                    (tenant_id, visitor_id),
                )
                row = await cur.fetchone()
                if row is None:
                    cur = await conn.cursor(row_factory=dict_row).execute(
                        f"INSERT INTO conversations (id, tenant_id, visitor_id) VALUES (%s, %s, %s)"
                        f" RETURNING {_CONV_COLUMNS}",
                        (uuid.uuid4(), tenant_id, visitor_id),
                    )
                    row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StoreError("cannot open conversation") from exc
        assert row is not None
        return Conversation.model_validate(row)

    async def find_open(self, *, tenant_id: str, visitor_id: str) -> Conversation | None:
        """The visitor's open conversation, if there is one (nothing is created)."""
        row = await self._one(
            f"SELECT {_CONV_COLUMNS} FROM conversations WHERE tenant_id = %s AND visitor_id = %s"
            " AND status = 'open' ORDER BY updated_at DESC LIMIT 1",
            (tenant_id, visitor_id), failure="cannot read conversation",
        )
        return Conversation.model_validate(row) if row else None

    async def get(self, *, tenant_id: str, conversation_id: str) -> Conversation | None:
        row = await self._one(
            f"SELECT {_CONV_COLUMNS} FROM conversations WHERE id = %s AND tenant_id = %s",
            (conversation_id, tenant_id), failure="cannot read conversation",
        )
        return Conversation.model_validate(row) if row else None

    async def _rows(
        self, sql: str, params: tuple[Any, ...], *, failure: str
    ) -> list[dict[str, Any]]:
        """One statement on a pooled connection; a store failure becomes StoreError."""
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(sql.encode(), params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError(failure) from exc

    async def _one(
        self, sql: str, params: tuple[Any, ...], *, failure: str
    ) -> dict[str, Any] | None:
        rows = await self._rows(sql, params, failure=failure)
        return rows[0] if rows else None

    async def append(
        self,
        *,
        tenant_id: str,
        conversation_id: str,
        role: MessageRole,
        text: str,
        author: str | None = None,
        client_msg_id: str | None = None,
        status: Status = "complete",
        reply_to: int | None = None,
        engine: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Stored:
        """Persist one message with the next sequence number; idempotent on ``client_msg_id``
        (and, for assistant replies, on ``reply_to``)."""
        params = {
            "conversation_id": conversation_id, "tenant_id": tenant_id, "role": role,
            "author": author, "text": text, "status": status, "client_msg_id": client_msg_id,
            "reply_to": reply_to, "engine": engine, "meta": Jsonb(meta or {}),
        }
        try:
            async with self._storing() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(_APPEND, params)
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation:
            # A concurrent writer stored the same client message (or reply) first: the whole
            # statement, our sequence increment included, was undone; return theirs.
            return await self._resolve_duplicate(conversation_id, client_msg_id, reply_to)
        except psycopg.Error as exc:
            raise StoreError("cannot store message") from exc
        assert row is not None
        duplicate_seq, seq = row.pop("duplicate_seq"), row.pop("new_seq")
        row["last_seq"] = row.pop("bumped_seq")
        conversation = Conversation.model_validate(row) if row["id"] is not None else None
        if duplicate_seq is not None:
            return Stored(seq=int(duplicate_seq), duplicate=True, conversation=conversation)
        if seq is not None:
            return Stored(seq=int(seq), duplicate=False, conversation=conversation)
        if conversation is None:
            raise ConversationClosed("conversation not found")
        raise ConversationClosed("conversation is closed")

    @contextlib.asynccontextmanager
    async def _storing(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection to store a message on: one of the messages' own when one is free
        within ``INGRESS_WAIT_S``, else (they are all busy: a burst, a stalled loop) one of
        the shared pool, as without them; a burst is never refused for want of them."""
        conn = None
        if self._ingress is not None:
            with contextlib.suppress(PoolTimeout):
                conn = await self._ingress.getconn(timeout=INGRESS_WAIT_S)
        if conn is None:
            async with self._pool.connection() as shared:
                yield shared
            return
        assert self._ingress is not None
        try:
            async with conn:  # a pool's connection: commit (or roll back) on exit, kept open
                yield conn
        finally:
            await self._ingress.putconn(conn)

    async def reserve_reply(
        self, *, tenant_id: str, conversation_id: str, reply_to: int
    ) -> tuple[Conversation | None, Stored | None]:
        """The conversation and, when the bot owns it, its reply to ``reply_to`` reserved as
        ``streaming`` (``duplicate`` when it was reserved before): one statement."""
        params = {"conversation_id": conversation_id, "tenant_id": tenant_id,
                  "reply_to": reply_to}
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(_RESERVE, params)
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation:  # reserved concurrently: theirs
            conversation = await self.get(tenant_id=tenant_id, conversation_id=conversation_id)
            return conversation, await self._resolve_duplicate(conversation_id, None, reply_to)
        except psycopg.Error as exc:
            raise StoreError("cannot reserve the reply") from exc
        if row is None:
            return None, None
        reserved, existing = row.pop("reserved_seq"), row.pop("existing_seq")
        conversation = Conversation.model_validate(row)
        if existing is not None:
            return conversation, Stored(seq=int(existing), duplicate=True)
        if reserved is not None:
            return conversation, Stored(seq=int(reserved), duplicate=False)
        return conversation, None

    async def _existing(
        self, conn: psycopg.AsyncConnection[Any], conversation_id: str, client_msg_id: str
    ) -> int | None:
        cur = await conn.execute(
            "SELECT seq FROM messages WHERE conversation_id = %s AND client_msg_id = %s",
            (conversation_id, client_msg_id),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else None

    async def _resolve_duplicate(
        self, conversation_id: str, client_msg_id: str | None, reply_to: int | None
    ) -> Stored:
        async with self._pool.connection() as conn:
            if client_msg_id is not None:
                seq = await self._existing(conn, conversation_id, client_msg_id)
            else:
                cur = await conn.execute(
                    "SELECT seq FROM messages WHERE conversation_id = %s AND reply_to = %s"
                    " AND role = 'assistant'",
                    (conversation_id, reply_to),
                )
                row = await cur.fetchone()
                seq = int(row[0]) if row else None
        if seq is None:
            raise StoreError("duplicate message vanished")
        return Stored(seq=seq, duplicate=True)

    async def has_reply(self, *, conversation_id: str, seq: int) -> bool:
        """Whether an assistant reply to message ``seq`` was started (or finished)."""
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT 1 FROM messages WHERE conversation_id = %s AND reply_to = %s"
                    " AND role = 'assistant'",
                    (conversation_id, seq),
                )
                return await cur.fetchone() is not None
        except psycopg.Error as exc:
            raise StoreError("cannot read messages") from exc

    async def finish(
        self,
        *,
        conversation_id: str,
        seq: int,
        text: str,
        status: Status,
        engine: str | None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Complete (or mark incomplete) a reply that was reserved as ``streaming``."""
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE messages SET text = %s, status = %s, engine = %s,"
                    " meta = meta || %s, updated_at = now()"
                    " WHERE conversation_id = %s AND seq = %s",
                    (text, status, engine, Jsonb(meta or {}), conversation_id, seq),
                )
        except psycopg.Error as exc:
            raise StoreError("cannot finish message") from exc

    async def since(
        self, *, tenant_id: str, conversation_id: str, after_seq: int, limit: int,
        stale_after_s: int = 90,
    ) -> list[StoredMessage]:
        """Messages after ``after_seq`` in order.

        A reply still ``streaming`` whose writer has been silent for ``stale_after_s`` (longer
        than any reply may take: the adapter's total deadline plus pacing) died with its
        process: it is stored as ``incomplete`` (reason ``interrupted``) and replayed so,
        never shown as whole and never awaited forever."""
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE messages m SET status = 'incomplete', updated_at = now(),"
                    " meta = m.meta || '{\"reason\": \"interrupted\"}'::jsonb"
                    " FROM conversations c WHERE c.id = m.conversation_id AND c.tenant_id = %s"
                    " AND m.conversation_id = %s AND m.seq > %s AND m.status = 'streaming'"
                    " AND m.updated_at < now() - make_interval(secs => %s)",
                    (tenant_id, conversation_id, after_seq, stale_after_s),
                )
                cur = await conn.cursor(row_factory=dict_row).execute(
                    f"SELECT {_MSG_COLUMNS}"
                    " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                    " WHERE m.conversation_id = %s AND c.tenant_id = %s AND m.seq > %s"
                    " ORDER BY m.seq LIMIT %s",
                    (conversation_id, tenant_id, after_seq, limit),
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("cannot read messages") from exc
        return [StoredMessage.model_validate(row) for row in rows]

    async def mark_interrupted(self, *, conversation_id: str, seqs: list[int]) -> None:
        """Store replies whose stream died with its process as ``incomplete``."""
        if not seqs:
            return
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE messages SET status = 'incomplete', updated_at = now(),"
                    " meta = meta || '{\"reason\": \"interrupted\"}'::jsonb"
                    " WHERE conversation_id = %s AND seq = ANY(%s) AND status = 'streaming'",
                    (conversation_id, seqs),
                )
        except psycopg.Error as exc:
            raise StoreError("cannot mark replies interrupted") from exc

    async def settle_failed_reply(
        self, *, tenant_id: str, conversation_id: str, reply_to: int, reason: str
    ) -> StoredMessage | None:
        """The reply to visitor message ``reply_to`` after its writer failed for good (the
        stream function crashed, timed out or was never run): a reply still ``streaming`` is
        stored ``incomplete``; a reply never started is stored as an empty ``incomplete`` one
        (bot-owned conversations only), so a late resend does not answer it minutes later.

        Returns the reply this call settled, or ``None`` when there was nothing to do (the
        reply was finished, or settled by an earlier call: a redelivered failure changes
        nothing twice)."""
        meta = Jsonb({"reason": reason})
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT owner FROM conversations WHERE id = %s AND tenant_id = %s"
                    " FOR UPDATE",
                    (conversation_id, tenant_id),
                )
                conv = await cur.fetchone()
                if conv is None:
                    return None
                updated = await conn.cursor(row_factory=dict_row).execute(
                    "UPDATE messages m SET status = 'incomplete', updated_at = now(),"
                    " meta = m.meta || %s WHERE m.conversation_id = %s AND m.reply_to = %s"
                    " AND m.role = 'assistant' AND m.status = 'streaming'"
                    f" RETURNING {_MSG_COLUMNS}",
                    (meta, conversation_id, reply_to),
                )
                row = await updated.fetchone()
                if row is not None:
                    return StoredMessage.model_validate(row)
                cur = await conn.execute(
                    "SELECT 1 FROM messages WHERE conversation_id = %s AND reply_to = %s"
                    " AND role = 'assistant'",
                    (conversation_id, reply_to),
                )
                if await cur.fetchone() is not None or conv[0] != "bot":
                    return None
                cur = await conn.execute(
                    "UPDATE conversations SET last_seq = last_seq + 1, updated_at = now()"
                    " WHERE id = %s RETURNING last_seq",
                    (conversation_id,),
                )
                seq_row = await cur.fetchone()
                assert seq_row is not None
                created = await conn.cursor(row_factory=dict_row).execute(
                    "INSERT INTO messages AS m (conversation_id, seq, role, text, status,"
                    " reply_to, meta) VALUES (%s, %s, 'assistant', '', 'incomplete', %s, %s)"
                    f" RETURNING {_MSG_COLUMNS}",
                    (conversation_id, int(seq_row[0]), reply_to, meta),
                )
                inserted = await created.fetchone()
                return StoredMessage.model_validate(inserted) if inserted else None
        except psycopg.Error as exc:
            raise StoreError("cannot settle a failed reply") from exc

    async def unanswered_tail(
        self, *, tenant_id: str, conversation_id: str, older_than_s: float
    ) -> StoredMessage | None:
        """The conversation's last message when it is a visitor's, older than
        ``older_than_s``, with no reply started: its reply was lost before it began (the
        process that was to answer died), and must be started again."""
        row = await self._one(
            f"SELECT {_MSG_COLUMNS} FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.conversation_id = %s AND c.tenant_id = %s AND m.seq = c.last_seq"
            " AND m.role = 'visitor'"
            " AND m.created_at < now() - make_interval(secs => %s)",
            (conversation_id, tenant_id, older_than_s), failure="cannot read messages",
        )
        return StoredMessage.model_validate(row) if row else None

    async def recent(
        self, *, tenant_id: str, conversation_id: str, limit: int, before_seq: int | None = None
    ) -> list[StoredMessage]:
        """The last ``limit`` messages (oldest first), optionally before a sequence number."""
        rows = await self._rows(
            f"SELECT {_MSG_COLUMNS} FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.conversation_id = %s AND c.tenant_id = %s AND m.seq < %s"
            " ORDER BY m.seq DESC LIMIT %s",
            (conversation_id, tenant_id, before_seq or 2**62, limit),
            failure="cannot read messages",
        )
        return [StoredMessage.model_validate(row) for row in reversed(rows)]


    # -- ownership (handoff) -------------------------------------------------------------------
    async def transition(
        self,
        *,
        tenant_id: str,
        conversation_id: str,
        owner: Owner,
        assigned_agent: str | None,
        from_owners: tuple[Owner, ...],
        from_agent: str | Literal["any"] | None = "any",
        reason: str | None = None,
    ) -> Conversation | None:
        """Move an open conversation to ``owner``/``assigned_agent`` when it is currently owned
        by one of ``from_owners`` (and, unless ``from_agent`` is ``"any"``, assigned to
        ``from_agent``). Returns the updated conversation, or ``None`` when it was not in that
        state: concurrent moves (two agents taking the same conversation) cannot both win."""
        where = "id = %s AND tenant_id = %s AND status = 'open' AND owner = ANY(%s)"
        params: list[Any] = [conversation_id, tenant_id, list(from_owners)]
        if from_agent != "any":
            where += " AND assigned_agent IS NOT DISTINCT FROM %s"
            params.append(from_agent)
        queued = "now()" if owner == "queue" else "NULL"
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    f"UPDATE conversations SET owner = %s, assigned_agent = %s,"
                    f" handoff_reason = coalesce(%s, handoff_reason), queued_at = {queued},"
                    f" updated_at = now() WHERE {where} RETURNING {_CONV_COLUMNS}",
                    [owner, assigned_agent, reason, *params],
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StoreError("cannot change conversation owner") from exc
        return Conversation.model_validate(row) if row else None

    async def close(self, *, tenant_id: str, conversation_id: str) -> Conversation | None:
        """Close an open conversation; ``None`` when it was not open."""
        row = await self._one(
            f"UPDATE conversations SET status = 'closed', closed_at = now(),"
            f" queued_at = NULL, updated_at = now()"
            f" WHERE id = %s AND tenant_id = %s AND status = 'open'"
            f" RETURNING {_CONV_COLUMNS}",
            (conversation_id, tenant_id), failure="cannot close conversation",
        )
        return Conversation.model_validate(row) if row else None

    async def search(
        self,
        *,
        tenant_id: str,
        text: str | None = None,
        status: str | None = None,
        owners: tuple[str, ...] | None = None,
        assigned_agent: str | None = None,
        visitor_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ConversationSummary]:
        """Conversations of a tenant, newest activity first, with their last message."""
        where = ["c.tenant_id = %s"]
        params: list[Any] = [tenant_id]
        if status:
            where.append("c.status = %s")
            params.append(status)
        if owners:
            where.append("c.owner = ANY(%s)")
            params.append(list(owners))
        if assigned_agent:
            where.append("c.assigned_agent = %s")
            params.append(assigned_agent)
        if visitor_id:
            where.append("c.visitor_id = %s")
            params.append(visitor_id)
        if since:
            where.append("c.updated_at >= %s")
            params.append(since)
        if until:
            where.append("c.created_at < %s")
            params.append(until)
        if text:
            where.append("(c.visitor_id ILIKE %s OR EXISTS (SELECT 1 FROM messages s WHERE"
                         " s.conversation_id = c.id AND s.text ILIKE %s))")
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            params += [pattern, pattern]
        params += [max(1, min(limit, 1000)), max(0, offset)]
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    f"SELECT {_CONV_C_COLUMNS}, last.text AS last_text, last.role AS last_role"
                    f" FROM conversations c LEFT JOIN LATERAL (SELECT m.text, m.role FROM"
                    f" messages m WHERE m.conversation_id = c.id AND m.role <> 'system'"
                    f" AND m.text <> ''"  # a reply with no text yet: the message before it
                    f" ORDER BY m.seq DESC LIMIT 1) last ON true"
                    f" WHERE {' AND '.join(where)}"
                    f" ORDER BY c.updated_at DESC LIMIT %s OFFSET %s",
                    params,
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("cannot search conversations") from exc
        return [ConversationSummary.model_validate(row) for row in rows]


class ConversationSummary(Conversation):
    last_text: str | None = None
    last_role: str | None = None
