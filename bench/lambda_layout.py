"""Each built function's Lambda layout, read from the built template (``sam build`` output).

    python3.12 -m bench.lambda_layout sizes [--build .aws-sam/build]
    python3.12 -m bench.lambda_layout smoke RUNTIME_DIR [--build .aws-sam/build]

A function runs with its own folder, then the ``python/`` folder of each layer it lists (in
the template's order: Lambda extracts them into /opt in that order), then what the python3.12
runtime ships. ``sizes`` checks Lambda's 250 MB unzipped limit per function; ``smoke`` imports
every built handler in a fresh isolated process with only its own layers on the path (used by
``scripts/sam-check --smoke``), lists the heavy packages it loaded, then imports every heavy
package its layers ship (a dependency missing from a layer fails here) and every module of
openai and Powertools the layers keep (a part left out by the build but still needed fails
here).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

UNZIPPED_LIMIT = 262_144_000  # Lambda: function code plus layers, unzipped
# Packages the WebSocket plumbing functions must not load (see docs/design-notes.md).
HEAVY = ("numpy", "jieba", "openai", "tiktoken", "fastapi", "mangum")


class _Loader(yaml.SafeLoader):
    """CloudFormation's short tags (``!Ref X``) read as their long form (``{"Ref": "X"}``)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    key = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


_Loader.add_multi_constructor("!", _tag)


def function_layouts(build: Path) -> dict[str, tuple[Path, list[Path]]]:
    """``{logical id: (code folder, [layer python/ folders])}`` of every built function."""
    data = yaml.load((build / "template.yaml").read_text(), Loader=_Loader)
    resources: dict[str, Any] = data["Resources"]
    global_layers = list(((data.get("Globals") or {}).get("Function") or {}).get("Layers") or [])
    out: dict[str, tuple[Path, list[Path]]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        layers = []
        for ref in [*global_layers, *(props.get("Layers") or [])]:
            if not (isinstance(ref, dict) and "Ref" in ref):
                raise SystemExit(f"{logical_id}: layer {ref!r} is not a layer of this template")
            layer = resources[ref["Ref"]]["Properties"]["ContentUri"]
            layers.append(build / str(layer) / "python")
        out[logical_id] = (build / str(props["CodeUri"]), layers)
    return out


def tree_size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def check_sizes(build: Path) -> int:
    worst = 0
    for logical_id, (code, layers) in function_layouts(build).items():
        total = tree_size(code) + sum(tree_size(layer) for layer in layers)
        names = ", ".join(layer.parent.name for layer in layers)
        print(f"  {logical_id}: {total / 1e6:.0f} MB unzipped with {names}")
        worst = max(worst, total)
    if worst > UNZIPPED_LIMIT:
        print("sam-check: function code plus layers exceed Lambda's 250 MB unzipped limit",
              file=sys.stderr)
        return 1
    return 0


CHILD = """
import sys
code, runtime, *layers = sys.argv[1:]
sys.path[:0] = [code, *layers, runtime]
import app
assert callable(app.lambda_handler), "lambda_handler is not callable"
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY.split()))
print(" ".join(heavy))
# What the function's layers ship is importable with only those layers (packages the handler
# loads on first use: a dependency missing from a layer shows here, not at the first reply).
import importlib, importlib.util, os
for name in HEAVY.split():
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
# The AnswerLayer leaves out openai's API families kefu never calls (layers/answer/Makefile),
# the CoreLayer Powertools' utilities kefu never imports (shared/Makefile): every module of
# theirs a layer keeps must import without them. A module may still need an optional package
# the layer does not ship (websockets), as it did before anything was left out.
for package in ("openai", "aws_lambda_powertools"):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        continue
    top = os.path.dirname(next(iter(spec.submodule_search_locations)))
    for folder, dirs, files in os.walk(os.path.join(top, package)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for file in files:
            if not file.endswith(".py") or file == "__main__.py":
                continue
            parts = os.path.relpath(os.path.join(folder, file[:-3]), top).split(os.sep)
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if (exc.name or "").split(".")[0] == package:
                    raise SystemExit(f"{module} needs {exc.name}, left out of the layer")
"""


def smoke(build: Path, runtime: str) -> int:
    failed = 0
    env = {key: os.environ[key] for key in ("PATH", "HOME", "AWS_REGION", "AWS_DEFAULT_REGION")
           if key in os.environ}
    env.update({"KEFU_ENV": "test", "AWS_EC2_METADATA_DISABLED": "true"})
    for logical_id, (code, layers) in function_layouts(build).items():
        proc = subprocess.run(
            [sys.executable, "-B", "-S", "-I", "-c",
             CHILD.replace("HEAVY.split()", repr(HEAVY)), str(code), runtime,
             *map(str, layers)],
            env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode:
            print(f"  import {logical_id}: FAILED\n{proc.stderr[-3000:]}", file=sys.stderr)
            failed = 1
            continue
        heavy = proc.stdout.split()
        names = ", ".join(layer.parent.name for layer in layers)
        print(f"  import {logical_id}: ok (layers {names}; loaded {', '.join(heavy) or 'none'}"
              f" of {', '.join(HEAVY)})")
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("sizes", "smoke"))
    ap.add_argument("runtime", nargs="?", help="smoke: folder with the runtime's packages")
    ap.add_argument("--build", default=".aws-sam/build")
    args = ap.parse_args(argv)
    build = Path(args.build)
    if args.command == "sizes":
        return check_sizes(build)
    if not args.runtime:
        ap.error("smoke needs RUNTIME_DIR")
    return smoke(build, args.runtime)


if __name__ == "__main__":
    raise SystemExit(main())
