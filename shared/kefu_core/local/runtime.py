"""What a python3.12 Lambda execution environment looks like, rebuilt on this machine.

- ``/var/task``: the function's build folder (``.aws-sam/build/<Function>``), the working
  directory and the first entry of ``sys.path``.
- ``/opt``: the function's layers extracted in the template's order into one folder, a later
  layer's file replacing an earlier one's; here a tree of symbolic links
  (``.kefu/local/opt/<digest>``) so nothing is copied. ``/opt/python`` is on ``sys.path``.
- ``/var/runtime``: what the runtime itself ships besides the standard library: boto3 and its
  dependencies, and the runtime interface client (``awslambdaric``). Here a folder of links
  (``.kefu/local/runtime``) to exactly those distributions of the project's environment, and
  nothing else from it.

The interpreter runs with ``-S`` (no site-packages of any environment: ``sys.path`` is the
standard library plus the three folders above) and ``-B`` (``/var/task`` and ``/opt`` are
read-only on Lambda: no bytecode is written next to the build).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import secrets
import shutil
import string
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kefu_core.local.errors import LocalStackError
from kefu_core.local.template import FunctionSpec

__all__ = ["RUNTIME_DISTRIBUTIONS", "Credentials", "Runtime"]

# What the python3.12 managed runtime provides besides the standard library.
RUNTIME_DISTRIBUTIONS = (
    "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3",
    "awslambdaric", "simplejson", "snapshot-restore-py",
)
# Reserved variables Lambda sets itself; a template cannot override them.
RESERVED = frozenset({
    "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})


@dataclass(frozen=True)
class Credentials:
    """Fake, per-run credentials of the functions' execution role. The management API and the
    Lambda API of the local stack accept SigV4 signatures made with them, and only those."""

    access_key_id: str = field(
        default_factory=lambda: "ASIA" + "".join(
            secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)))
    secret_access_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    def keys(self) -> dict[str, str]:
        return {self.access_key_id: self.secret_access_key}


def _python312() -> str:
    if sys.version_info[:2] == (3, 12):
        base = getattr(sys, "_base_executable", None) or sys.executable
        return str(Path(base).resolve())
    found = shutil.which("python3.12")
    if not found:
        raise LocalStackError("kefu local needs python3.12 (the Lambda runtime's version)")
    return found


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(source, target_is_directory=source.is_dir())


def build_runtime_dir(target: Path) -> Path:
    """``/var/runtime``: links to the runtime's distributions, rebuilt on every start."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise LocalStackError(
                f"{name} is not installed: kefu local needs the development dependencies "
                "(pip install -e '.[dev]', which scripts/bootstrap does)") from exc
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in sorted(tops):
            if top in ("..", "__pycache__") or top.endswith((".data", ".pth")):
                continue
            source = Path(str(dist.locate_file(top)))
            if source.exists():
                _link(source, target / top)
    return target


def overlay(sources: list[Path], target: Path) -> None:
    """Merge ``sources`` into ``target`` as Lambda extracts layers: in order, a later file
    replacing an earlier one, folders merged. Leaves are symbolic links."""
    target.mkdir(parents=True, exist_ok=True)
    entries: dict[str, list[Path]] = {}
    for source in sources:
        for child in sorted(source.iterdir()):
            entries.setdefault(child.name, []).append(child)
    for name, children in entries.items():
        stack: list[Path] = []
        for child in children:
            stack = [*stack, child] if child.is_dir() and all(p.is_dir() for p in stack) \
                else [child]
        if len(stack) == 1:
            _link(stack[0].resolve(), target / name)
        else:
            overlay(stack, target / name)


@dataclass
class Runtime:
    """Builds the folders and the environment of every execution environment."""

    state_dir: Path
    region: str
    credentials: Credentials
    overrides: Mapping[str, str]
    env_vars: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    python: str = field(default_factory=_python312)
    runtime_dir: Path | None = None
    _opt: dict[tuple[Path, ...], Path] = field(default_factory=dict)

    def prepare(self) -> None:
        self.runtime_dir = build_runtime_dir(self.state_dir / "runtime")
        opt_root = self.state_dir / "opt"
        if opt_root.exists():
            shutil.rmtree(opt_root)

    def opt_dir(self, layers: list[Path]) -> Path:
        key = tuple(layers)
        if key not in self._opt:
            digest = hashlib.sha256("\0".join(map(str, key)).encode()).hexdigest()[:12]
            folder = self.state_dir / "opt" / digest
            overlay(list(layers), folder)
            self._opt[key] = folder
        return self._opt[key]

    def command(self, spec: FunctionSpec) -> list[str]:
        if spec.runtime != "python3.12":
            raise LocalStackError(f"{spec.logical_id}: runtime {spec.runtime} is not python3.12")
        return [self.python, "-S", "-B", "-m", "awslambdaric", spec.handler]

    def environment(self, spec: FunctionSpec, runtime_api: str) -> dict[str, str]:
        """The template's variables, then ``--env-vars``, then what Lambda reserves, then the
        local endpoints."""
        assert self.runtime_dir is not None, "prepare() first"
        opt = self.opt_dir(spec.layers)
        python_path = [str(spec.code_dir), str(opt / "python" / "lib" / "python3.12" /
                       "site-packages"), str(opt / "python"), str(self.runtime_dir)]
        env: dict[str, str] = {}
        env.update(spec.environment)
        for scope in ("Parameters", spec.logical_id):
            env.update({k: str(v) for k, v in (self.env_vars.get(scope) or {}).items()})
        day = time.strftime("%Y/%m/%d", time.gmtime())
        env.update({
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(python_path),
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LAMBDA_RUNTIME_DIR": str(self.runtime_dir),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[$LATEST]{secrets.token_hex(16)}",
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "AWS_SESSION_TOKEN": self.credentials.session_token,
            # No X-Ray daemon and no trace header here: the functions run untraced (as with
            # `sam local invoke`), whatever the template says.
            "POWERTOOLS_TRACE_DISABLED": "true",
        })
        env.update(self.overrides)
        return env
