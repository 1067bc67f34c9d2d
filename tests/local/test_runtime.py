"""The execution environments of ``kefu local``, on a small built template of their own: what
a handler sees (context, ``sys.path``, environment) and what happens past its ``Timeout``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kefu_core.local.functions import FunctionPool
from kefu_core.local.runtime import Credentials, Runtime
from kefu_core.local.template import StackContext, Template

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting:
    Type: String
    Default: hello
    AllowedPattern: "^[a-z]+$"
Globals:
  Function:
    Runtime: python3.12
    Handler: app.handler
    Timeout: 1
    MemorySize: 256
    Layers: [!Ref FirstLayer, !Ref SecondLayer]
    Environment:
      Variables:
        GREETING: !Ref Greeting
        FROM_GLOBALS: "yes"
Resources:
  FirstLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: FirstLayer}
  SecondLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: SecondLayer}
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: EchoFunction
      Environment:
        Variables:
          REGION_SEEN: !Sub "${AWS::Region}/${AWS::AccountId}"
"""

HANDLER = """\
import importlib.util, os, sys, time
import shared

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "which": shared.WHICH,
        "pydantic": importlib.util.find_spec("pydantic") is not None,
        "boto3": importlib.util.find_spec("boto3") is not None,
        "env": {k: os.environ.get(k) for k in ("GREETING", "FROM_GLOBALS", "REGION_SEEN",
                                                 "OVERRIDDEN", "AWS_LAMBDA_FUNCTION_NAME")},
        "pid": os.getpid(),
    }
"""


@pytest.fixture
async def echo(tmp_path: Path) -> AsyncIterator[FunctionPool]:
    build = tmp_path / "build"
    (build / "EchoFunction").mkdir(parents=True)
    (build / "EchoFunction" / "app.py").write_text(HANDLER)
    for layer, which in (("FirstLayer", "first"), ("SecondLayer", "second")):
        (build / layer / "python").mkdir(parents=True)
        (build / layer / "python" / "shared.py").write_text(f"WHICH = {which!r}\n")
    (build / "template.yaml").write_text(TEMPLATE)
    template = Template(build / "template.yaml", overrides={"Greeting": "bonjour"},
                        context=StackContext(region="eu-west-1"))
    (spec,) = template.functions()
    runtime = Runtime(state_dir=tmp_path / "state", region="eu-west-1",
                      credentials=Credentials(), overrides={"OVERRIDDEN": "local"},
                      env_vars={"EchoFunction": {"GREETING": "from-env-vars"}})
    runtime.prepare()
    pool = FunctionPool(spec, command=runtime.command(spec), environment=runtime.environment,
                        max_workers=1, log_sink=lambda function, line: None)
    await pool.start(warm=1)
    try:
        yield pool
    finally:
        await pool.stop()


async def _call(pool: FunctionPool, event: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    result = await pool.invoke(json.dumps(event).encode())
    body: dict[str, Any] = result.json()
    return body, result.function_error


async def test_a_handler_runs_as_lambda_runs_it(echo: FunctionPool) -> None:
    # WHEN the function is invoked
    body, error = await _call(echo, {})
    # THEN it gets Lambda's context object
    assert error is None
    assert body["function_name"] == "kefu-local-EchoFunction" and body["memory"] == "256"
    assert body["request_id"] and 0 < body["remaining_ms"] <= 1000
    # AND the later layer's file wins, as when Lambda extracts layers into /opt in order
    assert body["which"] == "second"
    # AND nothing of the project's environment is importable but what the runtime ships
    assert body["boto3"] and not body["pydantic"]
    # AND the environment is the template's (globals merged, intrinsics resolved), then
    # --env-vars, then the local endpoint overrides
    assert body["env"] == {"GREETING": "from-env-vars", "FROM_GLOBALS": "yes",
                           "REGION_SEEN": "eu-west-1/123456789012", "OVERRIDDEN": "local",
                           "AWS_LAMBDA_FUNCTION_NAME": "kefu-local-EchoFunction"}


async def test_an_invocation_past_the_timeout_is_killed_and_the_next_one_runs(
    echo: FunctionPool,
) -> None:
    # GIVEN a warm execution environment
    first, _ = await _call(echo, {})
    # WHEN an invocation runs past the function's 1 s timeout
    timed_out, error = await _call(echo, {"sleep": 30})
    # THEN it fails as Lambda reports a timeout, and its process is gone
    assert error == "Unhandled" and "Task timed out after 1.00 seconds" in timed_out["errorMessage"]
    # AND the next invocation gets a fresh environment
    after, error = await _call(echo, {})
    assert error is None and after["pid"] != first["pid"]
