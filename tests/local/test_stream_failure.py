"""No silent loss when the stream function fails: its asynchronous invocation times out (a model
that never answers, a 1 s Timeout), Lambda's OnFailure destination record lands in the stream
failure queue (moto's SQS), and the consumer function stores the reply incomplete and tells the
visitor. A redelivered record changes nothing twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.local.helpers import Client, admin_client, connect
from tests.support.fake_openai import FakeOpenAI
from tests.support.local_stack import LocalStackProcess, run_local_stack

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def failing_stack(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStackProcess]:
    """A stack whose model never sends a token and whose stream function times out after 1 s."""
    with FakeOpenAI(mode="stall", after=0) as model:
        data_dir: Path = tmp_path_factory.mktemp("kefu-local-failing")
        env_vars = {"StreamFunction": {"OPENAI_BASE_URL": model.base_url,
                                       "OPENAI_MODEL": "stalling-model"}}
        with run_local_stack(data_dir=data_dir,
                             parameters={"DatabaseUrl": make_database()}, env_vars=env_vars,
                             extra_args=("--function-timeout", "StreamFunction=1")) as stack:
            yield stack


def _queue_url(stack: LocalStackProcess, logical_id: str) -> str:
    urls = stack.sqs().list_queues(QueueNamePrefix=f"kefu-local-{logical_id}")["QueueUrls"]
    matching = [u for u in urls if u.endswith(f"kefu-local-{logical_id}")]
    assert len(matching) == 1, urls
    return matching[0]


async def _drained(stack: LocalStackProcess, queue_url: str, within_s: float = 120) -> None:
    """Until nothing is waiting in the queue nor being processed from it."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + within_s
    while True:
        attributes = stack.sqs().get_queue_attributes(QueueUrl=queue_url,
                                                      AttributeNames=names)["Attributes"]
        if all(attributes[n] == "0" for n in names):
            return
        assert time.monotonic() < deadline, attributes
        await asyncio.sleep(0.2)


async def test_a_timed_out_stream_ends_the_reply_incomplete_and_tells_the_visitor(
    failing_stack: LocalStackProcess,
) -> None:
    stack = failing_stack
    async with admin_client(stack) as http:
        minted = await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    async with connect(stack, token) as ws:
        client = Client(ws)
        # GIVEN a visitor whose reply will never come from the model
        await client.send({"action": "message", "client_msg_id": "f-1", "text": "Where is it?"})
        ack = await client.until("ack")
        # WHEN the stream function exceeds its Timeout (killed, as Lambda kills it)
        final = await client.until("final", timeout=120)
        # THEN the visitor is told: the reply to its message ended incomplete
        assert final["reply_to"] == ack["seq"]
        assert final["status"] == "incomplete" and final["reason"] == "failed"
        assert final["conversation_id"] == ack["conversation_id"]
        # AND the reply is stored so: a replay shows it incomplete, never as whole
        await client.send({"action": "sync", "last_seq": 0})
        history = await client.until("history")
        replies = [m for m in history["messages"] if m["role"] == "assistant"]
        assert [(m["reply_to"], m["status"]) for m in replies] == [(ack["seq"], "incomplete")]
        # AND the log shows the timeout and the record sent to the OnFailure queue
        log = stack.log()
        assert "Task timed out after 1.00 seconds" in log
        assert "sent to its OnFailure queue (RetriesExhausted)" in log

        # WHEN the same failure record is delivered again (SQS delivers at least once)
        queue = _queue_url(stack, "StreamFailureQueue")
        record = {
            "version": "1.0", "timestamp": "2026-01-01T00:00:00.000Z",
            "requestContext": {"requestId": "redelivered", "condition": "RetriesExhausted",
                               "approximateInvokeCount": 1,
                               "functionArn": "arn:aws:lambda:us-east-1:123456789012:"
                                              "function:kefu-local-StreamFunction:$LATEST"},
            "requestPayload": {"kind": "stream", "tenant_id": "demo",
                               "conversation_id": ack["conversation_id"],
                               "reply_to_seq": ack["seq"], "text": "Where is it?"},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": "Sandbox.Timedout", "errorMessage": "timed out"},
        }
        stack.sqs().send_message(QueueUrl=queue, MessageBody=json.dumps(record))
        await _drained(stack, queue)
        # THEN nothing changes: no second final frame before the history asked for now,
        # still one incomplete reply
        await client.send({"action": "sync", "last_seq": 0})
        frame = await client.until("history")
        again = [m for m in frame["messages"] if m["role"] == "assistant"]
        assert again == replies
        assert len(client.of_type("final")) == 1
    # AND nothing sits in the consumer's dead-letter queue
    dlq = _queue_url(stack, "StreamFailureDeadLetterQueue")
    attributes = stack.sqs().get_queue_attributes(
        QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
