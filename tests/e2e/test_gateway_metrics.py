"""The self-hosted gateway serves its product metrics at ``/metrics`` in Prometheus format,
to whoever holds ``METRICS_TOKEN`` (or, without one, to trusted loopback callers only).

The gateway runs as production does; its engine refuses the configured key (401), so the
reply falls back to the offline engine and the key's breaker opens.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from kefu_core.gateway import create_gateway_app
from kefu_core.infra.errors import ConfigError
from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import production_gateway, production_settings

METRICS_TOKEN = "metrics-token-0123456789abcdef0123"
TENANT = f"metrics-tenant-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str) -> Iterator[RunningGateway]:
    mp = pytest.MonkeyPatch()
    with FakeOpenAI(valid_keys={"sk-valid"}, first_token_ms=1) as provider:
        mp.setenv("ENGINES", json.dumps([{"name": "primary", "provider": "fakeai",
                                          "base_url": provider.base_url, "model": "m",
                                          "api_keys": ["sk-revoked"]}]))
        try:
            with production_gateway(dsn=make_database(), redis_url=redis_url,
                                    name=f"metrics-{uuid.uuid4().hex[:6]}",
                                    metrics_token=METRICS_TOKEN,
                                    outbound_allow_private=True) as running:
                yield running
        finally:
            mp.undo()


def scrape(gw: RunningGateway, **headers: str) -> httpx.Response:
    return httpx.get(f"{gw.http}/metrics", headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def until(ws: Any, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


async def test_a_conversation_moves_the_counters_served_at_metrics(
    gateway: RunningGateway,
) -> None:
    visitor = f"v-{uuid.uuid4().hex}"
    token = issue_token(secrets=[SECRET], tenant_id=TENANT, subject=visitor, role="visitor",
                        ttl_s=600)
    async with websockets.connect(f"{gateway.ws}?token={token}", open_timeout=10) as ws:
        # GIVEN a visitor whose question is answered (by the fallback engine)
        message = {"action": "message", "client_msg_id": "c-metrics-1", "text": "怎么退货？"}
        await ws.send(json.dumps(message))
        await until(ws, "ack")
        final = await until(ws, "final")
        assert final["status"] == "complete" and final["fallback_used"] is True
        # AND who resends the same message, then asks for a human
        await ws.send(json.dumps(message))
        assert (await until(ws, "ack"))["duplicate"] is True
        await ws.send(json.dumps({"action": "handoff"}))
        await until(ws, "state")
        # AND sends a frame of no known action
        await ws.send(json.dumps({"action": "dance"}))
        await until(ws, "error")
    # WHEN the metrics are scraped over HTTP with the token
    response = scrape(gateway, authorization=f"Bearer {METRICS_TOKEN}")
    # THEN they count the reply, its first-token latency, the fallback, the breaker that
    # opened, the resend, the handoff and the error
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    assert got[("kefu_replies_total", (("status", "complete"),))] == 1
    assert got[("kefu_first_token_latency_seconds_count", ())] == 1
    assert got[("kefu_first_token_latency_seconds_sum", ())] > 0
    assert got[("kefu_fallbacks_total", ())] == 1
    assert got[("kefu_breaker_opens_total", (("level", "key"),))] == 1
    assert got[("kefu_resends_total", ())] == 1
    assert got[("kefu_handoffs_total", (("reason", "button"),))] == 1
    assert got[("kefu_errors_total", (("code", "unknown_action"),))] == 1
    # AND nothing names the tenant, the visitor or what they wrote
    assert TENANT not in response.text and visitor not in response.text
    assert "退货" not in response.text


@pytest.mark.parametrize("headers", [
    {},
    {"authorization": "Bearer wrong-token-0123456789abcdef"},
    {"authorization": METRICS_TOKEN},
    {"authorization": f"Basic {METRICS_TOKEN}"},
])
def test_metrics_need_the_token(gateway: RunningGateway, headers: dict[str, str]) -> None:
    # WHEN /metrics is asked without the bearer token, even from loopback
    response = scrape(gateway, **headers)
    # THEN it answers as a route that does not exist
    assert response.status_code == 404
    assert "kefu_" not in response.text


def test_without_a_token_production_serves_metrics_to_nobody(
    make_database: Callable[[], str], redis_url: str,
) -> None:
    # GIVEN a production gateway without METRICS_TOKEN (loopback not trusted)
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"metrics-closed-{uuid.uuid4().hex[:6]}") as running:
        # WHEN a loopback caller asks for the metrics
        # THEN it gets 404
        assert scrape(running).status_code == 404


def test_trusted_loopback_reads_metrics_but_not_through_a_proxy(
    make_database: Callable[[], str], redis_url: str,
) -> None:
    # GIVEN a gateway whose operator says nothing on the host forwards to it
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"metrics-loopback-{uuid.uuid4().hex[:6]}",
                            gateway_trust_loopback=True) as running:
        # WHEN a loopback caller scrapes, THEN it reads the metrics
        direct = scrape(running)
        assert direct.status_code == 200 and "kefu_replies_total" in direct.text
        # WHEN the request was forwarded by a proxy, THEN it is refused
        assert scrape(running, **{"x-forwarded-for": "203.0.113.9"}).status_code == 404
        assert scrape(running, forwarded="for=203.0.113.9").status_code == 404


def test_a_short_metrics_token_is_refused_at_start(redis_url: str) -> None:
    # GIVEN a METRICS_TOKEN anyone could guess
    settings = production_settings(dsn="postgresql://unused/db", redis_url=redis_url,
                                   redis_prefix="kefu-test:unused:", metrics_token="short")
    # WHEN the gateway is built, THEN it refuses to start
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        create_gateway_app(settings)
