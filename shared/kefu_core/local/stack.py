"""The whole local stack: functions, fronts, moto, data stores; started and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from kefu_core.gateway.app import MANAGEMENT_MAX_BODY_BYTES, Gateway, websocket_routes
from kefu_core.infra.settings import Settings
from kefu_core.local.aws import MotoServer, create_secrets
from kefu_core.local.custom_resources import run_custom_resources
from kefu_core.local.errors import FunctionNotFound, LocalStackError
from kefu_core.local.functions import FailureHook, FunctionPool, LogSink, Result, print_log
from kefu_core.local.http_api import HttpApi
from kefu_core.local.lambda_api import create_lambda_api
from kefu_core.local.queues import SqsPoller, create_queues, destination_record, sqs_client
from kefu_core.local.runtime import Credentials, Runtime
from kefu_core.local.template import ACCOUNT_ID, FunctionSpec, StackContext, Template, api_id
from kefu_core.local.websocket import LambdaIntegration, websocket_api
from kefu_core.security.http_limits import BodyLimitMiddleware

__all__ = ["LocalOptions", "LocalStack", "run_local"]

logger = logging.getLogger("kefu.local")
# Ctrl-C, a service manager's stop, a closed terminal: each stops the stack in order.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class LocalOptions:
    build_dir: Path = Path(".aws-sam/build")
    host: str = "127.0.0.1"
    port: int = 3000  # WebSocket API and its management API
    admin_port: int = 3001  # the admin HTTP API
    lambda_port: int = 3002  # the Lambda Invoke API
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    env_vars: dict[str, dict[str, str]] = field(default_factory=dict)
    stack_name: str = "kefu-local"
    region: str = "us-east-1"
    max_workers: int = 2
    data_dir: Path = Path(".kefu/local")
    log_sink: LogSink = print_log
    # Function Timeout in seconds by logical id, replacing the template's (e.g. to watch a
    # timed-out stream reach its OnFailure queue).
    timeouts: dict[str, int] = field(default_factory=dict)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LocalStackError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(1024)
    sock.set_inheritable(False)
    return sock


class _ByPort:
    """One ASGI app per listening port."""

    def __init__(self, apps: Mapping[int, ASGIApp]) -> None:
        self._apps = dict(apps)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while True:
                kind = message["type"]
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
                message = await receive()
        server = scope.get("server") or (None, None)
        app = self._apps.get(int(server[1] or 0))
        if app is None:
            return
        await app(scope, receive, send)


class LocalStack:
    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.sockets: dict[str, socket.socket] = {}
        self.moto: MotoServer | None = None
        self.embedded: list[Any] = []
        self.pools: dict[str, FunctionPool] = {}
        self.gateway: Gateway | None = None
        self.template: Template | None = None
        self.urls: dict[str, str] = {}
        self.app: ASGIApp | None = None
        self.pollers: list[SqsPoller] = []

    def _url(self, name: str) -> str:
        host, port = self.sockets[name].getsockname()[:2]
        if host in ("0.0.0.0", "::"):  # all interfaces: the functions use loopback
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    async def start(self) -> None:
        opts = self.options
        template_path = opts.build_dir.resolve() / "template.yaml"
        if not template_path.is_file():
            raise LocalStackError(f"{template_path} not found: build first with `sam build` "
                                  "(scripts/sam-check), or pass --build")
        # Refuse bad parameters before anything starts (the services fill in the rest later).
        Template(template_path, context=StackContext(region=opts.region), overrides={
            "DatabaseUrl": "postgresql://pending", "RedisUrl": "redis://pending",
            "TokenSecretArn": f"arn:aws:secretsmanager:{opts.region}:{ACCOUNT_ID}:secret:pending",
            "WidgetKeys": "demo-key:demo", **opts.parameter_overrides})
        # --host exposes the two APIs clients use; the Lambda API and moto (which has no
        # authentication at all) only ever listen on loopback, where the functions run.
        for name, host, port in (("ws", opts.host, opts.port),
                                 ("admin", opts.host, opts.admin_port),
                                 ("lambda", "127.0.0.1", opts.lambda_port)):
            self.sockets[name] = _bind(host, port)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
        self.moto = MotoServer(host="127.0.0.1")
        moto_url = self.moto.start()
        secrets = await asyncio.to_thread(create_secrets, endpoint_url=moto_url,
                                          region=opts.region)
        parameters = dict(opts.parameter_overrides)
        parameters.setdefault("TokenSecretArn", secrets.token_secret_arn)
        parameters.setdefault("DataKeySecretArn", secrets.data_key_secret_arn)
        parameters.setdefault("WidgetKeys", "demo-key:demo")
        await asyncio.to_thread(self._data_stores, parameters)
        context = StackContext(stack_name=opts.stack_name, region=opts.region)
        template = self.template = Template(template_path, overrides=parameters, context=context,
                                            sqs_endpoint=moto_url)
        functions = [_with_timeout(spec, opts.timeouts) for spec in template.functions()]
        unknown = sorted(set(opts.timeouts) - {spec.logical_id for spec in functions})
        if unknown:
            raise LocalStackError(f"--function-timeout: no function {', '.join(unknown)}")
        sqs = sqs_client(moto_url, opts.region)
        queue_urls = await asyncio.to_thread(create_queues, sqs, template.queues())
        await asyncio.to_thread(_create_buckets, moto_url, opts.region, template.buckets())
        ws_api = websocket_api(template)
        admin = _http_api_function(template, functions)
        self.urls = {
            "websocket": self._url("ws").replace("http://", "ws://") + f"/{ws_api.stage}",
            "management": f"{self._url('ws')}/{ws_api.stage}",
            "admin": self._url("admin") + "/",
            "lambda": self._url("lambda"),
            "moto": moto_url,
            "token_secret_arn": template.parameters["TokenSecretArn"],
            "llm_keys_secret_arn": secrets.llm_keys_secret_arn,
        }
        credentials = Credentials()
        runtime = Runtime(
            state_dir=opts.data_dir.resolve(), region=opts.region, credentials=credentials,
            env_vars=opts.env_vars,
            overrides={
                "WEBSOCKET_MANAGEMENT_URL": self.urls["management"],
                "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
                "AWS_ENDPOINT_URL_S3": moto_url,  # the image bucket
                "AWS_ENDPOINT_URL_LAMBDA": self.urls["lambda"],
            },
        )
        await asyncio.to_thread(runtime.prepare)
        for spec in functions:
            pool = FunctionPool(spec, command=runtime.command(spec),
                                environment=runtime.environment,
                                max_workers=opts.max_workers, log_sink=opts.log_sink)
            self.pools[spec.name] = pool
        self._wire_queues(sqs, queue_urls)
        await asyncio.gather(*(pool.start(warm=1) for pool in self.pools.values()))
        await self._wait_warm()
        by_name = {pool.spec.name: pool for pool in self.pools.values()}
        for logical_id in await run_custom_resources(template, by_name, context):
            logger.info("custom resource %s created", logical_id)
        for poller in self.pollers:
            poller.start()

        front = Settings(
            kefu_env="development", redis_url=template.parameters["RedisUrl"],
            redis_prefix=f"kefu-local:{opts.stack_name}:", gateway_host=opts.host,
            gateway_port=self.sockets["ws"].getsockname()[1], gateway_stage=ws_api.stage,
            gateway_management_keys=[f"{k}:{v}" for k, v in credentials.keys().items()],
        )
        self.gateway = Gateway(front, replica_id="local", routes=ws_api.custom_routes,
                               api_id=ws_api.api_id,
                               integration=LambdaIntegration(ws_api, self.invoke))
        await self.gateway.start()
        ports = {name: sock.getsockname()[1] for name, sock in self.sockets.items()}
        self.app = _ByPort({
            # Every HTTP route on this port is the management API: API Gateway's 128 KB.
            ports["ws"]: Starlette(routes=websocket_routes(self.gateway), middleware=[
                Middleware(BodyLimitMiddleware, default_max_bytes=MANAGEMENT_MAX_BODY_BYTES,
                           error="aws")]),
            ports["admin"]: HttpApi(lambda payload: self.invoke(admin.name, payload),
                                    api_id=api_id("AdminHttpApi"),
                                    account_id=context.account_id),
            ports["lambda"]: create_lambda_api(self.pools, keys=credentials.keys()),
        })

    def _wire_queues(self, sqs: Any, queue_urls: dict[str, str]) -> None:
        """OnFailure destinations and SQS event source mappings, on moto's queues."""
        for pool in self.pools.values():
            spec = pool.spec
            if spec.on_failure:
                if spec.on_failure not in queue_urls:
                    raise LocalStackError(f"{spec.logical_id}: OnFailure destination "
                                          f"{spec.on_failure} is not a queue of this template")
                pool.on_failure = _failure_sender(sqs, queue_urls[spec.on_failure], spec)
            for source in spec.sqs_sources:
                if source.queue_arn not in queue_urls:
                    raise LocalStackError(f"{spec.logical_id}: SQS event queue "
                                          f"{source.queue_arn} is not in this template")
                self.pollers.append(SqsPoller(
                    client=sqs, queue_url=queue_urls[source.queue_arn], source=source,
                    region=self.options.region, invoke=pool.invoke, function=spec.logical_id))

    def _data_stores(self, parameters: dict[str, str]) -> None:
        """DatabaseUrl and RedisUrl default to the embedded services ``kefu run`` uses."""
        from kefu_core.infra.embedded import EmbeddedPostgres, EmbeddedRedis

        if not parameters.get("DatabaseUrl"):
            logger.info("DatabaseUrl not given: starting embedded PostgreSQL + pgvector")
            postgres = EmbeddedPostgres(data_dir=self.options.data_dir / "pg")
            parameters["DatabaseUrl"] = postgres.start()
            self.embedded.append(postgres)
        if not parameters.get("RedisUrl"):
            logger.info("RedisUrl not given: starting redis-server")
            redis = EmbeddedRedis()
            parameters["RedisUrl"] = redis.start()
            self.embedded.append(redis)

    async def _wait_warm(self, within_s: float = 180) -> None:
        async def warm(pool: FunctionPool) -> None:
            while not any(w.initialised for w in pool.workers):
                if not pool.workers:
                    raise LocalStackError(f"{pool.spec.logical_id} could not start (see its log)")
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(asyncio.gather(*(warm(p) for p in self.pools.values())),
                                   within_s)
        except TimeoutError as exc:
            raise LocalStackError(f"the functions did not start within {within_s:.0f} s") from exc

    async def invoke(self, function: str, payload: bytes) -> Result:
        pool = self.pools.get(function)
        if pool is None:
            raise FunctionNotFound(function)
        return await pool.invoke(payload)

    async def stop(self) -> None:
        await asyncio.gather(*(poller.stop() for poller in self.pollers),
                             return_exceptions=True)
        if self.gateway is not None:
            with contextlib.suppress(Exception):
                await self.gateway.stop()
        await asyncio.gather(*(pool.stop() for pool in self.pools.values()),
                             return_exceptions=True)
        if self.moto is not None:
            self.moto.stop()
        for service in reversed(self.embedded):
            stop = getattr(service, "stop", None)
            if stop is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(stop)
        for sock in self.sockets.values():
            sock.close()

    def banner(self) -> str:
        urls = self.urls
        return "\n".join([
            "Kefu local stack (the SAM build, run as Lambda runs it) is ready:",
            f"  WebSocket API:     {urls['websocket']}",
            f"  management API:    {urls['management']}/@connections/{{id}}",
            f"  admin HTTP API:    {urls['admin']}",
            f"  Lambda API:        {urls['lambda']}",
            f"  Secrets Manager:   {urls['moto']} (moto; SQS too)",
            f"  token secret:      {urls['token_secret_arn']}",
            "  functions:         " + ", ".join(p.spec.logical_id for p in self.pools.values()),
        ])


def _with_timeout(spec: FunctionSpec, timeouts: Mapping[str, int]) -> FunctionSpec:
    seconds = timeouts.get(spec.logical_id)
    return spec if seconds is None else dataclasses.replace(spec, timeout_s=seconds)


def _failure_sender(sqs: Any, queue_url: str, spec: FunctionSpec) -> FailureHook:
    async def send(request_id: str, payload: bytes, result: Result | None, condition: str,
                   attempts: int) -> None:
        record = destination_record(spec, request_id=request_id, payload=payload,
                                    result=result, condition=condition, attempts=attempts)
        await asyncio.to_thread(sqs.send_message, QueueUrl=queue_url,
                                MessageBody=json.dumps(record))
        logger.info("%s: event %s sent to its OnFailure queue (%s)", spec.logical_id,
                    request_id, condition)

    return send


def _http_api_function(template: Template, functions: list[FunctionSpec]) -> FunctionSpec:
    for spec in functions:
        events = (template.resources[spec.logical_id].get("Properties") or {}).get("Events") or {}
        if any(e.get("Type") == "HttpApi" for e in events.values()):
            return spec
    raise LocalStackError("no function with an HttpApi event in the template")


async def _serve(stack: LocalStack, stop: asyncio.Event) -> None:
    import uvicorn

    assert stack.app is not None
    config = uvicorn.Config(
        # log_config=None keeps the logging main() configured (uvicorn's would replace it).
        stack.app, lifespan="off", log_config=None, ws_max_size=128 * 1024,
        ws_per_message_deflate=False,
        access_log=False, log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        ws_ping_interval=30, ws_ping_timeout=30, timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[assignment,method-assign]
    serving = asyncio.create_task(server.serve(sockets=list(stack.sockets.values())))
    while True:  # uvicorn says "started" only through this flag
        if server.started or serving.done():
            break
        await asyncio.sleep(0.05)
    if serving.done():
        serving.result()
        return
    print(stack.banner(), flush=True)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving


async def run_local(options: LocalOptions) -> int:
    """Start the stack, serve until SIGINT, SIGTERM or SIGHUP, stop everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    stack = LocalStack(options)
    try:
        starting = asyncio.create_task(stack.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 130
        starting.result()
        stopped.cancel()
        await _serve(stack, stop)
        return 0
    except LocalStackError as exc:
        print(f"kefu local: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        print("kefu local: stopping", file=sys.stderr, flush=True)
        await stack.stop()
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _create_buckets(moto_url: str, region: str, names: list[str]) -> None:
    """The template's buckets (the images') on moto's S3, as CloudFormation would make them."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=region,
                      aws_access_key_id="local", aws_secret_access_key="local")
    where = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    for name in names:
        s3.create_bucket(Bucket=name, **where)
