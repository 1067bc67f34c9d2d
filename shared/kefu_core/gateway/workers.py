"""`kefu run --workers N`: one gateway process per core on one port.

Each worker is a full gateway replica (its own replica id, event loop and pools) that binds the
port itself with ``SO_REUSEPORT``, so the kernel spreads new connections over the workers; the
Redis hub already carries a frame to whichever replica holds the connection. The parent starts
the embedded services once (when DATABASE_URL / REDIS_URL are not set), hands their addresses to
the workers in the environment, restarts a worker that dies after running a while, and stops
them all (SIGTERM, then SIGKILL after a grace period) on its way out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from kefu_core.infra.settings import Settings

logger = logging.getLogger("kefu")

__all__ = ["MAX_WORKERS", "WorkerSet", "reuse_port_socket"]

MAX_WORKERS = 64
_EARLY_EXIT_S = 10.0  # a worker that dies sooner did not start: give up rather than loop
_GRACE_S = 15.0


def reuse_port_socket(host: str, port: int, *, backlog: int) -> socket.socket:
    """A listening TCP socket that other processes may bind to the same address as well."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("SO_REUSEPORT is not available on this system")
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.set_inheritable(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Worker:
    index: int
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env)
        self.started = time.monotonic()


@dataclass
class WorkerSet:
    """N ``kefu run --worker`` processes serving ``settings``' host and port."""

    settings: Settings
    count: int
    replica_id: str | None = None
    ws_deflate: bool = False
    workers: list[_Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.settings.database_url or ""
        env["REDIS_URL"] = self.settings.redis_url or ""
        base = self.replica_id or os.uname().nodename.split(".")[0] or "kefu"
        for index in range(self.count):
            argv = [sys.executable, "-m", "kefu_core.cli", "run", "--worker",
                    "--host", self.settings.gateway_host,
                    "--port", str(self.settings.gateway_port),
                    "--replica-id", f"{base}-w{index}"]
            if self.ws_deflate:
                argv.append("--ws-deflate")
            self.workers.append(_Worker(index, argv, env))

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def supervise(self, poll_s: float = 0.5) -> int:
        """Keep the workers running; return a non-zero code when one cannot start."""
        while True:
            for worker in self.workers:
                assert worker.proc is not None
                code = worker.proc.poll()
                if code is None:
                    continue
                if time.monotonic() - worker.started < _EARLY_EXIT_S:
                    logger.error("gateway worker exited while starting",
                                 extra={"worker": worker.index, "exit_code": code})
                    return code or 1
                logger.warning("gateway worker exited; restarting",
                               extra={"worker": worker.index, "exit_code": code})
                worker.start()
            time.sleep(poll_s)

    def stop(self) -> None:
        running = [w.proc for w in self.workers if w.proc and w.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _GRACE_S
        for proc in running:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
