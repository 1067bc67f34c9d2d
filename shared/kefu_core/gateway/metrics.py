"""The gateway's product metrics in Prometheus format, served at ``/metrics``.

The same figures as the EMF metrics on Lambda (:mod:`kefu_core.infra.metrics`), counted in this
process: with several workers or replicas each serves its own (scrape every one; Prometheus
sums them). Labels are fixed words chosen by the code (never a tenant, visitor or text).

Who may read them: with ``METRICS_TOKEN`` set, a caller presenting it as a bearer token (from
anywhere); without it, loopback callers only, and only when loopback is trusted
(``GATEWAY_TRUST_LOOPBACK``, by default outside production) and the request was not forwarded
by a proxy. Anyone else gets 404, as for a route that does not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kefu_core.infra.metrics import label
from kefu_core.infra.settings import Settings

__all__ = ["PrometheusMetrics", "metrics_endpoint"]

# First-token latency buckets, seconds: from a cached answer to a slow model.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)
_FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")


class PrometheusMetrics:
    """:class:`kefu_core.infra.metrics.Metrics` counted in a registry of this process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._replies = Counter("kefu_replies", "Replies finished, by status",
                                ["status"], registry=r)
        self._first_token = Histogram(
            "kefu_first_token_latency_seconds",
            "From the visitor's message being stored to the first delta sent",
            buckets=_LATENCY_BUCKETS, registry=r)
        self._fallbacks = Counter("kefu_fallbacks", "Replies answered by a fallback engine",
                                  registry=r)
        self._breaker_opens = Counter("kefu_breaker_opens", "Circuit breakers opened",
                                      ["level"], registry=r)
        self._handoffs = Counter("kefu_handoffs", "Conversations moved to the agents' queue",
                                 ["reason"], registry=r)
        self._resends = Counter("kefu_resends",
                                "Messages received again (client_msg_id already stored)",
                                registry=r)
        self._errors = Counter("kefu_errors", "Errors reported to clients or failed replies",
                               ["code"], registry=r)

    def reply_finished(self, *, status: str, first_token_ms: float | None,
                       fallback_used: bool) -> None:
        self._replies.labels(status=label(status)).inc()
        if first_token_ms is not None:
            self._first_token.observe(max(first_token_ms, 0.0) / 1000)
        if fallback_used:
            self._fallbacks.inc()

    def breaker_opened(self, *, level: str) -> None:
        self._breaker_opens.labels(level=label(level)).inc()

    def handoff(self, *, reason: str) -> None:
        self._handoffs.labels(reason=label(reason)).inc()

    def resend(self) -> None:
        self._resends.inc()

    def error(self, *, code: str) -> None:
        self._errors.labels(code=label(code)).inc()

    def flush(self) -> None:
        return None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def may_read(request: Request, settings: Settings) -> bool:
    token = (settings.metrics_token or "").strip()
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode())
    if not settings.trusts_loopback or any(h in request.headers for h in _FORWARDED):
        return False
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1") or host.startswith("127.")


def metrics_endpoint(
    metrics: PrometheusMetrics, settings: Settings
) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` handler."""

    async def endpoint(request: Request) -> Response:
        if not may_read(request, settings):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    return endpoint
