"""Run a real gateway replica (uvicorn) in a background thread, on a free port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
import uvicorn

from kefu_core.gateway import create_gateway_app
from kefu_core.gateway.app import Gateway
from kefu_core.infra.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningGateway:
    port: int
    gateway: Gateway
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/prod"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextlib.contextmanager
def run_gateway(settings: Settings, *, replica_id: str | None = None) -> Iterator[RunningGateway]:
    port = free_port()
    settings = settings.model_copy(update={"gateway_port": port, "gateway_host": "127.0.0.1"})
    app = create_gateway_app(settings, replica_id=replica_id)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            ws_max_size=128 * 1024, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"gateway-{port}")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.02)
    running = RunningGateway(port=port, gateway=app.state.gateway, server=server, thread=thread)
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def redis_prefix_removed(redis_url: str, prefix: str) -> Iterator[str]:
    """Yield ``prefix``; afterwards delete every Redis key under it."""
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@contextlib.contextmanager
def gateway_for_test(
    *, dsn: str, redis_url: str, name: str, replica_id: str | None = None, **settings: Any
) -> Iterator[RunningGateway]:
    """A gateway on its own database and Redis key prefix, both cleaned up afterwards."""
    from tests.support.core import core_settings

    prefix = f"kefu-test:{name}:{uuid.uuid4().hex[:8]}:"
    with redis_prefix_removed(redis_url, prefix):
        config = core_settings(pg_dsn=dsn, redis_url=redis_url, redis_prefix=prefix, **settings)
        with run_gateway(config, replica_id=replica_id) as running:
            yield running
