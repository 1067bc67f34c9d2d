"""Sign-in throttling: a password guesser is slowed down per (e-mail, source address) with
growing delays and per address overall, and can never lock the owner out from elsewhere.

Production configuration, the real admin app; each client comes from its own source address
(the ASGI client address, as the socket peer or API Gateway's sourceIp gives it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from kefu_core.security.login_throttle import ADDRESS_MAX_FAILURES, FREE_FAILURES, delay_after
from tests.support.production import AdminHarness, production_admin
from tests.support.staff import make_staff

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def dsn(make_database) -> str:  # type: ignore[no-untyped-def]
    """One database for the module (each test uses its own agents and Redis prefix)."""
    value: str = make_database()
    return value


@pytest.fixture
async def admin(dsn: str, redis_url: str) -> AsyncIterator[AdminHarness]:
    async with production_admin(pg_dsn=dsn, redis_url=redis_url) as harness:
        yield harness


def _login(tenant: str, email: str, password: str) -> dict[str, str]:
    return {"tenant": tenant, "email": email, "password": password}


async def _guess_until_throttled(http: httpx.AsyncClient, body: dict[str, str],
                                 limit: int = 20) -> tuple[list[int], list[int]]:
    """Guess, waiting out each delay, until the delay is at least 4 s; the answers and the
    Retry-After values seen."""
    codes: list[int] = []
    waits: list[int] = []
    for _ in range(limit):
        response = await http.post("/v1/agent/login", json=body)
        if response.status_code != 429:
            codes.append(response.status_code)
            continue
        waits.append(int(response.headers["retry-after"]))
        if waits[-1] >= 4:
            return codes, waits
        await asyncio.sleep(waits[-1])
    raise AssertionError(f"never throttled long enough: {codes} {waits}")


async def test_a_guesser_elsewhere_never_locks_the_owner_out(admin: AdminHarness) -> None:
    owner = await make_staff(admin.deps.pool, tenant_id="acme", password=PASSWORD)
    # GIVEN someone guessing the agent's password from their own address until throttled
    async with admin.client("203.0.113.66") as attacker:
        codes, waits = await _guess_until_throttled(
            attacker, _login("acme", owner.email, "wrong-guess"))
        # THEN the first few guesses are simply wrong, then each must wait longer (Retry-After)
        assert codes[:FREE_FAILURES] == [401] * FREE_FAILURES and set(codes) == {401}
        assert waits == sorted(waits) and waits[0] >= 1 and waits[-1] >= 4
        # AND while throttled even the right password is not tried from that address
        blocked = await attacker.post("/v1/agent/login",
                                      json=_login("acme", owner.email, PASSWORD))
        assert blocked.status_code == 429
        for _ in range(10):  # more guessing changes nothing for the owner
            await attacker.post("/v1/agent/login", json=_login("acme", owner.email, "again"))
    # WHEN the owner signs in from their own address
    async with admin.client("198.51.100.20") as own:
        response = await own.post("/v1/agent/login", json=_login("acme", owner.email, PASSWORD))
    # THEN they are in
    assert response.status_code == 200, response.text


async def test_one_address_cannot_guess_through_many_accounts(admin: AdminHarness) -> None:
    victim = await make_staff(admin.deps.pool, tenant_id="acme", password=PASSWORD)
    async with admin.client("203.0.113.77") as attacker:
        # GIVEN one address trying one password on many different accounts
        codes = []
        for _ in range(ADDRESS_MAX_FAILURES):
            email = f"guess-{uuid.uuid4().hex[:8]}@acme.test"
            codes.append((await attacker.post(
                "/v1/agent/login", json=_login("acme", email, "Winter2026!"))).status_code)
        assert set(codes) == {401}
        # WHEN it tries yet another account
        response = await attacker.post("/v1/agent/login",
                                       json=_login("acme", victim.email, "Winter2026!"))
        # THEN it must wait, for as long as the window lasts
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 60
    # AND the same account from another address is not affected
    async with admin.client("198.51.100.30") as own:
        ok = await own.post("/v1/agent/login", json=_login("acme", victim.email, PASSWORD))
    assert ok.status_code == 200


async def test_a_guesser_cannot_escape_by_claiming_other_addresses(
    admin: AdminHarness,
) -> None:
    agent = await make_staff(admin.deps.pool, tenant_id="acme", password=PASSWORD)
    # GIVEN a guesser who claims a new address in X-Forwarded-For on every attempt, and
    # another who rotates through the addresses of its IPv6 /64
    async with admin.client("192.0.2.9") as spoofer:
        spoofed = [(await spoofer.post(
            "/v1/agent/login", json=_login("acme", agent.email, "nope"),
            headers={"x-forwarded-for": f"10.9.{i}.{i + 1}"})).status_code for i in range(12)]
    rotated = []
    for i in range(12):
        async with admin.client(f"2001:db8:1:2::{i + 1:x}") as v6:
            rotated.append((await v6.post(
                "/v1/agent/login", json=_login("acme", agent.email, "nope"))).status_code)
    # THEN both are throttled as the one client they are
    assert 429 in spoofed and 429 in rotated, (spoofed, rotated)


def test_delays_grow_and_are_capped() -> None:
    delays = [delay_after(n) for n in range(1, 30)]
    assert delays[:FREE_FAILURES] == [0] * FREE_FAILURES
    assert delays[FREE_FAILURES:FREE_FAILURES + 4] == [1, 2, 4, 8]
    assert delays == sorted(delays) and max(delays) == 900
