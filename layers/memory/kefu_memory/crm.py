"""Business memory: a client for the company's CRM behind a small HTTP JSON contract.

The contract (documented in docs/memory.md; `kefu_memory.sample_crm` implements it):

    GET {base}/customers/{id}                 -> Customer            (404 when unknown)
    GET {base}/customers/{id}/orders?limit=N  -> {"orders": [Order]} (newest first)
    GET {base}/customers/{id}/tickets?limit=N -> {"tickets": [Ticket]}
    Authorization: Bearer <token>             (401 when missing or wrong)

Responses are cached in-process for `cache_ttl_s` (CRM data may be a few seconds old in a
reply; it is never older than that). The httpx transport is injectable: the core passes one that
refuses private and metadata addresses (``kefu_llm.netguard``); redirects are not followed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from types import TracebackType
from typing import TypeVar
from urllib.parse import quote, urlsplit

import httpx
from cachetools import TTLCache
from pydantic import BaseModel, Field, ValidationError

from ._errors import CrmError, CrmNotFound

__all__ = ["CrmClient", "CrmCustomer", "CrmOrder", "CrmOrderItem", "CrmTicket", "CustomerProfile"]

logger = logging.getLogger("kefu.memory.crm")

M = TypeVar("M", bound=BaseModel)


class CrmCustomer(BaseModel):
    id: str
    name: str
    email: str | None = None
    phone: str | None = None
    tier: str | None = None
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None


class CrmOrderItem(BaseModel):
    sku: str
    name: str
    quantity: int = 1


class CrmOrder(BaseModel):
    id: str
    status: str
    total: float
    currency: str = "CNY"
    placed_at: datetime
    items: list[CrmOrderItem] = Field(default_factory=list)
    tracking_number: str | None = None
    shipping_address: str | None = None


class CrmTicket(BaseModel):
    id: str
    subject: str
    status: str
    created_at: datetime
    updated_at: datetime | None = None
    priority: str | None = None


class _Orders(BaseModel):
    orders: list[CrmOrder]


class _Tickets(BaseModel):
    tickets: list[CrmTicket]


class CustomerProfile(BaseModel):
    customer: CrmCustomer
    orders: list[CrmOrder]
    tickets: list[CrmTicket]


class CrmClient:
    """Async client of the CRM contract, with a short response cache."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        cache_ttl_s: float = 30.0,
        timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_cached: int = 2048,
    ) -> None:
        if urlsplit(base_url).scheme.lower() not in ("http", "https"):
            raise ValueError("the CRM URL must be an http:// or https:// URL")
        # No redirects: the CRM answers the contract itself (a redirect could take the bearer
        # token, or the request, somewhere the transport's address checks were not meant for).
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )
        # No cache at all with cache_ttl_s=0 (every read asks the CRM).
        self._cache: TTLCache[str, BaseModel] | None = (
            TTLCache(maxsize=max_cached, ttl=cache_ttl_s) if cache_ttl_s > 0 else None)

    async def __aenter__(self) -> CrmClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def clear_cache(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    def forget(self, customer_id: str) -> int:
        """Drop this process's cached answers about one customer (an erasure); the count.
        Other processes drop theirs within ``cache_ttl_s``."""
        if self._cache is None:
            return 0
        base = f"/customers/{quote(customer_id, safe='')}"
        stale = [path for path in self._cache
                 if path == base or path.startswith((base + "/", base + "?"))]
        for path in stale:
            self._cache.pop(path, None)
        return len(stale)

    async def _get(self, path: str, model: type[M]) -> M:
        cached = self._cache.get(path) if self._cache is not None else None
        if isinstance(cached, model):
            return cached
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise CrmError(f"CRM request failed: GET {path.split('?')[0]}") from exc
        if response.status_code == 404:
            raise CrmNotFound("the CRM does not know this customer")
        if response.status_code != 200:
            raise CrmError(f"CRM answered {response.status_code}")
        try:
            value = model.model_validate_json(response.content)
        except ValidationError as exc:
            raise CrmError("CRM response does not follow the contract") from exc
        if self._cache is not None:
            self._cache[path] = value
        return value

    async def get_customer(self, customer_id: str) -> CrmCustomer:
        return await self._get(f"/customers/{quote(customer_id, safe='')}", CrmCustomer)

    async def get_orders(self, customer_id: str, *, limit: int = 10) -> list[CrmOrder]:
        path = f"/customers/{quote(customer_id, safe='')}/orders?limit={limit}"
        return (await self._get(path, _Orders)).orders

    async def get_tickets(self, customer_id: str, *, limit: int = 10) -> list[CrmTicket]:
        path = f"/customers/{quote(customer_id, safe='')}/tickets?limit={limit}"
        return (await self._get(path, _Tickets)).tickets

    async def profile(
        self, customer_id: str, *, orders: int = 5, tickets: int = 5
    ) -> CustomerProfile:
        """Customer, recent orders and tickets, fetched concurrently."""
        customer, order_list, ticket_list = await asyncio.gather(
            self.get_customer(customer_id),
            self.get_orders(customer_id, limit=orders),
            self.get_tickets(customer_id, limit=tickets),
        )
        return CustomerProfile(customer=customer, orders=order_list, tickets=ticket_list)
