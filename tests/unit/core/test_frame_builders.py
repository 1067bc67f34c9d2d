"""Server frames are shaped in one place (kefu_core.chat.protocol) and documented.

The AST scan reads every module of kefu_core: a dict literal (or ``dict(type=...)``, or an
assignment to ``frame["type"]``) carrying a frame ``type`` outside protocol.py is a frame
shaped by hand. ASGI messages (``http.*``, ``websocket.*``, ``lifespan.*``) also carry a
``type`` and are not frames.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import typing
from pathlib import Path

import kefu_core
from kefu_core.chat import protocol

ROOT = Path(kefu_core.__file__).parent
DOCS = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
_ASGI = re.compile(r"^(http|websocket|lifespan)\.")


def _is_frame_type(value: ast.expr) -> bool:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return not _ASGI.match(value.value)
    if isinstance(value, ast.JoinedStr):  # f"{kind}.complete": an ASGI reply to lifespan.*
        return not any(isinstance(part, ast.Constant) and str(part.value).startswith(".")
                       for part in value.values)
    return True  # a computed type: nobody can tell, so it is not allowed either


def _hand_made_frames(tree: ast.AST) -> list[int]:
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (isinstance(key, ast.Constant) and key.value == "type"
                        and _is_frame_type(value)):
                    lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "dict":
            lines += [node.lineno for k in node.keywords if k.arg == "type"]
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
                        and target.slice.value == "type" and _is_frame_type(node.value)):
                    lines.append(node.lineno)
    return sorted(lines)


def _offenders() -> list[str]:
    found: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "chat" / "protocol.py":
            continue
        lines = _hand_made_frames(ast.parse(path.read_text(encoding="utf-8")))
        found += [f"{path.relative_to(ROOT)}:{line}" for line in lines]
    return found


def test_no_server_frame_is_shaped_outside_protocol() -> None:
    # GIVEN every module of kefu_core but the protocol
    # WHEN their syntax trees are searched for frames written as dicts
    offenders = _offenders()
    # THEN there are none: every frame comes from a protocol builder
    assert offenders == [], f"server frames shaped outside chat/protocol.py: {offenders}"


def test_the_scan_finds_a_hand_made_frame() -> None:
    # GIVEN code that shapes frames by hand in the three ways the scan knows, and ASGI messages
    code = (
        'send({"type": "pong"})\n'
        'frame = dict(type="busy")\n'
        'frame["type"] = "state"\n'
        'await send({"type": "websocket.close", "code": 1008})\n'
        'await send({"type": f"{kind}.complete"})\n'
    )
    # WHEN it is scanned / THEN the frames are found and the ASGI messages are not
    assert _hand_made_frames(ast.parse(code)) == [1, 2, 3]


def _builders() -> dict[str, str]:
    """Each builder of protocol.py and the frame type its output carries."""
    built: dict[str, str] = {}
    for name, function in inspect.getmembers(protocol, inspect.isfunction):
        if function.__module__ != protocol.__name__ or not re.search(r"_frames?$", name):
            continue
        if name == "parse_client_frame":
            continue
        returned = typing.get_type_hints(function)["return"]
        if typing.get_origin(returned) is list:
            (returned,) = typing.get_args(returned)
        (frame_type,) = typing.get_args(typing.get_type_hints(returned)["type"])
        built[name] = frame_type
    return built


def _documented_types() -> set[str]:
    """The first cell of every table row of docs/protocol.md's "Server → client" section."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Server → client", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))


def test_every_builder_output_type_is_documented() -> None:
    # GIVEN the builders of protocol.py and the frame types they return
    built = _builders()
    # WHEN the server -> client tables of docs/protocol.md are read
    documented = _documented_types()
    # THEN every frame type built is documented there, and every type of the union is built
    assert set(built.values()) - documented == set()
    union = {typing.get_args(typing.get_type_hints(member)["type"])[0]
             for member in typing.get_args(protocol.ServerFrame)}
    assert union == set(built.values())


def test_frames_keep_their_key_order_on_the_wire() -> None:
    # GIVEN frames whose fields depend on who sent them / WHEN encoded
    # THEN the keys come in the order clients have always received
    assert protocol.encode(protocol.typing_frame(conversation_id="c", role="agent",
                                                 name="Li")) == (
        '{"type":"typing","role":"agent","name":"Li","conversation_id":"c"}')
    assert protocol.encode(protocol.typing_frame(conversation_id="c", role="visitor")) == (
        '{"type":"typing","role":"visitor","conversation_id":"c"}')
    assert protocol.encode(protocol.reply_not_started_frame(
        "m-1", reply_to=3, conversation_id="c")) == (
        '{"type":"error","code":"reply_not_started","message":"stored; resend to get the reply",'
        '"client_msg_id":"m-1","retry":true,"reply_to":3,"conversation_id":"c"}')
    assert protocol.encode(protocol.queue_position_frame(
        conversation_id="c", position=2, agents_online=False)) == (
        '{"type":"state","state":"queued","conversation_id":"c","position":2,'
        '"agents_online":false}')


def test_history_pages_stay_under_the_page_size() -> None:
    # GIVEN 40 messages of 100 characters and pages of 1 KB, one message larger than a page
    messages = [{"seq": i, "text": "x" * 100} for i in range(1, 41)]
    messages.append({"seq": 41, "text": "y" * 5000})
    # WHEN they are paged
    pages = protocol.history_frames(conversation_id="c", owner="bot", last_seq=41,
                                    messages=messages, page_bytes=1024)
    # THEN every page fits, all but the last say more, nothing is lost or reordered
    assert all(len(protocol.encode(page).encode()) <= 1024 for page in pages)
    assert [page["more"] for page in pages] == [True] * (len(pages) - 1) + [False]
    assert [m["seq"] for page in pages for m in page["messages"]] == list(range(1, 42))
    # AND the large message is cut to an eighth of a page, and says so
    last = pages[-1]["messages"][-1]
    assert last["truncated"] is True and last["text"] == "y" * 128
    assert json.loads(protocol.encode(pages[0]))["type"] == "history"
