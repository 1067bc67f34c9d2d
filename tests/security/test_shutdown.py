"""``kefu run`` stops its embedded redis-server and PostgreSQL on every way out.

Left running, they keep ports, memory and a database nobody watches (seen after three stops
with SIGTERM). The command runs as users run it: a real process on the embedded defaults (no
DATABASE_URL, no REDIS_URL), stopped with SIGTERM (docker, systemd), SIGINT (Ctrl-C), or failing
after its services started.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.support.gateway import free_port
from tests.support.kefu_process import ROOT, KefuProcess, kefu_run

pytestmark = pytest.mark.timeout(900)  # the first start runs initdb on a busy machine

ENV = {"KEFU_ENV": "production", "TOKEN_SECRETS": "shutdown-test-secret-0123456789-abcdefgh",
       "GATEWAY_MANAGEMENT_KEYS": "AKIDSHUTDOWN:management-secret-0123456789"}


@contextlib.contextmanager
def _data_dir() -> Iterator[Path]:
    """A data directory PostgreSQL's own user can reach (pytest's base temp is private to root,
    and other sessions reset it to 0700 at any time); removed afterwards."""
    base = ROOT / ".kefu"
    base.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-shutdown-", dir=base))
    try:
        yield path
    finally:
        # Whatever a failed test left running on it is stopped, so the machine stays clean.
        pid = _postmaster_pid(path)
        if pid is not None and psutil.pid_exists(pid):
            psutil.Process(pid).send_signal(signal.SIGINT)
            _gone(psutil.Process(pid))
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """One data directory for the module: initdb runs once, each test starts the server again."""
    with _data_dir() as path:
        yield path


@dataclass
class Started:
    """The services a ``kefu run`` process started, seen while it ran."""

    processes: dict[int, psutil.Process] = field(default_factory=dict)
    redis_ports: set[int] = field(default_factory=set)
    postgres_pid: int | None = None

    def watch(self, kefu: KefuProcess, data_dir: Path) -> None:
        try:
            children = psutil.Process(kefu.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:
            try:
                if "redis-server" in child.name():
                    self.processes[child.pid] = child
                    self.redis_ports.update(
                        c.laddr.port for c in child.net_connections("tcp")
                        if c.status == psutil.CONN_LISTEN)
            except psutil.Error:
                continue
        pid = _postmaster_pid(data_dir)
        if pid is not None and pid not in self.processes:
            try:
                self.processes[pid] = psutil.Process(pid)
                self.postgres_pid = pid
            except psutil.NoSuchProcess:
                pass

    @property
    def redis(self) -> list[psutil.Process]:
        return [p for p in self.processes.values() if p.pid != self.postgres_pid]


@pytest.fixture
def started() -> Iterator[Started]:
    """What the test's `kefu run` started; anything a failed test left running is stopped."""
    seen = Started()
    yield seen
    for process in seen.processes.values():
        if not _gone(process, within_s=0):
            process.send_signal(signal.SIGINT)  # fast shutdown for PostgreSQL, stop for Redis


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _gone(process: psutil.Process, within_s: float = 60) -> bool:
    """True once ``process`` has exited (a zombie waiting for init counts as exited)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_and_stop(data_dir: Path, out: Path, sig: signal.Signals,
                    started: Started) -> tuple[int, str]:
    with kefu_run({**ENV, "DATA_DIR": str(data_dir)}, out) as kefu:
        kefu.wait_until_serving()
        started.watch(kefu, data_dir)
        code = kefu.stop(sig)
    return code, kefu.output()


def _assert_nothing_left(started: Started, data_dir: Path, output: str) -> None:
    # ... every redis-server and PostgreSQL process it started has exited
    for process in started.processes.values():
        assert _gone(process), f"{process.pid} ({process.name()}) still runs\n{output[-3000:]}"
    # ... their ports are free and PostgreSQL shut down cleanly (it removes its pid file)
    for port in started.redis_ports:
        assert not _listening(port), f"port {port} still answers"
    assert not (data_dir / "pg" / "postmaster.pid").exists(), output[-3000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_the_embedded_services(
    data_dir: Path, tmp_path: Path, sig: signal.Signals, started: Started
) -> None:
    # GIVEN `kefu run` serving on its embedded PostgreSQL and redis-server
    # WHEN it is stopped with a signal
    code, output = _start_and_stop(data_dir, tmp_path / "out", sig, started)
    assert started.postgres_pid is not None and started.redis, "both services were started"
    # THEN it exits as after any requested stop ...
    assert code == 0, output[-3000:]
    # ... and leaves nothing running
    _assert_nothing_left(started, data_dir, output)


def test_a_start_that_fails_after_the_services_started_stops_them(
    data_dir: Path, tmp_path: Path, started: Started
) -> None:
    # GIVEN the gateway's port is already taken, so `kefu run` fails after starting its services
    port = free_port()
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        # WHEN it runs (watched until it gives up)
        with kefu_run({**ENV, "DATA_DIR": str(data_dir)}, tmp_path / "out", port=port) as kefu:
            while kefu.proc.poll() is None:
                started.watch(kefu, data_dir)
                time.sleep(0.05)
            output = kefu.output()
    # THEN it failed, after both services had started ...
    assert kefu.proc.returncode != 0, output[-3000:]
    assert started.postgres_pid is not None and started.redis, \
        f"the services did not start before the failure\n{output[-3000:]}"
    # ... and nothing it started is left running
    _assert_nothing_left(started, data_dir, output)


def test_a_server_left_by_a_killed_run_is_stopped_by_the_next_one(
    data_dir: Path, tmp_path: Path, started: Started
) -> None:
    # GIVEN a `kefu run` killed outright (SIGKILL: no code of ours runs), leaving PostgreSQL up
    with kefu_run({**ENV, "DATA_DIR": str(data_dir)}, tmp_path / "killed") as killed:
        killed.wait_until_serving()
        started.watch(killed, data_dir)
        killed.stop(signal.SIGKILL)
    assert started.postgres_pid is not None
    leftover = started.processes[started.postgres_pid]
    assert not _gone(leftover, within_s=1), "PostgreSQL survives a killed run"
    for process in started.redis:  # the orphaned redis-server is not the next run's business
        process.terminate()
        process.wait(10)
    # WHEN the next run starts (reusing that server) and is stopped with SIGTERM
    code, output = _start_and_stop(data_dir, tmp_path / "next", signal.SIGTERM, started)
    # THEN the leftover server is stopped too: the dead run no longer counts as a holder
    assert code == 0, output[-3000:]
    assert _gone(leftover), output[-3000:]
    assert not (data_dir / "pg" / "postmaster.pid").exists(), output[-3000:]


def _postgres_on(data_dir: Path) -> list[psutil.Process]:
    """Every PostgreSQL (or initdb) process working on ``data_dir``'s cluster."""
    pgdata = str((data_dir / "pg").resolve())
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if process.info["name"] in ("postgres", "initdb", "pg_ctl") and \
                    pgdata in (process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _wait_for_output(kefu: KefuProcess, text: str, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while text not in kefu.output():
        if kefu.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never logged\n{kefu.output()[-3000:]}")
        time.sleep(0.02)


def test_a_stop_during_the_first_start_lets_it_finish_then_stops_everything(
    tmp_path: Path, started: Started
) -> None:
    # GIVEN `kefu run` on a new data directory, busy creating its PostgreSQL cluster
    with _data_dir() as data_dir:
        _stop_during_first_start(data_dir, tmp_path, started)


def _stop_during_first_start(data_dir: Path, tmp_path: Path, started: Started) -> None:
    with kefu_run({**ENV, "DATA_DIR": str(data_dir)}, tmp_path / "first") as kefu:
        _wait_for_output(kefu, "starting embedded PostgreSQL")
        # WHEN it is stopped with SIGTERM right then
        code = kefu.stop(signal.SIGTERM)
        output = kefu.output()
    # THEN it exits as after any requested stop, once the start it was in has finished ...
    assert code == 0, output[-3000:]
    assert "stop requested" in output, output[-3000:]
    # ... with no PostgreSQL, initdb or redis-server of its own left running
    leftovers = [p for p in _postgres_on(data_dir) if not _gone(p)]
    assert leftovers == [], output[-3000:]
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    # AND the data directory is whole: the next run serves from it and stops cleanly
    code, output = _start_and_stop(data_dir, tmp_path / "second", signal.SIGTERM, started)
    assert code == 0, output[-3000:]
    _assert_nothing_left(started, data_dir, output)
