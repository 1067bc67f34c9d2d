"""The gateway's Starlette application: WebSocket endpoint, management API, web files, admin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from kefu_core.admin import create_admin_app
from kefu_core.admin.app import body_limits
from kefu_core.chat.images import ImageService
from kefu_core.chat.protocol import encode, error_frame_for
from kefu_core.chat.transport import TaskInvoker
from kefu_core.deps import Deps, build_deps, redis_client
from kefu_core.flows import handle_stream
from kefu_core.flows.personal_data import RetentionScheduler
from kefu_core.gateway.events import (
    EventSource,
    connect_event,
    disconnect_event,
    message_event,
    new_connection_id,
    route_for,
)
from kefu_core.gateway.gc_policy import tune_for_serving
from kefu_core.gateway.hub import Hub, LocalConnection
from kefu_core.gateway.images import image_body_limit, image_routes
from kefu_core.gateway.integration import FlowIntegration, Integration
from kefu_core.gateway.limits import FloodGuard
from kefu_core.gateway.metrics import PrometheusMetrics, metrics_endpoint
from kefu_core.gateway.sigv4 import verify_sigv4
from kefu_core.infra.errors import (
    BadFrame,
    ConfigError,
    Forbidden,
    GoneError,
    KefuError,
    RateLimited,
    StoreError,
    TransportError,
    Unavailable,
    reason_phrase,
)
from kefu_core.infra.settings import Settings
from kefu_core.security.http_limits import KIB, BodyLimit, BodyLimitMiddleware
from kefu_core.security.keyring import KeyringUnavailable, keyring_for

__all__ = ["Gateway", "check_gateway_config", "create_gateway_app", "websocket_routes"]

logger = logging.getLogger("kefu.gateway")
ROUTES = frozenset({"message"})
API_ID = "kefu-local"
MANAGEMENT_MAX_BODY_BYTES = 128 * KIB  # API Gateway's limit for a posted message


def _web_dir(settings: Settings) -> Path | None:
    if settings.web_dir:
        return Path(settings.web_dir)
    candidate = Path(__file__).resolve().parents[3] / "web"
    return candidate if candidate.is_dir() else None


class Gateway:
    """State of one gateway replica.

    Without an ``integration`` it builds its dependencies and calls the flows in this process
    (``kefu run``); the local stack passes one that invokes the built Lambda functions.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        replica_id: str | None = None,
        integration: Integration | None = None,
        routes: frozenset[str] = ROUTES,
        api_id: str = API_ID,
        tune_gc: bool = False,
    ) -> None:
        self.settings = settings
        self.tune_gc = tune_gc
        self.replica_id = replica_id or uuid.uuid4().hex[:8]
        self.integration = integration
        self.routes = routes
        self.api_id = api_id
        self.deps: Deps | None = None
        self.hub: Hub | None = None
        self.invoker: TaskInvoker | None = None
        self.guard = FloodGuard()
        self.pending_connects = 0
        self.disconnects = asyncio.Semaphore(64)
        self.metrics = PrometheusMetrics()
        self.retention: RetentionScheduler | None = None

    async def start(self) -> None:
        assert self.settings.redis_url
        redis = redis_client(self.settings)
        hub = Hub(redis, prefix=self.settings.redis_prefix, replica_id=self.replica_id,
                  ttl_s=self.settings.connection_ttl_s)
        if self.integration is not None:
            self.hub = hub
            await hub.start()
            logger.info("gateway replica %s ready", self.replica_id)
            return
        invoker = TaskInvoker(self._stream)
        self.deps = await build_deps(self.settings, poster=hub, invoker=invoker,
                                     ingress_pool_max=self.settings.db_ingress_pool_max)
        self.deps.metrics = self.metrics
        self.integration = FlowIntegration(self.deps)
        self.hub, self.invoker = hub, invoker
        await hub.start()
        # tiktoken builds its encoding, and the engines import the OpenAI SDK, on first use:
        # seconds that, on the first reply, stalled the event loop and every connection with
        # it (measured with the loop's slow-callback debug and a loop-lag sampler). Done
        # here, off the loop, before the replica serves.
        await asyncio.to_thread(_warm_up_adapter)
        memory = await self.deps.load_memory()
        if memory is not None:
            await memory.warm_up()
        if self.settings.knowledge_dir and memory is not None:
            count = await memory.ingest_folder(
                tenant_id=self.settings.knowledge_tenant, path=Path(self.settings.knowledge_dir))
            logger.info("knowledge folder %s: %d documents for tenant %s",
                        self.settings.knowledge_dir, count, self.settings.knowledge_tenant)
        # Retention runs on one replica per period (claimed in Redis): RETENTION_INTERVAL_S.
        self.retention = RetentionScheduler(self.deps)
        self.retention.start()
        if self.tune_gc:  # a serving process (`kefu run`), not an app inside tests
            tune_for_serving()
        logger.info("gateway replica %s ready", self.replica_id)

    async def stop(self) -> None:
        if self.retention:
            await self.retention.stop()
        if self.invoker:
            await self.invoker.drain(within_s=10)
        if self.hub:
            for connection_id in list(self.hub.local):
                await self._disconnect(connection_id, 1001, "Going away")
            await self.hub.stop()
        if self.deps:
            await self.deps.aclose()

    async def _stream(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.deps is not None
        return await handle_stream(payload, self.deps)

    # -- WebSocket ---------------------------------------------------------------------------
    async def websocket(self, websocket: WebSocket) -> None:
        assert self.integration is not None and self.hub is not None
        settings = self.settings
        source_ip = websocket.client.host if websocket.client else "0.0.0.0"
        if not self.guard.allow_connect(source_ip):
            await websocket.send_denial_response(_denial(RateLimited))
            return
        if self.pending_connects >= settings.gateway_max_pending_connects:
            await websocket.send_denial_response(_denial(Unavailable, headers={"Retry-After": "1"}))
            return
        connection_id = new_connection_id()
        connected_at = time.time()
        connected_ms = int(connected_at * 1000)
        headers = {k.title() if k != "user-agent" else k: v for k, v in websocket.headers.items()}
        user_agent = websocket.headers.get("user-agent")
        domain = websocket.headers.get("host", f"{settings.gateway_host}:{settings.gateway_port}")
        source = EventSource(connection_id=connection_id, connected_at_ms=connected_ms,
                             domain_name=domain, stage=settings.gateway_stage,
                             source_ip=source_ip, api_id=self.api_id, user_agent=user_agent)
        query = parse_qs(websocket.url.query, keep_blank_values=True)
        self.pending_connects += 1
        try:
            result = await self.integration.connect(
                connect_event(source, headers=headers, query=query),
            )
        finally:
            self.pending_connects -= 1
        status = int(result.get("statusCode", 500))
        if status != 200:
            await websocket.send_denial_response(
                Response(result.get("body", ""), status_code=status)
            )
            return
        await websocket.accept()
        conn = LocalConnection(connection_id=connection_id, websocket=websocket,
                               connected_at=connected_at, source_ip=source_ip,
                               user_agent=user_agent)
        await self.hub.register(conn)
        close_code, reason = 1000, "Client closed"
        try:
            close_code, reason = await self._receive_loop(conn, source)
        finally:
            await self._disconnect(connection_id, close_code, reason, source=source)

    async def _receive_loop(
        self, conn: LocalConnection, source: EventSource
    ) -> tuple[int, str]:
        assert self.integration is not None and self.hub is not None
        settings = self.settings
        ws = conn.websocket
        deadline = conn.connected_at + settings.gateway_max_lifetime_s
        while True:
            timeout = min(settings.gateway_idle_timeout_s, max(0.0, deadline - time.time()))
            try:
                message = await asyncio.wait_for(ws.receive(), timeout)
            except TimeoutError:
                reason = "Going away" if time.time() >= deadline else "Idle timeout"
                with contextlib.suppress(Exception):
                    await ws.close(code=1001, reason=reason)
                return 1001, reason
            except WebSocketDisconnect as exc:
                return exc.code, "Client closed"
            if message["type"] == "websocket.disconnect":
                return int(message.get("code", 1005)), "Client closed"
            conn.last_active_at = time.time()
            body = message.get("text")
            if body is None:
                try:
                    body = (message.get("bytes") or b"").decode("utf-8")
                except UnicodeDecodeError:
                    await self.hub.post(conn.connection_id, encode(error_frame_for(
                        BadFrame("bad_encoding", "frames must be UTF-8 text"))))
                    continue
            if not self.guard.allow_message(conn.connection_id):
                await self.hub.post(conn.connection_id, encode(error_frame_for(RateLimited)))
                continue
            event = message_event(source, route_key=route_for(body, routes=self.routes),
                                  body=body)
            try:
                await self.integration.message(event)
            except Exception:  # a flow bug must not kill the connection
                logger.exception("message flow crashed")
                await self.hub.post(conn.connection_id, encode(error_frame_for(KefuError)))

    async def _disconnect(
        self,
        connection_id: str,
        code: int,
        reason: str,
        *,
        source: EventSource | None = None,
    ) -> None:
        assert self.integration is not None and self.hub is not None
        conn = self.hub.local.get(connection_id)
        await self.hub.unregister(connection_id)
        self.guard.forget(connection_id)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.websocket.close(code=1001)
        if source is None and conn is not None:
            source = EventSource(
                connection_id=connection_id, connected_at_ms=int(conn.connected_at * 1000),
                domain_name=f"{self.settings.gateway_host}:{self.settings.gateway_port}",
                stage=self.settings.gateway_stage, source_ip=conn.source_ip,
                api_id=self.api_id)
        if source is not None:
            # Thousands of clients can leave at once (a network blip, a deploy): the cleanups
            # queue here instead of exhausting the store pools all together.
            async with self.disconnects:
                try:
                    await self.integration.disconnect(disconnect_event(
                        source, status_code=code, reason=reason))
                except Exception:
                    logger.warning("disconnect flow failed", exc_info=True)

    # -- management API ------------------------------------------------------------------------
    async def authorised(self, request: Request) -> bool:
        """SigV4 with a configured key; without keys, loopback clients only, and only when
        loopback is trusted (see ``Settings.trusts_loopback``)."""
        keys = self.settings.management_keys()
        if not keys:
            if not self.settings.trusts_loopback:
                return False
            host = request.client.host if request.client else ""
            return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = f"?{request.url.query}" if request.url.query else ""
        url = f"{request.url.scheme}://{request.headers.get('host', '')}{raw_path.decode()}{query}"
        return verify_sigv4(method=request.method, url=url, headers=request.headers,
                            body=await request.body(), keys=keys)

    async def post_to_connection(self, request: Request) -> Response:
        assert self.hub is not None
        if not await self.authorised(request):
            return _aws_error(Forbidden)
        connection_id = request.path_params["connection_id"]
        data = await request.body()  # at most 128 KB: BodyLimitMiddleware refuses more
        try:
            await self.hub.post(connection_id, data.decode("utf-8", errors="replace"))
        except GoneError:
            return _aws_error(GoneError)
        except TransportError:
            return _aws_error(TransportError)
        return Response(status_code=200)

    async def get_connection(self, request: Request) -> Response:
        assert self.hub is not None
        if not await self.authorised(request):
            return _aws_error(Forbidden)
        connection_id = request.path_params["connection_id"]
        conn = self.hub.local.get(connection_id)
        if conn is not None:
            return JSONResponse({
                "connectedAt": _iso(conn.connected_at),
                "lastActiveAt": _iso(conn.last_active_at),
                "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent or ""},
            })
        record = await self.deps.connections.get(connection_id) if self.deps else None
        if record is None or await self.hub.owner(connection_id) is None:
            return _aws_error(GoneError)
        return JSONResponse({
            "connectedAt": _iso(record.connected_at),
            "lastActiveAt": _iso(record.connected_at),
            "identity": {"sourceIp": record.source_ip or "", "userAgent": ""},
        })

    async def delete_connection(self, request: Request) -> Response:
        assert self.hub is not None
        if not await self.authorised(request):
            return _aws_error(Forbidden)
        connection_id = request.path_params["connection_id"]
        if await self.hub.owner(connection_id) is None:
            return _aws_error(GoneError)
        await self.hub.close(connection_id)
        return Response(status_code=204)


def _warm_up_adapter() -> None:
    from kefu_llm import encoding_for, preload_sdk

    encoding_for(None)
    preload_sdk()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _aws_error(error: type[KefuError]) -> Response:
    """The management API's answer to an error, worded as API Gateway words it."""
    return JSONResponse({"message": error.aws_message}, status_code=error.status,
                        headers={"x-amzn-ErrorType": error.aws_type})


def _denial(error: type[KefuError], headers: dict[str, str] | None = None) -> Response:
    """A refused handshake: the status and its reason phrase, as API Gateway answers."""
    return Response(reason_phrase(error), status_code=error.status, headers=headers)


def check_gateway_config(settings: Settings) -> None:
    """Refuse to start (``ConfigError``, saying why) a gateway that could not serve safely:
    no usable token secret, or an unprotected management API in production."""
    problem = settings.gateway_problem()
    if problem:
        raise ConfigError(problem)
    try:
        keyring_for(settings).keys()
    except KeyringUnavailable as exc:
        raise ConfigError(f"no usable token secret: {exc}") from exc


def _body_limits(settings: Settings) -> dict[str, Any]:
    """Every HTTP route of the gateway: the management API at API Gateway's limit, the rest at
    the admin API's largest (the admin app then applies its own, per route)."""
    admin = body_limits(settings)
    largest = max([admin["default_max_bytes"], *(rule.max_bytes for rule in admin["limits"])])
    stage = re.escape(settings.gateway_stage)
    return {"default_max_bytes": largest, "limits": [
        image_body_limit(settings.image_max_bytes),
        BodyLimit(path=f"(/{stage})?/@connections/.*", max_bytes=MANAGEMENT_MAX_BODY_BYTES,
                  error="aws"),
    ]}


def websocket_routes(gateway: Gateway) -> list[Any]:
    """The WebSocket endpoint (``/{stage}``, and ``/ws``) and the management API
    (``/@connections/{id}`` and ``/{stage}/@connections/{id}``) of a gateway."""
    stage = gateway.settings.gateway_stage
    management = [
        Route("/@connections/{connection_id}", gateway.post_to_connection, methods=["POST"]),
        Route("/@connections/{connection_id}", gateway.get_connection, methods=["GET"]),
        Route("/@connections/{connection_id}", gateway.delete_connection, methods=["DELETE"]),
    ]
    return [
        WebSocketRoute("/ws", gateway.websocket),
        WebSocketRoute(f"/{stage}", gateway.websocket),
        *management,
        Mount(f"/{stage}", routes=list(management)),
    ]


def create_gateway_app(
    settings: Settings, *, replica_id: str | None = None, tune_gc: bool = False,
) -> Starlette:
    """Build one gateway replica. ``DATABASE_URL`` and ``REDIS_URL`` must be resolved.
    Raises ``ConfigError`` when the configuration cannot be served (see
    :func:`check_gateway_config`). ``tune_gc``: the process serves this app alone, so the
    garbage collector is set for serving once it is ready (:mod:`.gc_policy`)."""
    check_gateway_config(settings)
    gateway = Gateway(settings, replica_id=replica_id, tune_gc=tune_gc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes: list[Any] = websocket_routes(gateway)
    routes.append(Route("/metrics", metrics_endpoint(gateway.metrics, settings),
                        methods=["GET"]))
    web = _web_dir(settings)
    if web is not None:
        demo = web / "demo.html"
        routes.append(Route("/", lambda request: FileResponse(demo) if demo.exists()
                            else RedirectResponse("/docs")))
        console = web / "console.html"
        routes.append(Route("/console", lambda request: FileResponse(console)))
        admin = web / "admin.html"
        routes.append(Route("/admin", lambda request: FileResponse(admin)))
        routes.append(Mount("/web", app=StaticFiles(directory=web)))

    async def gateway_deps() -> Deps:
        if gateway.deps is None:
            raise StoreError("the gateway is starting")
        return gateway.deps

    async def gateway_images() -> ImageService:
        return (await gateway_deps()).images

    routes.extend(image_routes(gateway_images))
    routes.append(Mount("/", app=create_admin_app(settings, deps_provider=gateway_deps)))
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(BodyLimitMiddleware, **_body_limits(settings))])
    app.state.gateway = gateway
    return app
