"""The stream function's failures, from its ``OnFailure`` destination (an SQS queue).

``message`` invokes ``stream`` asynchronously with no retry (a retried reply would come twice,
minutes late). When that invocation fails for good (the function crashed, ran out of memory,
exceeded its ``Timeout``, could not start, or waited past ``MaximumEventAgeInSeconds`` while
throttled) Lambda sends a destination record to the queue::

    {"version": "1.0", "timestamp": "...",
     "requestContext": {"requestId": "...", "functionArn": "...",
                        "condition": "RetriesExhausted" | "EventAgeExceeded",
                        "approximateInvokeCount": 1},
     "requestPayload": {...the StreamPayload...},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Unhandled"},
     "responsePayload": {"errorType": "...", "errorMessage": "..."}}

Each record settles the reply it was for (``ConversationStore.settle_failed_reply``: the
reply is stored ``incomplete``, as a replay would after the stale-reply sweep, or, never
started, as an empty ``incomplete`` reply) and the conversation's open connections get the
``final`` frame (``status: incomplete``, ``reason: failed``). Settling is a state change on the
reply row, so a redelivered record does nothing twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from kefu_core.chat.delivery import Audience
from kefu_core.chat.events import StreamPayload
from kefu_core.chat.protocol import final_frame
from kefu_core.deps import Deps

__all__ = ["FAILED_REASON", "handle_stream_failure", "handle_stream_failures"]

logger = logging.getLogger("kefu.flows.stream_failure")
FAILED_REASON = "failed"


def _payload(record: dict[str, Any]) -> StreamPayload | None:
    """The stream payload of one destination record; ``None`` for a record that is not one
    (logged, then dropped: retrying would not make it one)."""
    request = record.get("requestPayload")
    if not isinstance(request, dict) or request.get("kind", "stream") != "stream":
        return None
    try:
        return StreamPayload.model_validate(request)
    except ValidationError:
        return None


async def handle_stream_failure(record: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """Settle the reply of one failed stream invocation and tell the visitor."""
    payload = _payload(record)
    context = record.get("requestContext") or {}
    response = record.get("responsePayload") if isinstance(
        record.get("responsePayload"), dict) else {}
    if payload is None:
        logger.error("not a stream failure record: dropped",
                     extra={"condition": context.get("condition")})
        return {"status": "dropped"}
    logger.warning(
        "stream invocation failed", extra={
            "conversation_id": payload.conversation_id,
            "condition": context.get("condition"),
            "request_id": context.get("requestId"),
            "error_type": (response or {}).get("errorType"),
        })
    settled = await deps.conversations.settle_failed_reply(
        tenant_id=payload.tenant_id, conversation_id=payload.conversation_id,
        reply_to=payload.reply_to_seq, reason=FAILED_REASON)
    if settled is None:
        return {"status": "nothing to do"}
    # The reply the stream function never finished counts as an incomplete one.
    deps.metrics.reply_finished(status="incomplete", first_token_ms=None, fallback_used=False)
    deps.metrics.error(code="stream_failed")
    await Audience(deps, payload.conversation_id).send(final_frame(
        conversation_id=payload.conversation_id, seq=settled.seq,
        reply_to=payload.reply_to_seq, text=settled.text, status="incomplete", engine=None,
        reason=FAILED_REASON,
    ))
    return {"status": "settled", "seq": settled.seq}


async def handle_stream_failures(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """An SQS batch of destination records. A record whose settling fails (a store is down)
    is reported in ``batchItemFailures`` and comes back after the queue's visibility timeout
    (the others are deleted); after the queue's ``maxReceiveCount`` it lands in the
    consumer's dead-letter queue."""
    failures: list[dict[str, str]] = []
    for message in event.get("Records") or []:
        message_id = str(message.get("messageId", ""))
        try:
            record = json.loads(message.get("body") or "null")
        except ValueError:
            logger.error("stream failure record is not JSON: dropped",
                         extra={"message_id": message_id})
            continue
        if not isinstance(record, dict):
            logger.error("stream failure record is not an object: dropped",
                         extra={"message_id": message_id})
            continue
        try:
            await handle_stream_failure(record, deps)
        except Exception:
            logger.exception("cannot settle a failed stream", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
