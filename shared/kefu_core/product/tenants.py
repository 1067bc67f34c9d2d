"""Tenants and what belongs to them: widget keys, agents, settings, prompts, engine config.

- Passwords are hashed with ``hashlib.scrypt`` (random salt, parameters stored with the hash)
  and compared in constant time.
- Agents' e-mail addresses are unique per tenant (migration ``003_agent_auth.sql``) and
  sign-in names the tenant, so nothing reveals another tenant's addresses. Each agent has a
  ``token_version`` (revocation, :mod:`kefu_core.product.agent_auth`) and a ``demo`` flag (the
  development demo administrator, refused in production).
- The identity secret (which a company's backend uses to sign a logged-in customer's identity
  for the widget) and engine secrets are write-only: no read path returns them, except
  :meth:`TenantStore.identity_secret` used by the server to verify an identity and
  :meth:`TenantStore.engine_secret` for the engines. Both are stored encrypted
  (:mod:`kefu_core.security.datakeys`); a value stored before encryption is sealed when next read.
- :func:`tenant_settings` is the per-tenant settings lookup used by the flows (cached in the
  process for a few seconds, so a Lambda does not read PostgreSQL on every reply).
- :func:`ensure_bootstrap` creates the tenants of ``WIDGET_KEYS`` with their keys, the
  super-admin from ``SUPER_ADMIN_EMAIL``/``SUPER_ADMIN_PASSWORD``, and, outside production,
  a demo administrator.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
import weakref
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from kefu_core.infra.errors import Conflict, StoreError
from kefu_core.infra.settings import Settings
from kefu_core.product.canned_replies import MAX_CANNED_REPLIES, CannedReply
from kefu_core.security.datakeys import DataKeys, data_keys_for
from kefu_core.security.roles import StaffRole

__all__ = [
    "DEMO_ADMIN_EMAIL",
    "DEMO_ADMIN_PASSWORD",
    "ROOT_TENANT",
    "Agent",
    "Conflict",
    "RetentionSettings",
    "TenantSettings",
    "TenantStore",
    "WidgetKey",
    "ensure_bootstrap",
    "forget_tenant_settings",
    "hash_password",
    "tenant_settings",
    "verify_password",
]

logger = logging.getLogger("kefu.tenants")

ROOT_TENANT = "_root"  # the super-admin's tenant; no tenant id may start with "_"
DEMO_ADMIN_EMAIL = "admin@demo.kefu"
DEMO_ADMIN_PASSWORD = "kefu-demo-admin"

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return (f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$"
            f"{b64(salt).decode()}${b64(digest).decode()}")


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _dummy_hash() -> str:
    """A well-formed hash with this module's parameters that no password matches: checking a
    password against it costs one scrypt, like a real account's. Random salt and digest, so
    no scrypt runs at import (every cold start paid one) nor on the first unknown address
    (which would then cost two)."""
    b64 = base64.b64encode
    return (f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$"
            f"{b64(secrets.token_bytes(16)).decode()}${b64(secrets.token_bytes(32)).decode()}")


_DUMMY_HASH = _dummy_hash()


class RetentionSettings(BaseModel):
    """How long a tenant keeps personal data, in days (1 to 3650); the retention job
    (:mod:`kefu_core.flows.personal_data.retention`) deletes what is older. Defaults in
    docs/data-protection.md."""

    # A conversation with its messages, notes and rating, counted from its last activity.
    transcripts_days: int = Field(default=365, ge=1, le=3650)
    # A long-term fact, counted from when it was last seen (or, superseded, replaced).
    facts_days: int = Field(default=365, ge=1, le=3650)
    # An offline message, counted from when it was left.
    offline_messages_days: int = Field(default=90, ge=1, le=3650)


class TenantSettings(BaseModel):
    """Per-tenant knobs (admin API ``/v1/admin/settings``)."""

    context_window: int = Field(default=10, ge=1, le=100)
    enable_fallback: bool = True
    # Humanisation: replies are paced at about this many characters per second (0 = as fast
    # as the model streams), with a short "thinking" pause before the first delta, and emoji
    # used at this frequency.
    reply_pacing_cps: int = Field(default=0, ge=0, le=1000)
    reply_first_delay_ms: int = Field(default=0, ge=0, le=5000)
    emoji_frequency: Literal["none", "low", "medium", "high"] = "low"
    # Handoff.
    handoff_keywords: list[str] = Field(default_factory=lambda: [
        "转人工", "人工客服", "人工服务", "找人工", "真人", "human", "agent", "real person",
        "talk to a person",
    ])
    handoff_after_failures: int = Field(default=2, ge=0, le=20)
    # Widget defaults (a page's data- attributes override them).
    greeting_zh: str = "您好！我是智能客服，有什么可以帮您？"
    greeting_en: str = "Hi! I'm the virtual assistant. How can I help?"
    color: str = Field(default="#2f6fed", pattern=r"^#[0-9a-fA-F]{3,8}$")
    avatar_url: str | None = Field(default=None, max_length=500)
    offline_message_enabled: bool = True
    # The learning loop (docs/console.md): what a reply with a sentence found in no source does
    # (mark it in the final frame, replace it with a refusal offering a human, or hand off).
    grounding_action: Literal["off", "mark", "refuse", "handoff"] = "mark"
    # The first engine of the chain takes a second look at flagged sentences (it may clear
    # them), within GROUNDING_ENGINE_BUDGET_MS: one short request per flagged reply.
    grounding_engine_check: bool = False
    # A visitor question scoring at least this against a curated answer is answered with it,
    # without a model call (kefu_core.answers.curated); agents may edit curated answers too.
    curated_answer_threshold: float = Field(default=0.75, ge=0.3, le=1.0)
    agents_curate: bool = False
    # Ready answers agents insert with "/shortcut" in the console (product.canned_replies).
    canned_replies: list[CannedReply] = Field(default_factory=list,
                                              max_length=MAX_CANNED_REPLIES)
    # Personal data retention (docs/data-protection.md).
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


class WidgetKey(BaseModel):
    key: str
    tenant_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None = None
    # Origins whose pages may use the key (kefu_core.product.widget_origins); empty: every origin.
    allowed_origins: list[str] = Field(default_factory=list)


class Agent(BaseModel):
    id: str
    tenant_id: str
    email: str
    name: str
    role: StaffRole
    capacity: int
    active: bool
    created_at: datetime
    # Never in an API answer: the version carried in this agent's tokens (bumped to revoke
    # them) and the demo flag (a demo account is refused in production).
    token_version: int = Field(default=1, exclude=True)
    demo: bool = Field(default=False, exclude=True)


class Tenant(BaseModel):
    id: str
    name: str
    created_at: datetime
    identity_secret_set: bool


_AGENT_COLS = ("id, tenant_id, email, name, role, capacity, active, created_at, token_version,"
               " demo")
_WIDGET_KEY_COLS = "key, tenant_id, label, created_at, revoked_at, allowed_origins"


class TenantStore:
    """Tenant-scoped persistence of the product's configuration."""

    def __init__(self, pool: AsyncConnectionPool, data_keys: DataKeys | None = None) -> None:
        self._pool = pool
        self._data_keys = data_keys

    @property
    def data_keys(self) -> DataKeys:
        """The keys sealing secrets (by default those the environment configures)."""
        if self._data_keys is None:
            self._data_keys = data_keys_for(Settings())
        return self._data_keys

    async def _one(self, sql: str, params: tuple[Any, ...] | list[Any]) -> dict[str, Any] | None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
                return await cur.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("already exists") from exc
        except psycopg.Error as exc:
            raise StoreError("tenant store failed") from exc

    async def _all(self, sql: str, params: tuple[Any, ...] | list[Any]) -> list[dict[str, Any]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("tenant store failed") from exc

    # -- tenants ---------------------------------------------------------------------------
    async def create_tenant(self, *, tenant_id: str, name: str) -> Tenant:
        row = await self._one(
            "INSERT INTO tenants (id, name) VALUES (%s, %s)"
            " RETURNING id, name, created_at, identity_secret IS NOT NULL AS identity_secret_set",
            (tenant_id, name),
        )
        assert row is not None
        return Tenant.model_validate(row)

    async def ensure_tenant(self, *, tenant_id: str, name: str) -> None:
        await self._one("INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING"
                        " RETURNING id", (tenant_id, name))

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self._one(
            "SELECT id, name, created_at, identity_secret IS NOT NULL AS identity_secret_set"
            " FROM tenants WHERE id = %s", (tenant_id,))
        return Tenant.model_validate(row) if row else None

    async def list_tenants(self) -> list[Tenant]:
        rows = await self._all(
            "SELECT id, name, created_at, identity_secret IS NOT NULL AS identity_secret_set"
            " FROM tenants WHERE id <> %s ORDER BY id", (ROOT_TENANT,))
        return [Tenant.model_validate(r) for r in rows]

    async def rotate_identity_secret(self, tenant_id: str) -> str:
        """A new identity secret (returned once, stored sealed)."""
        secret = "ids_" + secrets.token_urlsafe(32)
        sealed = await self.data_keys.seal(secret, context=_identity_context(tenant_id))
        await self._one("UPDATE tenants SET identity_secret = %s WHERE id = %s RETURNING id",
                        (sealed, tenant_id))
        return secret

    async def identity_secret(self, tenant_id: str) -> str | None:
        row = await self._one("SELECT identity_secret FROM tenants WHERE id = %s", (tenant_id,))
        if not row or not row["identity_secret"]:
            return None
        stored = str(row["identity_secret"])
        context = _identity_context(tenant_id)
        secret = await self.data_keys.open(stored, context=context)
        if not await self.data_keys.is_current(stored):
            await self._reseal("UPDATE tenants SET identity_secret = %s"
                               " WHERE id = %s AND identity_secret = %s RETURNING id",
                               secret, context, (tenant_id, stored))
        return secret

    async def _reseal(self, sql: str, secret: str, context: str,
                      where: tuple[Any, ...]) -> bool:
        """Seal a plaintext (or old-key) value again with the current key, unless the row
        changed meanwhile."""
        sealed = await self.data_keys.seal(secret, context=context)
        return await self._one(sql, (sealed, *where)) is not None

    async def reseal_all(self) -> dict[str, int]:
        """Seal every stored secret with the current key (plaintext rows from before
        encryption, rows sealed with an older key). Returns how many rows changed."""
        counts = {"identity_secrets": 0, "engine_secrets": 0}
        for row in await self._all("SELECT id, identity_secret FROM tenants"
                                   " WHERE identity_secret IS NOT NULL", ()):
            stored, context = str(row["identity_secret"]), _identity_context(row["id"])
            if not await self.data_keys.is_current(stored):
                secret = await self.data_keys.open(stored, context=context)
                counts["identity_secrets"] += await self._reseal(
                    "UPDATE tenants SET identity_secret = %s"
                    " WHERE id = %s AND identity_secret = %s RETURNING id",
                    secret, context, (row["id"], stored))
        for row in await self._all("SELECT tenant_id, name, secret FROM engine_secrets", ()):
            stored = str(row["secret"])
            context = _engine_context(row["tenant_id"], row["name"])
            if not await self.data_keys.is_current(stored):
                secret = await self.data_keys.open(stored, context=context)
                counts["engine_secrets"] += await self._reseal(
                    "UPDATE engine_secrets SET secret = %s"
                    " WHERE tenant_id = %s AND name = %s AND secret = %s RETURNING name",
                    secret, context, (row["tenant_id"], row["name"], stored))
        return counts

    async def create_widget_key(
        self, *, tenant_id: str, label: str = "", key: str | None = None,
        allowed_origins: list[str] | None = None,
    ) -> WidgetKey:
        row = await self._one(
            "INSERT INTO widget_keys (key, tenant_id, label, allowed_origins)"
            f" VALUES (%s, %s, %s, %s) RETURNING {_WIDGET_KEY_COLS}",
            (key or "wk_" + secrets.token_urlsafe(18), tenant_id, label,
             list(allowed_origins or [])),
        )
        assert row is not None
        return WidgetKey.model_validate(row)

    async def update_widget_key(
        self, *, tenant_id: str, key: str, label: str | None = None,
        allowed_origins: list[str] | None = None,
    ) -> WidgetKey | None:
        """Change an active key's label and/or allowed origins; None when there is no such key."""
        row = await self._one(
            "UPDATE widget_keys SET label = coalesce(%s, label),"
            " allowed_origins = coalesce(%s, allowed_origins) WHERE key = %s"
            f" AND tenant_id = %s AND revoked_at IS NULL RETURNING {_WIDGET_KEY_COLS}",
            (label, allowed_origins, key, tenant_id),
        )
        return WidgetKey.model_validate(row) if row else None

    async def list_widget_keys(self, tenant_id: str) -> list[WidgetKey]:
        rows = await self._all(f"SELECT {_WIDGET_KEY_COLS} FROM widget_keys"
                               " WHERE tenant_id = %s ORDER BY created_at", (tenant_id,))
        return [WidgetKey.model_validate(r) for r in rows]

    async def revoke_widget_key(self, *, tenant_id: str, key: str) -> bool:
        row = await self._one("UPDATE widget_keys SET revoked_at = now() WHERE key = %s"
                              " AND tenant_id = %s AND revoked_at IS NULL RETURNING key",
                              (key, tenant_id))
        return row is not None

    async def widget_key(self, key: str) -> WidgetKey | None:
        """An active (not revoked) key, whichever tenant it belongs to."""
        row = await self._one(f"SELECT {_WIDGET_KEY_COLS} FROM widget_keys WHERE key = %s"
                              " AND revoked_at IS NULL", (key,))
        return WidgetKey.model_validate(row) if row else None

    async def tenant_for_widget_key(self, key: str) -> str | None:
        found = await self.widget_key(key)
        return found.tenant_id if found else None

    # -- agents ----------------------------------------------------------------------------
    async def create_agent(
        self, *, tenant_id: str, email: str, name: str, password: str, role: StaffRole = "agent",
        capacity: int = 5, demo: bool = False,
    ) -> Agent:
        """Create an agent; :class:`Conflict` when the tenant already has that e-mail address
        (addresses are unique per tenant only, so another tenant's agents are never revealed)."""
        hashed = await asyncio.to_thread(hash_password, password)
        row = await self._one(
            f"INSERT INTO agents (id, tenant_id, email, name, role, password_hash, capacity,"
            f" demo) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_AGENT_COLS}",
            (f"a-{uuid.uuid4().hex[:16]}", tenant_id, email.strip(), name, role, hashed,
             capacity, demo),
        )
        assert row is not None
        return Agent.model_validate(row)

    async def update_agent(
        self, *, tenant_id: str, agent_id: str, name: str | None = None,
        role: StaffRole | None = None, capacity: int | None = None, active: bool | None = None,
        password: str | None = None,
    ) -> Agent | None:
        """Change an agent. A new role, a change of ``active`` or a new password bumps the
        token version, which revokes every token the agent holds."""
        hashed = await asyncio.to_thread(hash_password, password) if password else None
        row = await self._one(
            f"UPDATE agents SET name = coalesce(%s, name), role = coalesce(%s, role),"
            f" capacity = coalesce(%s, capacity), active = coalesce(%s, active),"
            f" password_hash = coalesce(%s, password_hash),"
            f" token_version = token_version + CASE WHEN coalesce(%s, role) <> role"
            f" OR coalesce(%s, active) <> active OR %s::text IS NOT NULL THEN 1 ELSE 0 END,"
            f" updated_at = now()"
            f" WHERE id = %s AND tenant_id = %s RETURNING {_AGENT_COLS}",
            (name, role, capacity, active, hashed, role, active, hashed, agent_id, tenant_id),
        )
        return Agent.model_validate(row) if row else None

    async def revoke_tokens(self, *, tenant_id: str, agent_id: str) -> Agent | None:
        """Sign the agent out everywhere: every token issued before stops working."""
        row = await self._one(
            f"UPDATE agents SET token_version = token_version + 1, updated_at = now()"
            f" WHERE id = %s AND tenant_id = %s RETURNING {_AGENT_COLS}", (agent_id, tenant_id))
        return Agent.model_validate(row) if row else None

    async def get_agent(self, *, tenant_id: str, agent_id: str) -> Agent | None:
        row = await self._one(f"SELECT {_AGENT_COLS} FROM agents WHERE id = %s"
                              " AND tenant_id = %s", (agent_id, tenant_id))
        return Agent.model_validate(row) if row else None

    async def list_agents(self, tenant_id: str) -> list[Agent]:
        rows = await self._all(f"SELECT {_AGENT_COLS} FROM agents WHERE tenant_id = %s"
                               " ORDER BY created_at", (tenant_id,))
        return [Agent.model_validate(r) for r in rows]

    async def authenticate(
        self, *, tenant_id: str, email: str, password: str, allow_demo: bool = True
    ) -> Agent | None:
        """The active agent of ``tenant_id`` with this e-mail and password, else None (the
        same work and the same answer whether the address exists or not). Demo accounts are
        refused unless ``allow_demo`` (never in production)."""
        row = await self._one(f"SELECT {_AGENT_COLS}, password_hash FROM agents"
                              " WHERE tenant_id = %s AND lower(email) = lower(%s)",
                              (tenant_id, email.strip()))
        stored = str(row["password_hash"]) if row else _DUMMY_HASH  # same work either way
        ok = await asyncio.to_thread(verify_password, password, stored)
        if not ok or row is None or not row["active"] or (row["demo"] and not allow_demo):
            return None
        return Agent.model_validate(row)

    # -- settings, prompts, engines --------------------------------------------------------
    async def get_settings(self, tenant_id: str) -> TenantSettings:
        row = await self._one("SELECT settings FROM tenant_settings WHERE tenant_id = %s",
                              (tenant_id,))
        return TenantSettings.model_validate(row["settings"] if row else {})

    async def put_settings(self, tenant_id: str, value: TenantSettings) -> TenantSettings:
        await self._one(
            "INSERT INTO tenant_settings (tenant_id, settings) VALUES (%s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings,"
            " updated_at = now() RETURNING tenant_id",
            (tenant_id, Jsonb(value.model_dump(mode="json"))),
        )
        _settings_cache.pop(tenant_id, None)
        return value

    async def list_prompts(self, tenant_id: str) -> dict[str, str]:
        rows = await self._all("SELECT name, text FROM prompts WHERE tenant_id = %s"
                               " ORDER BY name", (tenant_id,))
        return {str(r["name"]): str(r["text"]) for r in rows}

    async def put_prompt(self, *, tenant_id: str, name: str, text: str) -> None:
        await self._one(
            "INSERT INTO prompts (tenant_id, name, text) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, name) DO UPDATE SET text = EXCLUDED.text,"
            " updated_at = now() RETURNING name", (tenant_id, name, text))
        _settings_cache.pop(tenant_id, None)

    async def delete_prompt(self, *, tenant_id: str, name: str) -> bool:
        row = await self._one("DELETE FROM prompts WHERE tenant_id = %s AND name = %s"
                              " RETURNING name", (tenant_id, name))
        _settings_cache.pop(tenant_id, None)
        return row is not None

    async def get_engine_chain(self, tenant_id: str) -> list[dict[str, Any]]:
        row = await self._one("SELECT chain FROM engine_config WHERE tenant_id = %s",
                              (tenant_id,))
        return list(row["chain"]) if row else []

    async def put_engine_chain(self, *, tenant_id: str, chain: list[dict[str, Any]]) -> None:
        await self._one(
            "INSERT INTO engine_config (tenant_id, chain) VALUES (%s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET chain = EXCLUDED.chain, updated_at = now()"
            " RETURNING tenant_id", (tenant_id, Jsonb(chain)))

    async def put_engine_secret(self, *, tenant_id: str, name: str, secret: str) -> None:
        sealed = await self.data_keys.seal(secret, context=_engine_context(tenant_id, name))
        await self._one(
            "INSERT INTO engine_secrets (tenant_id, name, secret) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, name) DO UPDATE SET secret = EXCLUDED.secret,"
            " updated_at = now() RETURNING name", (tenant_id, name, sealed))

    async def engine_secret(self, *, tenant_id: str, name: str) -> str | None:
        """A tenant's engine secret, for building its engine (never for an API answer)."""
        row = await self._one("SELECT secret FROM engine_secrets WHERE tenant_id = %s"
                              " AND name = %s", (tenant_id, name))
        if row is None:
            return None
        stored, context = str(row["secret"]), _engine_context(tenant_id, name)
        secret = await self.data_keys.open(stored, context=context)
        if not await self.data_keys.is_current(stored):
            await self._reseal("UPDATE engine_secrets SET secret = %s"
                               " WHERE tenant_id = %s AND name = %s AND secret = %s"
                               " RETURNING name", secret, context, (tenant_id, name, stored))
        return secret

    async def delete_engine_secret(self, *, tenant_id: str, name: str) -> bool:
        row = await self._one("DELETE FROM engine_secrets WHERE tenant_id = %s AND name = %s"
                              " RETURNING name", (tenant_id, name))
        return row is not None

    async def engine_stamp(self, tenant_id: str) -> str:
        """Changes whenever the tenant's chain or one of its engine secrets is set or deleted
        (one indexed read; :mod:`kefu_core.answers.tenant_engines` checks it every few seconds)."""
        row = await self._one(
            "SELECT (SELECT updated_at FROM engine_config WHERE tenant_id = %s) AS chain_at,"
            " count(*) AS secrets, max(updated_at) AS secrets_at"
            " FROM engine_secrets WHERE tenant_id = %s", (tenant_id, tenant_id))
        assert row is not None
        return f"{row['chain_at']}|{row['secrets']}|{row['secrets_at']}"

    async def engine_secret_names(self, tenant_id: str) -> list[dict[str, Any]]:
        """Names and update times only: secrets are never read back through the API."""
        return await self._all("SELECT name, updated_at FROM engine_secrets"
                               " WHERE tenant_id = %s ORDER BY name", (tenant_id,))


def _identity_context(tenant_id: str) -> str:
    return f"identity:{tenant_id}"


def _engine_context(tenant_id: str, name: str) -> str:
    return f"engine:{tenant_id}:{name}"


# -- the per-tenant settings lookup (for the flows) -------------------------------------------
_settings_cache: dict[str, tuple[float, TenantSettings, str | None]] = {}
_CACHE_TTL_S = 10.0


def forget_tenant_settings(tenant_id: str) -> None:
    """Drop this process's cached settings and prompt of the tenant (after writing them)."""
    _settings_cache.pop(tenant_id, None)


async def tenant_settings(
    pool: AsyncConnectionPool, tenant_id: str, *, max_age_s: float = _CACHE_TTL_S
) -> tuple[TenantSettings, str | None]:
    """The tenant's settings and its system prompt override (``None`` = the global one).

    Cached in the process for ``max_age_s``; falls back to defaults when the store fails, so
    a reply is never refused because the settings could not be read.
    """
    now = time.monotonic()
    hit = _settings_cache.get(tenant_id)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    store = TenantStore(pool)
    try:
        value = await store.get_settings(tenant_id)
        prompt = (await store.list_prompts(tenant_id)).get("system")
    except StoreError:
        logger.warning("tenant settings unavailable; using defaults", extra={"tenant": tenant_id})
        return TenantSettings(), None
    _settings_cache[tenant_id] = (now + max_age_s, value, prompt)
    return value, prompt


_bootstrapped: weakref.WeakSet[AsyncConnectionPool] = weakref.WeakSet()


async def ensure_bootstrap(pool: AsyncConnectionPool, settings: Settings) -> None:
    """Create what the environment configures, once per pool (idempotent, so two processes or
    two concurrent first requests doing it at once are harmless)."""
    if pool in _bootstrapped:
        return
    store = TenantStore(pool)
    for key, tenant in settings.widget_tenants().items():
        await store.ensure_tenant(tenant_id=tenant, name=tenant)
        await store._one("INSERT INTO widget_keys (key, tenant_id, label) VALUES (%s, %s,"
                         " 'WIDGET_KEYS') ON CONFLICT DO NOTHING RETURNING key", (key, tenant))
    email = settings.super_admin_email
    password = settings.super_admin_password
    if email and password:
        await store.ensure_tenant(tenant_id=ROOT_TENANT, name="super-admin")
        await _ensure_agent(store, tenant_id=ROOT_TENANT, email=email, name="Super admin",
                            password=password)
    if settings.kefu_env != "production":  # never in production, and refused there
        for tenant in sorted(set(settings.widget_tenants().values()))[:1]:
            await _ensure_agent(store, tenant_id=tenant, email=DEMO_ADMIN_EMAIL,
                                name="Demo admin", password=DEMO_ADMIN_PASSWORD, demo=True)
    _bootstrapped.add(pool)


async def _ensure_agent(
    store: TenantStore, *, tenant_id: str, email: str, name: str, password: str,
    demo: bool = False,
) -> None:
    try:
        await store.create_agent(tenant_id=tenant_id, email=email, name=name,
                                 password=password, role="admin", demo=demo)
        logger.info("bootstrap: created administrator", extra={"tenant": tenant_id})
    except Conflict:
        pass
