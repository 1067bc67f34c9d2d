"""Server-sent events from a byte stream: the ``data`` of each event, as bytes.

The provider's stream is parsed here rather than by the SDK, which builds and validates a
pydantic model for every chunk. Only what OpenAI-compatible providers send is needed: ``data:``
lines (several in one event are joined with a newline, as the SSE format says), comments and
other fields ignored, an event ending at a blank line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["json_loads", "sse_data"]

try:
    import orjson

    json_loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional (not in the Lambda layers)
    json_loads = json.loads

_MAX_EVENT = 1 << 20  # an event over 1 MiB is not a chat completion chunk


class SSEError(ValueError):
    """The stream broke the SSE format (an event too large)."""


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's data from ``chunks`` (events without data are skipped)."""
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield data[0] if len(data) == 1 else b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        buffer = buffer[start:]
        if len(buffer) > _MAX_EVENT:
            raise SSEError("server-sent event too large")
    tail = buffer.rstrip(b"\r")
    if tail.startswith(b"data:"):  # the last line without its newline
        value = tail[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:  # the last event without its blank line
        yield data[0] if len(data) == 1 else b"\n".join(data)
