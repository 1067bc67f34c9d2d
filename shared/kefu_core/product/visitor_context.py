"""Where a visitor is while they chat: the page (address and title), where they came from, their
language and time zone (sent by the widget in a ``context`` frame), the browser (from the
handshake's User-Agent) and a coarse location (a country code, when a CDN header gives one).

The agent console shows it beside the conversation. A connection may send its context before
its visitor has a conversation (conversations start with the first message): it waits in Redis
under ``ctx:{connection_id}`` (expiring with the connection) and is written to the conversation
(table ``visitor_contexts``) when one exists. Every value comes from the visitor's browser and
is shown as text: the page title in particular is whatever the page says.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from kefu_core.infra.errors import StoreError

__all__ = ["VisitorContext", "VisitorContexts", "browser_name", "clean_url", "country_from"]

MAX_URL = 2000
MAX_UA = 512
# Headers a CDN in front of the deployment sets (CloudFront, Cloudflare); anything else is not
# trusted for a location.
COUNTRY_HEADERS = ("cloudfront-viewer-country", "cf-ipcountry")


class VisitorContext(BaseModel):
    url: str = Field(default="", max_length=MAX_URL)
    title: str = Field(default="", max_length=300)
    referrer: str = Field(default="", max_length=MAX_URL)
    language: str = Field(default="", max_length=35)
    time_zone: str = Field(default="", max_length=64)
    browser: str = Field(default="", max_length=80)
    country: str = Field(default="", max_length=2)


def clean_url(raw: str) -> str:
    """An http(s) address without credentials or fragment; anything else is dropped."""
    try:
        parts = urlsplit(raw.strip()[:MAX_URL])
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("SamsungBrowser/", "Samsung Internet"),
             ("MicroMessenger/", "WeChat"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("CriOS/", "Chrome"), ("Version/", "Safari"))
_SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def browser_name(user_agent: str | None) -> str:
    """'Chrome 131 · macOS' from a User-Agent header; '' when nothing is recognised."""
    ua = (user_agent or "")[:MAX_UA]
    name = ""
    for token, label in _BROWSERS:
        found = re.search(re.escape(token) + r"(\d+)", ua)
        if found:
            name = f"{label} {found.group(1)}"
            break
    system = next((label for token, label in _SYSTEMS if token in ua), "")
    return " · ".join(part for part in (name, system) if part)


def country_from(headers: dict[str, str] | None) -> str:
    for key, value in (headers or {}).items():
        if key.lower() in COUNTRY_HEADERS and re.fullmatch(r"[A-Za-z]{2}", value or ""):
            return value.upper()
    return ""


class VisitorContexts:
    """Contexts waiting for a conversation (Redis) and those of conversations (PostgreSQL)."""

    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis, *, prefix: str,
                 ttl_s: int) -> None:
        self._pool, self._redis, self._prefix, self._ttl = pool, redis, prefix, ttl_s

    def _pending(self, connection_id: str) -> str:
        return f"{self._prefix}ctx:{connection_id}"

    async def hold(self, connection_id: str, context: VisitorContext) -> None:
        try:
            await self._redis.set(self._pending(connection_id), context.model_dump_json(),
                                  ex=self._ttl)
        except RedisError as exc:
            raise StoreError("cannot keep the visitor context") from exc

    async def take(self, connection_id: str) -> VisitorContext | None:
        """The context a connection sent before it had a conversation (removed)."""
        try:
            raw = await self._redis.getdel(self._pending(connection_id))
        except RedisError as exc:
            raise StoreError("cannot read the visitor context") from exc
        return VisitorContext.model_validate_json(raw) if raw else None

    async def save(self, *, tenant_id: str, conversation_id: str,
                   context: VisitorContext) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO visitor_contexts (conversation_id, tenant_id, context)"
                    " VALUES (%s, %s, %s) ON CONFLICT (conversation_id) DO UPDATE"
                    " SET context = EXCLUDED.context, updated_at = now()",
                    (conversation_id, tenant_id, context.model_dump_json()))
        except psycopg.Error as exc:
            raise StoreError("cannot store the visitor context") from exc

    async def get(self, *, tenant_id: str, conversation_id: str) -> VisitorContext | None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "SELECT context FROM visitor_contexts WHERE conversation_id = %s"
                    " AND tenant_id = %s", (conversation_id, tenant_id))
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StoreError("cannot read the visitor context") from exc
        return VisitorContext.model_validate(row["context"]) if row else None
