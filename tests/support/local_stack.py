"""Run ``kefu local`` (the real command) as a child process, and talk to what it serves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build" / "template.yaml"
SOURCES = ("template.yaml", "functions", "layers", "shared")


def build_is_stale() -> bool:
    """True when the SAM build is missing or older than a source file it is made from."""
    if not BUILD.is_file():
        return True
    built = BUILD.stat().st_mtime
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else path.rglob("*")
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts and file.stat().st_mtime > built:
                return True
    return False


@dataclass
class LocalStackProcess:
    process: subprocess.Popen[str]
    urls: dict[str, str]
    log_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def ws(self) -> str:
        return self.urls["WebSocket API"]

    @property
    def admin(self) -> str:
        return self.urls["admin HTTP API"].rstrip("/")

    @property
    def lambda_api(self) -> str:
        return self.urls["Lambda API"]

    @property
    def management(self) -> str:
        return self.urls["management API"].split("/@connections", 1)[0]

    @property
    def moto(self) -> str:
        return self.urls["Secrets Manager"].split()[0]

    @property
    def token_secret_arn(self) -> str:
        return self.urls["token secret"]

    def sqs(self) -> Any:
        return boto3.client("sqs", endpoint_url=self.moto, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def secrets_manager(self) -> Any:
        return boto3.client("secretsmanager", endpoint_url=self.moto, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def signing_secrets(self) -> list[str]:
        value = self.secrets_manager().get_secret_value(SecretId=self.token_secret_arn)
        secrets: list[str] = json.loads(value["SecretString"])["secrets"]
        return secrets

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@contextlib.contextmanager
def run_local_stack(*, data_dir: Path, parameters: dict[str, str], env_vars: dict[str, Any],
                    start_timeout: float = 240, extra_args: tuple[str, ...] = ()
                    ) -> Iterator[LocalStackProcess]:
    """``kefu local`` on free ports; yields once it printed its URLs; SIGTERM at the end."""
    env_file = data_dir / "env.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    env_file.write_text(json.dumps(env_vars))
    log_path = data_dir / "kefu-local.log"
    command = [
        str(Path(sys.executable).parent / "kefu"), "local",
        "--port", "0", "--admin-port", "0", "--lambda-port", "0",
        "--data-dir", str(data_dir), "--env-vars", str(env_file),
        *extra_args,
        "--parameter-overrides", *[f"{k}={v}" for k, v in parameters.items()],
    ]
    if build_is_stale():
        command.append("--build")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "AWS_"))}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                                   text=True, env=env)
    stack = LocalStackProcess(process=process, urls={}, log_path=log_path)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.lines.append(line.rstrip("\n"))
            name, sep, value = line.strip().partition(":")
            if sep and line.startswith("  ") and value.strip():
                stack.urls[name.strip()] = value.strip()
            if line.strip().startswith("functions:"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + start_timeout
    while not ready.wait(0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            stack.stop()
            raise RuntimeError(f"kefu local did not start:\n{stack.log()[-5000:]}")
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, f"kefu local exited with {code}:\n{stack.log()[-3000:]}"
