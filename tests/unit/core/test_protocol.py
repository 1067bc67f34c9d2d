"""Client frames are validated before anything is stored; every refusal has a precise code."""

from __future__ import annotations

import json

import pytest

from kefu_core.chat.protocol import MessageFrame, PingFrame, SyncFrame, parse_client_frame
from kefu_core.infra.errors import BadFrame

LIMITS = {"max_frame_bytes": 32 * 1024, "max_text_chars": 100}


def parse(body: str) -> object:
    return parse_client_frame(body, **LIMITS)


def test_valid_message_is_parsed_and_trimmed() -> None:
    # GIVEN a well-formed message frame with surrounding spaces
    body = json.dumps({"action": "message", "client_msg_id": "c-1", "text": "  你好  "})
    # WHEN it is parsed
    frame = parse(body)
    # THEN it is a MessageFrame with the trimmed text
    assert isinstance(frame, MessageFrame)
    assert frame.text == "你好"
    assert frame.client_msg_id == "c-1"


def test_sync_and_ping() -> None:
    assert isinstance(parse('{"action":"sync","last_seq":7}'), SyncFrame)
    assert isinstance(parse('{"action":"ping"}'), PingFrame)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "bad_json"),
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"action":"dance"}', "unknown_action"),
        ('{"text":"hi"}', "unknown_action"),
        ('{"action":"message","text":"hi"}', "invalid_frame"),
        ('{"action":"message","client_msg_id":5,"text":"hi"}', "invalid_frame"),
        ('{"action":"message","client_msg_id":"bad id!","text":"hi"}', "invalid_frame"),
        ('{"action":"message","client_msg_id":"c-1","text":"   "}', "empty_text"),
        ('{"action":"message","client_msg_id":"c-1","text":' + json.dumps("x" * 101) + "}",
         "text_too_long"),
        ('{"action":"sync","last_seq":-1}', "invalid_frame"),
        ('{"action":"sync","last_seq":"abc"}', "invalid_frame"),
    ],
)
def test_bad_frames_get_precise_codes(body: str, code: str) -> None:
    # GIVEN a malformed frame / WHEN parsed / THEN BadFrame names what is wrong
    with pytest.raises(BadFrame) as info:
        parse(body)
    assert info.value.code == code


def test_oversize_frame_is_refused_before_json_parsing() -> None:
    # GIVEN a frame over the byte limit
    body = json.dumps({"action": "message", "client_msg_id": "c-1", "text": "字" * 20000})
    # WHEN parsed / THEN frame_too_large
    with pytest.raises(BadFrame) as info:
        parse(body)
    assert info.value.code == "frame_too_large"


def test_error_keeps_client_msg_id_so_the_client_can_match_it() -> None:
    with pytest.raises(BadFrame) as info:
        parse('{"action":"message","client_msg_id":"c-9","text":""}')
    assert info.value.client_msg_id == "c-9"


@pytest.mark.parametrize("body", [
    '{"action":"sync","last_seq":true}',
    '{"action":"sync","last_seq":"5"}',
    '{"action":"message","client_msg_id":"c-1","text":123}',
])
def test_fields_are_strictly_typed(body: str) -> None:
    with pytest.raises(BadFrame) as info:
        parse(body)
    assert info.value.code == "invalid_frame"


@pytest.mark.parametrize("body", [
    '{"action":"message","client_msg_id":"c-1","text":"a\\u0000b"}',
    '{"action":"message","client_msg_id":"c-1","text":"hi \\ud800"}',
])
def test_text_no_store_can_keep_is_refused(body: str) -> None:
    with pytest.raises(BadFrame) as info:
        parse(body)
    assert info.value.code == "bad_encoding"
