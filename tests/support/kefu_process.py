"""Run ``kefu run`` as users do: a real subprocess of the installed ``kefu`` command.

Its stdout and stderr go to files in a temporary directory, so a test can read everything the
process logged after it stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.gateway import free_port

ROOT = Path(__file__).resolve().parents[2]

# Settings a test process must not inherit from the developer's shell or CI.
_INHERITED = ("KEFU_ENV", "TOKEN_SECRETS", "TOKEN_SECRET_ID", "DATABASE_URL", "REDIS_URL",
              "REDIS_PREFIX", "ENGINES", "LOG_LEVEL", "LOG_FORMAT", "DATA_DIR",
              "GATEWAY_MANAGEMENT_KEYS", "KNOWLEDGE_DIR")


def kefu_command() -> list[str]:
    installed = Path(sys.executable).parent / "kefu"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "kefu_core.cli"]


@dataclass
class KefuProcess:
    proc: subprocess.Popen[bytes]
    port: int
    out_dir: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/prod"

    def wait_until_serving(self, within_s: float = 180) -> None:
        """Poll ``/healthz`` until it answers (generous: embedded PostgreSQL may run initdb)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kefu run exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"kefu run did not serve:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, within_s: float = 90) -> int:
        """Send ``sig`` and wait for the process to exit; kill it if it does not."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(within_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def output(self) -> str:
        return "\n".join(
            (self.out_dir / name).read_text(errors="replace") for name in ("stdout", "stderr")
        )


@contextlib.contextmanager
def kefu_run(env: dict[str, str], out_dir: Path, *, port: int | None = None,
             args: tuple[str, ...] = ()) -> Iterator[KefuProcess]:
    """Start ``kefu run`` with ``env`` on top of a clean environment; stop it on the way out."""
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    full_env.update(env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "stdout").open("wb") as stdout, (out_dir / "stderr").open("wb") as stderr:
        proc = subprocess.Popen(
            [*kefu_command(), "run", "--host", "127.0.0.1", "--port", str(port), *args],
            env=full_env, cwd=ROOT, stdout=stdout, stderr=stderr,
        )
        running = KefuProcess(proc=proc, port=port, out_dir=out_dir)
        try:
            yield running
        finally:
            running.stop()
