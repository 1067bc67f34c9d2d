"""The Lambda handlers publish the product metrics as CloudWatch Embedded Metric Format.

Each invocation ends with a flush: Powertools prints one EMF JSON document per metric set on
stdout, which CloudWatch Logs turns into metrics in the ``Kefu`` namespace. The container runs
in production mode; the deployment's engine refuses its key (401), so the reply falls back to
the offline engine and the key's breaker opens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from kefu_core import lambda_runtime
from kefu_core.infra.secret_settings import get_settings
from tests.functional.test_lambda_handlers import (  # noqa: F401 (fixtures)
    LambdaContext,
    load_handler,
    moto_endpoint,
    received,
    token,
)
from tests.support.core import SECRET, load_event
from tests.support.fake_openai import FakeOpenAI

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture
def container(
    make_database: Callable[[], str], redis_url: str, moto_endpoint: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Invoke]:
    """A production Lambda container whose engine refuses the configured key."""
    prefix = f"kefu-test:lambda-metrics:{uuid.uuid4().hex[:8]}:"
    with FakeOpenAI(valid_keys={"sk-valid"}, first_token_ms=1) as provider:
        for key, value in {
            "KEFU_ENV": "production", "DATABASE_URL": make_database(), "REDIS_URL": redis_url,
            "REDIS_PREFIX": prefix, "TOKEN_SECRETS": SECRET,
            "WEBSOCKET_MANAGEMENT_URL": moto_endpoint, "OUTBOUND_ALLOW_PRIVATE": "true",
            "ENGINES": json.dumps([{"name": "primary", "provider": "fakeai",
                                    "base_url": provider.base_url, "model": "m",
                                    "api_keys": ["sk-revoked"]}]),
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "kefu", "POWERTOOLS_TRACE_DISABLED": "true",
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("STREAM_FUNCTION_NAME", raising=False)
        get_settings.cache_clear()
        handlers = {name: load_handler(name).lambda_handler
                    for name in ("connect", "message", "stream")}
        worker = ThreadPoolExecutor(max_workers=1)

        def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = worker.submit(handlers[name], event,
                                                   LambdaContext()).result(60)
            return result

        yield invoke
        worker.submit(lambda_runtime.reset).result(60)
        worker.shutdown()
        get_settings.cache_clear()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def emf_documents(output: str) -> list[dict[str, Any]]:
    """The EMF documents among the JSON lines a function printed (log lines are others)."""
    docs = []
    for line in output.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if "_aws" in doc:
                docs.append(doc)
    return docs


def metric_values(docs: list[dict[str, Any]]) -> dict[tuple[str, ...], Any]:
    """(metric name, dimension values...) -> value, over every document."""
    out: dict[tuple[str, ...], Any] = {}
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Kefu"
        dimensions = [d for group in directive["Dimensions"] for d in group]
        for metric in directive["Metrics"]:
            key = (metric["Name"], *(f"{d}={doc[d]}" for d in dimensions))
            value = doc[metric["Name"]]
            out[key] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return out


def test_a_reply_through_the_handlers_emits_emf_metrics(
    container: Invoke, capsys: pytest.CaptureFixture[str],
) -> None:
    connection_id = f"conn-{uuid.uuid4().hex[:8]}="
    visitor = f"v-{uuid.uuid4().hex}"
    # GIVEN a connected visitor whose message was stored
    connect = load_event("connect.json", REPLACE_WITH_TOKEN=token(visitor=visitor))
    connect["requestContext"]["connectionId"] = connection_id
    assert container("connect", connect)["statusCode"] == 200
    message = load_event("message.json")
    message["requestContext"]["connectionId"] = connection_id
    container("message", message)
    (ack,) = [f for f in received(connection_id) if f["type"] == "ack"]
    capsys.readouterr()
    # WHEN the stream function answers it
    stream = load_event("stream.json")
    stream.update(conversation_id=ack["conversation_id"], reply_to_seq=ack["seq"],
                  connection_id=connection_id)
    assert container("stream", stream)["status"] == "complete"
    # THEN that invocation printed EMF metrics: the reply by status, its first-token
    # latency, the fallback and the breaker that opened on the refused key
    printed = capsys.readouterr().out
    values = metric_values(emf_documents(printed))
    assert values[("Replies", "service=kefu", "Status=complete")] == 1
    assert values[("FallbacksUsed", "service=kefu")] == 1
    assert values[("BreakerOpens", "service=kefu")] == 1
    latency = values[("FirstTokenLatency", "service=kefu")]
    assert isinstance(latency, float | int) and latency >= 0
    # AND no visitor id, conversation id or text went into a metric document
    for doc in emf_documents(printed):
        flat = json.dumps(doc)
        assert visitor not in flat and ack["conversation_id"] not in flat
    # WHEN the same message is sent again (a resend of its client_msg_id)
    container("message", message)
    # THEN the message function's invocation counted a resend
    values = metric_values(emf_documents(capsys.readouterr().out))
    assert values[("Resends", "service=kefu")] == 1
    # WHEN a frame of an unknown action arrives
    default = load_event("default.json")
    default["requestContext"]["connectionId"] = connection_id
    container("message", default)
    # THEN the error is counted by its code
    values = metric_values(emf_documents(capsys.readouterr().out))
    assert values[("Errors", "service=kefu", "Code=unknown_action")] == 1
