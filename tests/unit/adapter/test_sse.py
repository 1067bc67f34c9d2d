"""The provider's stream is parsed from bytes: events split anywhere across network chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kefu_llm._sse import SSEError, sse_data


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _events(*parts: bytes) -> list[bytes]:
    return [event async for event in sse_data(_chunks(*parts))]


async def test_events_split_across_chunks_come_out_whole() -> None:
    # GIVEN a stream cut in the middle of a line, with CRLF endings, a comment and an id field
    parts = (b'data: {"a":', b' 1}\r\n\r\n: keep-alive\n\nid: 7\ndata:{"b":2}\n',
             b"\ndata: [DONE]\n\n")
    # WHEN it is parsed THEN each event's data comes out once, in order, comments skipped
    assert await _events(*parts) == [b'{"a": 1}', b'{"b":2}', b"[DONE]"]


async def test_multi_line_data_is_joined_and_a_last_event_without_blank_line_counts() -> None:
    assert await _events(b"data: one\ndata: two\n\ndata: tail") == [b"one\ntwo", b"tail"]


async def test_an_endless_line_is_refused() -> None:
    # GIVEN a provider that never ends its line
    with pytest.raises(SSEError):
        # WHEN more than a megabyte arrives without a newline THEN the stream is refused
        await _events(*(b"x" * 65536 for _ in range(20)))
