"""Visitor tokens are rate-limited per source address and per widget key, in Redis, so the
limit holds across gateway replicas (and Lambda containers); beyond it: 429 with Retry-After.

Source addresses are given as ``X-Forwarded-For`` by a client on loopback, which uvicorn
trusts by default: that is how a reverse proxy on the same host passes the visitor's address.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.gateway import RunningGateway, redis_prefix_removed
from tests.support.prod_gateway import production_gateway

PER_ADDRESS = 5
PER_KEY = 12
WINDOW_S = 60


@pytest.fixture(scope="module")
def replicas(make_database: Callable[[], str],
             redis_url: str) -> Iterator[tuple[RunningGateway, RunningGateway]]:
    """Two replicas of one deployment: one database, one Redis prefix."""
    dsn = make_database()
    prefix = f"kefu-test:vt-limits:{uuid.uuid4().hex[:8]}:"
    limits = {"visitor_token_rate_per_address": PER_ADDRESS,
              "visitor_token_rate_per_key": PER_KEY,
              "visitor_token_rate_window_s": WINDOW_S,
              "widget_keys": ["demo-key:demo", "other-key:other", "third-key:third",
                             "ipv6-key:ipv6"]}
    with redis_prefix_removed(redis_url, prefix), \
            production_gateway(dsn=dsn, redis_url=redis_url, name="vt-a", prefix=prefix,
                               **limits) as a, \
            production_gateway(dsn=dsn, redis_url=redis_url, name="vt-b", prefix=prefix,
                               **limits) as b:
        yield a, b


def _mint(gateway: RunningGateway, key: str, address: str) -> httpx.Response:
    return httpx.post(f"{gateway.http}/v1/visitor-token", json={"widget_key": key},
                      headers={"x-forwarded-for": address}, timeout=30)


def test_one_address_gets_a_few_tokens_per_window_across_replicas(
    replicas: tuple[RunningGateway, RunningGateway],
) -> None:
    a, b = replicas
    # GIVEN one address asking both replicas in turn, with any widget keys
    answers = [_mint(a if i % 2 else b, "demo-key" if i % 3 else "other-key", "198.51.100.7")
               for i in range(PER_ADDRESS)]
    assert [r.status_code for r in answers] == [200] * PER_ADDRESS
    # WHEN it asks once more, on either replica
    for gateway in (a, b):
        refused = _mint(gateway, "demo-key", "198.51.100.7")
        # THEN it is told to wait until the window ends
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= WINDOW_S
    # AND an unknown widget key costs the address its budget too (no free probing)
    assert _mint(a, "no-such-key", "198.51.100.7").status_code == 429
    # AND another address is not affected
    assert _mint(a, "demo-key", "198.51.100.8").status_code == 200


def test_an_ipv6_network_counts_as_one_address(
    replicas: tuple[RunningGateway, RunningGateway],
) -> None:
    a, _ = replicas
    # GIVEN a client rotating through the addresses of its IPv6 /64 (it has 2^64 of them)
    statuses = [_mint(a, "ipv6-key", f"2001:db8:7:1::{i + 1:x}").status_code
                for i in range(PER_ADDRESS + 1)]
    # THEN they share one budget
    assert statuses == [200] * PER_ADDRESS + [429]
    # AND another /64 has its own
    assert _mint(a, "ipv6-key", "2001:db8:7:2::1").status_code == 200


def test_one_widget_key_gets_a_bounded_number_of_tokens_from_many_addresses(
    replicas: tuple[RunningGateway, RunningGateway],
) -> None:
    a, b = replicas
    # GIVEN many addresses (each within its own limit) using the same widget key
    statuses = [_mint(a if i % 2 else b, "third-key", f"203.0.113.{i}").status_code
                for i in range(PER_KEY + 3)]
    # THEN the key's budget is shared and then exhausted, on both replicas
    assert statuses == [200] * PER_KEY + [429] * 3
    # AND other widget keys still work
    assert _mint(a, "other-key", "203.0.113.200").status_code == 200


def test_the_limits_are_settings(make_database: Callable[[], str], redis_url: str) -> None:
    # GIVEN a deployment that turns the per-address limit off (0)
    with production_gateway(dsn=make_database(), redis_url=redis_url, name="vt-off",
                            visitor_token_rate_per_address=0,
                            visitor_token_rate_per_key=0) as gateway:
        # THEN one address gets more tokens than the default limit (30 per minute)
        statuses = {_mint(gateway, "demo-key", "192.0.2.1").status_code for _ in range(35)}
        assert statuses == {200}
