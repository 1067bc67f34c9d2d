"""CrmClient against the sample CRM in process (httpx ASGITransport; no network)."""

from __future__ import annotations

import httpx
import pytest

from kefu_memory import CrmClient, CrmError, CrmNotFound, crm_source
from kefu_memory.sample_crm import create_app


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts requests before handing them to the sample CRM."""

    def __init__(self, token: str = "secret") -> None:
        self.inner = httpx.ASGITransport(app=create_app(token=token))
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


async def test_profile_follows_the_contract_and_is_cached() -> None:
    # GIVEN a client of the sample CRM with a cache
    transport = CountingTransport()
    async with CrmClient("http://crm", token="secret", transport=transport) as crm:
        # WHEN the profile is fetched twice
        first = await crm.profile("c-1001")
        second = await crm.profile("c-1001")
    # THEN the customer, newest order first, and tickets come back; the second time from cache
    assert first.customer.name == "张伟"
    assert [o.id for o in first.orders] == ["SO20241120001", "SO20241002017"]
    assert first.tickets[0].status == "open"
    assert second == first
    assert sorted(transport.paths) == [
        "/customers/c-1001", "/customers/c-1001/orders", "/customers/c-1001/tickets"
    ]


async def test_cache_expires() -> None:
    # GIVEN a client without caching / WHEN asked twice / THEN the CRM is asked twice
    transport = CountingTransport()
    async with CrmClient("http://crm", token="secret", transport=transport, cache_ttl_s=0) as crm:
        await crm.get_customer("c-1002")
        await crm.get_customer("c-1002")
    assert transport.paths == ["/customers/c-1002", "/customers/c-1002"]


async def test_unknown_customer_and_wrong_token() -> None:
    # GIVEN the sample CRM
    async with CrmClient("http://crm", token="secret", transport=CountingTransport()) as crm:
        # WHEN asking for an unknown customer / THEN CrmNotFound
        with pytest.raises(CrmNotFound):
            await crm.get_customer("nobody")
    async with CrmClient("http://crm", token="wrong", transport=CountingTransport()) as crm:
        # WHEN the token is wrong / THEN CrmError (not found is not claimed)
        with pytest.raises(CrmError) as info:
            await crm.get_orders("c-1001")
        assert not isinstance(info.value, CrmNotFound)


async def test_contract_violations_and_transport_errors_become_crm_errors() -> None:
    # GIVEN a CRM answering the wrong shape, and one that cannot be reached
    def bad_shape(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"customer_name": "x"})

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler in (bad_shape, unreachable):
        async with CrmClient(
            "http://crm", token="t", transport=httpx.MockTransport(handler)
        ) as crm:
            with pytest.raises(CrmError):
                await crm.get_customer("c-1")


async def test_crm_source_renders_keyed_items() -> None:
    # GIVEN the sample CRM / WHEN used as a recall source
    async with CrmClient("http://crm", token="secret", transport=CountingTransport()) as crm:
        items = await crm_source(crm, "c-1001")()
    # THEN the customer, orders and tickets are keyed for de-duplication
    keys = [i.key for i in items]
    assert keys == ["customer", "order:SO20241120001", "order:SO20241002017", "ticket:T-5001"]
    assert "SF1234567890" in items[1].text
