"""SQS for the local stack: the template's queues on moto, asynchronous invocations' ``OnFailure``
destination records, and SQS event source mappings.

- Every ``AWS::SQS::Queue`` is created on moto's SQS with its attributes (``RedrivePolicy``
  included, set once every queue exists).
- An asynchronous invocation that fails for good (function error, ``Timeout``, ``MemorySize``,
  init error, or older than ``MaximumEventAgeInSeconds``) sends Lambda's destination record
  (``version``, ``timestamp``, ``requestContext`` with ``condition`` and
  ``approximateInvokeCount``, ``requestPayload``, ``responseContext``, ``responsePayload``) to
  the function's ``OnFailure`` queue.
- An ``SQS`` event of a function polls its queue as an event source mapping does: batches of up
  to ``BatchSize`` records in Lambda's SQS event shape, deleted when the invocation succeeds; with
  ``ReportBatchItemFailures`` only those not listed in ``batchItemFailures``. What is not deleted
  comes back after the queue's visibility timeout (and, past ``maxReceiveCount``, moves to its
  dead-letter queue: moto applies the redrive policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from kefu_core.local.functions import Result
from kefu_core.local.template import FunctionSpec, QueueSpec, SqsSource

__all__ = ["SqsPoller", "create_queues", "destination_record", "sqs_client"]

logger = logging.getLogger("kefu.local")
Invoke = Callable[[bytes], Awaitable[Result]]


def sqs_client(endpoint_url: str, region: str) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=endpoint_url, region_name=region,
                        aws_access_key_id="local", aws_secret_access_key="local")


def create_queues(client: Any, queues: list[QueueSpec]) -> dict[str, str]:
    """Create the queues; their URLs by ARN."""
    urls: dict[str, str] = {}
    for queue in queues:
        attributes = {k: v for k, v in queue.attributes.items() if k != "RedrivePolicy"}
        urls[queue.arn] = client.create_queue(QueueName=queue.name,
                                              Attributes=attributes)["QueueUrl"]
    for queue in queues:  # the dead-letter queues exist now
        if "RedrivePolicy" in queue.attributes:
            client.set_queue_attributes(
                QueueUrl=urls[queue.arn],
                Attributes={"RedrivePolicy": queue.attributes["RedrivePolicy"]})
    return urls


def destination_record(spec: FunctionSpec, *, request_id: str, payload: bytes,
                       result: Result | None, condition: str, attempts: int) -> dict[str, Any]:
    """Lambda's record for an asynchronous invocation that failed for good."""
    try:
        request_payload: Any = json.loads(payload or b"null")
    except ValueError:
        request_payload = payload.decode("utf-8", "replace")
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{spec.arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request_payload,
    }
    if result is not None:
        record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST",
                                     "functionError": result.function_error or "Unhandled"}
        try:
            record["responsePayload"] = result.json()
        except ValueError:
            record["responsePayload"] = result.payload.decode("utf-8", "replace")
    return record


def _sqs_event(messages: list[dict[str, Any]], source: SqsSource, region: str
               ) -> dict[str, Any]:
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m.get("Body", ""),
        "attributes": m.get("Attributes") or {},
        "messageAttributes": m.get("MessageAttributes") or {},
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": region,
    } for m in messages]}


class SqsPoller:
    """One SQS event source mapping: polls the queue, invokes the function with batches."""

    def __init__(self, *, client: Any, queue_url: str, source: SqsSource, region: str,
                 invoke: Invoke, function: str, idle_wait_s: int = 1) -> None:
        self._client = client
        self._queue_url = queue_url
        self._source = source
        self._region = region
        self._invoke = invoke
        self._function = function
        self._idle_wait_s = idle_wait_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("%s: polling %s failed", self._function, self._queue_url,
                               exc_info=True)
                await asyncio.sleep(1.0)

    async def poll_once(self) -> int:
        """Receive one batch (long polling briefly) and hand it to the function."""
        received = await asyncio.to_thread(
            self._client.receive_message, QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(10, max(1, self._source.batch_size)),
            WaitTimeSeconds=self._idle_wait_s, AttributeNames=["All"],
            MessageAttributeNames=["All"])
        messages: list[dict[str, Any]] = received.get("Messages") or []
        if not messages:
            return 0
        started = time.monotonic()
        result = await self._invoke(json.dumps(
            _sqs_event(messages, self._source, self._region)).encode())
        done = self._succeeded(messages, result)
        if done:
            await asyncio.to_thread(
                self._client.delete_message_batch, QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                         for i, m in enumerate(done)])
        logger.debug("%s: batch of %d from SQS, %d deleted, %.0f ms", self._function,
                     len(messages), len(done), (time.monotonic() - started) * 1000)
        return len(messages)

    def _succeeded(self, messages: list[dict[str, Any]], result: Result
                   ) -> list[dict[str, Any]]:
        if result.function_error:
            return []  # the whole batch comes back after the visibility timeout
        if not self._source.report_batch_item_failures:
            return messages
        try:
            body = result.json()
            failed = {str(f["itemIdentifier"]) for f in
                      (body or {}).get("batchItemFailures") or []}
        except (ValueError, TypeError, KeyError, AttributeError):
            return []  # an unreadable response fails the batch, as Lambda does
        return [m for m in messages if m["MessageId"] not in failed]
