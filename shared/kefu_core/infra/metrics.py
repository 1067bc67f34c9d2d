"""Product metrics: one seam, two exporters.

Flows report what happened through :class:`Metrics` (``deps.metrics``): a finished reply, a
fallback, a breaker opening, a handoff, a resent message, an error sent to a client. On Lambda
:class:`EmfMetrics` writes CloudWatch Embedded Metric Format lines through Powertools, once per
invocation (``lambda_runtime``); the self-hosted gateway counts them in Prometheus
(:mod:`kefu_core.gateway.metrics`, served at ``/metrics``).

Rules, so that a metric costs nothing per token and leaks nothing:

- at most a few calls per message, never one per delta;
- labels and dimensions come from small fixed sets chosen by the code (a reply status, a
  handoff reason, an error code): never a tenant, visitor, conversation id or any text. A value
  outside ``[a-z0-9_]{1,40}`` is reported as ``other``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol

__all__ = ["NAMESPACE", "EmfMetrics", "Metrics", "NullMetrics", "label"]

NAMESPACE = "Kefu"
_LABEL = re.compile(r"[a-z0-9_]{1,40}")


def label(value: str | None) -> str:
    """A value safe to use as a label or dimension (a code-chosen word), else ``other``."""
    return value if value is not None and _LABEL.fullmatch(value) else "other"


class Metrics(Protocol):
    def reply_finished(self, *, status: str, first_token_ms: float | None,
                       fallback_used: bool) -> None:
        """A reply ended ``complete`` or ``incomplete``; ``first_token_ms`` from the visitor's
        message being stored to the first delta sent (None when nothing was streamed)."""

    def breaker_opened(self, *, level: str) -> None:
        """A circuit breaker (``provider`` or ``key``) opened."""

    def handoff(self, *, reason: str) -> None:
        """A conversation moved from the bot to the agents' queue."""

    def resend(self) -> None:
        """A message arrived again with a ``client_msg_id`` already stored."""

    def error(self, *, code: str) -> None:
        """An error was reported to a client (its frame's code) or a reply failed."""

    def flush(self) -> None:
        """Publish what was gathered (EMF: once per invocation; Prometheus: nothing to do)."""


class NullMetrics:
    """Metrics nobody reads (tests, tools)."""

    def reply_finished(self, *, status: str, first_token_ms: float | None,
                       fallback_used: bool) -> None:
        return None

    def breaker_opened(self, *, level: str) -> None:
        return None

    def handoff(self, *, reason: str) -> None:
        return None

    def resend(self) -> None:
        return None

    def error(self, *, code: str) -> None:
        return None

    def flush(self) -> None:
        return None


class EmfMetrics:
    """CloudWatch metrics in Embedded Metric Format, written to stdout by Powertools.

    Namespace ``Kefu``, dimension ``service`` (``POWERTOOLS_SERVICE_NAME``) on every metric;
    ``Replies`` also by ``Status``, ``Handoffs`` by ``Reason``, ``Errors`` by ``Code``. Events
    are gathered in memory and written by :meth:`flush` at the end of the invocation: one line
    for the service-level metrics, one per dimensioned count.
    """

    def __init__(self, *, service: str, namespace: str = NAMESPACE) -> None:
        from aws_lambda_powertools.metrics import Metrics as PowertoolsMetrics

        self._service = service
        self._namespace = namespace
        self._metrics = PowertoolsMetrics(namespace=namespace, service=service)
        self._plain: Counter[str] = Counter()
        self._latencies: list[float] = []
        self._by: Counter[tuple[str, str, str]] = Counter()

    def reply_finished(self, *, status: str, first_token_ms: float | None,
                       fallback_used: bool) -> None:
        self._by["Replies", "Status", label(status)] += 1
        if first_token_ms is not None:
            self._latencies.append(max(first_token_ms, 0.0))
        if fallback_used:
            self._plain["FallbacksUsed"] += 1

    def breaker_opened(self, *, level: str) -> None:
        self._plain["BreakerOpens"] += 1

    def handoff(self, *, reason: str) -> None:
        self._by["Handoffs", "Reason", label(reason)] += 1

    def resend(self) -> None:
        self._plain["Resends"] += 1

    def error(self, *, code: str) -> None:
        self._by["Errors", "Code", label(code)] += 1

    def flush(self) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        plain, latencies, by = self._plain, self._latencies, self._by
        self._plain, self._latencies, self._by = Counter(), [], Counter()
        if plain or latencies:
            for name, count in plain.items():
                self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
            for ms in latencies:
                self._metrics.add_metric(name="FirstTokenLatency", unit=MetricUnit.Milliseconds,
                                         value=round(ms, 1))
            self._metrics.flush_metrics()
        for (name, dimension, value), count in by.items():
            metric: Any
            with single_metric(name=name, unit=MetricUnit.Count, value=count,
                               namespace=self._namespace,
                               default_dimensions={"service": self._service}) as metric:
                metric.add_dimension(name=dimension, value=value)
