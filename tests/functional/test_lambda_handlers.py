"""The Lambda handlers (functions/*/app.py) on the sample events in events/, as Lambda runs them.

Each handler runs in a worker thread of its own (a Lambda container: one long-lived loop),
with real Redis and PostgreSQL, and posts through boto3's real ``apigatewaymanagementapi``
client to moto's server, whose record of what each connection received we read back.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import psycopg
import pytest
import redis
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.server import ThreadedMotoServer

from kefu_core import lambda_runtime
from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET, load_event
from tests.support.gateway import free_port
from tests.support.images import GPS_MARK, decoded, jpeg_with_exif

ROOT = Path(__file__).resolve().parents[2]
CONNECTION_ID = "CJ3bXfE5IAMCJ4Q="


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"kefu_fn_{name}",
                                                  ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def container(
    make_database: Callable[[], str], redis_url: str, moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str, dict[str, Any]], dict[str, Any]]]:
    """A Lambda-like container: environment as template.yaml sets it, one worker thread."""
    dsn = make_database()
    prefix = f"kefu-test:lambda:{uuid.uuid4().hex[:8]}:"
    for key, value in {
        "KEFU_ENV": "test", "DATABASE_URL": dsn, "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix, "TOKEN_SECRETS": SECRET,
        "WEBSOCKET_MANAGEMENT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "kefu",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STREAM_FUNCTION_NAME", raising=False)
    handlers = {name: load_handler(name).lambda_handler
                for name in ("connect", "disconnect", "message", "stream")}
    worker = ThreadPoolExecutor(max_workers=1)

    def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = worker.submit(handlers[name], event, LambdaContext()).result(60)
        return result

    yield invoke
    worker.submit(lambda_runtime.reset).result(60)
    worker.shutdown()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


class LambdaContext:
    function_name = "kefu-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kefu-test"
    aws_request_id = "req-1"


def received(connection_id: str) -> list[dict[str, Any]]:
    """Frames moto's management API received for a connection (it concatenates them)."""
    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    key = quote(connection_id, safe="")  # moto keeps the id as it appears in the URL path
    data = backend.connections[key].data.decode() if key in backend.connections else ""
    frames, decoder, index = [], json.JSONDecoder(), 0
    while index < len(data):
        frame, index = decoder.raw_decode(data, index)
        frames.append(frame)
    return frames


def token(tenant: str = "demo", visitor: str | None = None) -> str:
    return issue_token(secrets=[SECRET], tenant_id=tenant,
                       subject=visitor or f"v-{uuid.uuid4().hex}", role="visitor", ttl_s=600)


def test_full_chat_through_the_lambda_handlers(container, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    connection_id = f"conn-{uuid.uuid4().hex[:8]}="
    # GIVEN $connect with a valid visitor token
    connect = load_event("connect.json", REPLACE_WITH_TOKEN=token())
    connect["requestContext"]["connectionId"] = connection_id
    assert container("connect", connect)["statusCode"] == 200
    # WHEN the visitor's message arrives on the message route
    message = load_event("message.json")
    message["requestContext"]["connectionId"] = connection_id
    assert container("message", message)["statusCode"] == 200
    # THEN it was acknowledged with its sequence number
    (ack,) = [f for f in received(connection_id) if f["type"] == "ack"]
    body = json.loads(message["body"])
    assert ack["seq"] == 1 and ack["client_msg_id"] == body["client_msg_id"]
    # WHEN the stream function gets the payload the message function sends
    stream = load_event("stream.json")
    stream.update(conversation_id=ack["conversation_id"], reply_to_seq=ack["seq"],
                  connection_id=connection_id)
    result = container("stream", stream)
    # THEN the reply streamed as deltas and a final frame, and was stored
    frames = received(connection_id)
    deltas = [f for f in frames if f["type"] == "delta"]
    (final,) = [f for f in frames if f["type"] == "final"]
    assert result["status"] == "complete" and final["seq"] == 2
    assert deltas and "".join(d["text"] for d in deltas) == final["text"]
    # AND a repeated async invoke (Lambda retries) does not answer twice
    assert container("stream", stream)["status"] == "skipped"
    # AND $disconnect drops the connection record
    disconnect = load_event("disconnect.json")
    disconnect["requestContext"]["connectionId"] = connection_id
    assert container("disconnect", disconnect)["statusCode"] == 200
    r = redis.Redis.from_url(redis_url)
    assert not list(r.scan_iter(match=f"*conn:{connection_id}"))
    r.close()


def test_bad_token_gets_401_and_no_record(container, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    for bad in ("REPLACE_WITH_TOKEN", token().replace(".", "x", 1)):
        connect = load_event("connect.json", REPLACE_WITH_TOKEN=bad)
        connect["requestContext"]["connectionId"] = "refused-conn="
        assert container("connect", connect)["statusCode"] == 401
    r = redis.Redis.from_url(redis_url)
    assert not list(r.scan_iter(match="*conn:refused-conn="))
    r.close()


def test_default_route_answers_unknown_action_with_an_error_frame(container) -> None:  # type: ignore[no-untyped-def]
    connection_id = f"conn-{uuid.uuid4().hex[:8]}="
    connect = load_event("connect.json", REPLACE_WITH_TOKEN=token())
    connect["requestContext"]["connectionId"] = connection_id
    container("connect", connect)
    default = load_event("default.json")
    default["requestContext"]["connectionId"] = connection_id
    container("message", default)
    errors = [f for f in received(connection_id) if f["type"] == "error"]
    assert errors and errors[-1]["code"] == "unknown_action"


def test_message_is_persisted_before_it_is_acknowledged(container, make_database) -> None:  # type: ignore[no-untyped-def]
    connection_id = f"conn-{uuid.uuid4().hex[:8]}="
    connect = load_event("connect.json", REPLACE_WITH_TOKEN=token())
    connect["requestContext"]["connectionId"] = connection_id
    container("connect", connect)
    message = load_event("message.json")
    message["requestContext"]["connectionId"] = connection_id
    container("message", message)
    (ack,) = [f for f in received(connection_id) if f["type"] == "ack"]
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT text FROM messages WHERE conversation_id = %s AND seq = %s",
                           (ack["conversation_id"], ack["seq"])).fetchone()
    assert row is not None and row[0] == json.loads(message["body"])["text"]


def test_the_stream_function_proposes_an_answer_from_a_resolved_conversation(  # type: ignore[no-untyped-def]
    container,
) -> None:
    # GIVEN the stream function's container (its first invocation applies the schema)
    missing = str(uuid.uuid4())
    assert container("stream", {"kind": "learn", "tenant_id": "demo",
                                "conversation_id": missing})["status"] == "skipped"
    # AND a conversation an agent answered and closed
    conversation_id = str(uuid.uuid4())
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('demo', 'demo')"
                     " ON CONFLICT (id) DO NOTHING")
        conn.execute("INSERT INTO conversations (id, tenant_id, visitor_id, status, owner,"
                     " last_seq) VALUES (%s, 'demo', 'v-1', 'closed', 'human', 2)",
                     (conversation_id,))
        conn.execute("INSERT INTO messages (conversation_id, seq, role, author, text) VALUES"
                     " (%s, 1, 'visitor', 'v-1', '发票丢了能补吗？邮箱 a.b@example.com'),"
                     " (%s, 2, 'agent', 'agent-1', '可以补开，在订单页申请即可。')",
                     (conversation_id, conversation_id))
    # WHEN the stream function gets what an agent's close sends
    result = container("stream", {"kind": "learn", "tenant_id": "demo",
                                  "conversation_id": conversation_id})
    # THEN a pair is proposed for review, the e-mail address redacted
    assert result["status"] == "proposed" and result["method"] == "extractive"
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT question, answer, status FROM learned_answers"
                           " WHERE conversation_id = %s", (conversation_id,)).fetchone()
    assert row is not None
    question, answer, status = row
    assert status == "pending" and answer == "可以补开，在订单页申请即可。"
    assert question.startswith("发票丢了能补吗？") and "a.b@example.com" not in question


def _frame(container: Callable[[str, dict[str, Any]], dict[str, Any]], connection_id: str,
           body: dict[str, Any]) -> None:
    event = load_event("message.json")
    event["requestContext"]["connectionId"] = connection_id
    event["body"] = json.dumps(body)
    assert container("message", event)["statusCode"] == 200


def test_the_message_function_takes_an_image_through_s3(  # type: ignore[no-untyped-def]
    container, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the template's bucket and a message function configured as the template does
    bucket = f"kefu-images-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("IMAGE_BUCKET", bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "kefu-MessageFunction")
    connection_id = f"conn-{uuid.uuid4().hex[:8]}="
    connect = load_event("connect.json", REPLACE_WITH_TOKEN=token())
    connect["requestContext"]["connectionId"] = connection_id
    assert container("connect", connect)["statusCode"] == 200
    photo = jpeg_with_exif(160, 120)
    # WHEN the visitor asks for a form on the $default route
    _frame(container, connection_id, {"action": "upload", "client_msg_id": "c-img",
                                      "content_type": "image/jpeg", "size": len(photo)})
    (form,) = [f for f in received(connection_id) if f["type"] == "upload"]
    # THEN it is an S3 presigned POST for this conversation's uploads
    assert form["url"].startswith(moto_endpoint) and "policy" in form["fields"]
    assert form["fields"]["key"] == (f"uploads/demo/{form['conversation_id']}/"
                                     f"{form['upload_id']}")
    # WHEN the browser posts the photo to S3 and sends the message
    posted = httpx.post(form["url"], data=form["fields"],
                        files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=30)
    assert posted.status_code in (200, 204), posted.text
    _frame(container, connection_id, {"action": "message", "client_msg_id": "c-img",
                                      "text": "", "image": form["upload_id"]})
    # THEN it is acknowledged, and the bucket keeps only the clean copy under images/
    (ack,) = [f for f in received(connection_id) if f["type"] == "ack"]
    assert ack["client_msg_id"] == "c-img"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"images/demo/{form['conversation_id']}/{form['upload_id']}"]
    clean = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert GPS_MARK not in clean and decoded(clean).size == (160, 120)
    # AND a sync links it with a presigned GET that works
    _frame(container, connection_id, {"action": "sync", "last_seq": 0})
    history = [f for f in received(connection_id) if f["type"] == "history"][-1]
    url = history["messages"][0]["image"]["url"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
    assert httpx.get(url, timeout=30).content == clean


def test_without_a_bucket_a_lambda_function_has_no_images(  # type: ignore[no-untyped-def]
    container, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a message function with no IMAGE_BUCKET (no disk to keep images on)
    monkeypatch.delenv("IMAGE_BUCKET", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "kefu-MessageFunction")
    connection_id = f"conn-{uuid.uuid4().hex[:8]}="
    connect = load_event("connect.json", REPLACE_WITH_TOKEN=token())
    connect["requestContext"]["connectionId"] = connection_id
    assert container("connect", connect)["statusCode"] == 200
    # WHEN a visitor asks for a form THEN it is refused, naming the message
    _frame(container, connection_id, {"action": "upload", "client_msg_id": "c-x",
                                      "content_type": "image/png", "size": 10})
    (error,) = [f for f in received(connection_id) if f["type"] == "error"]
    assert (error["code"], error["client_msg_id"]) == ("images_unavailable", "c-x")
