"""One mapping from a core error to what a client sees: error frames and HTTP statuses.

Every error class says its frame code and message, whether a resend can succeed, and its HTTP
status (kefu_core.infra.errors); the frames (protocol.error_frame_for) and the HTTP surfaces
read it from there.
"""

from __future__ import annotations

import ast
import re
from http import HTTPStatus
from pathlib import Path

import pytest

import kefu_core
from kefu_core.chat.protocol import error_frame_for, not_stored_frame, reply_not_started_frame
from kefu_core.infra import errors
from kefu_core.infra.errors import Conflict, KefuError
from kefu_core.security.datakeys import DataKeyError, DataKeyUnavailable
from kefu_core.security.login_throttle import Throttled

DOCS = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"


def _all_errors() -> list[type[KefuError]]:
    found: list[type[KefuError]] = []
    pending: list[type[KefuError]] = [KefuError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending += kind.__subclasses__()
    return found


def test_every_core_error_has_a_frame_code_and_an_http_error_status() -> None:
    # GIVEN every error class of the core (the stores' own included)
    kinds = _all_errors()
    assert {Conflict, DataKeyError, DataKeyUnavailable, Throttled} <= set(kinds)
    for kind in kinds:
        # THEN its status is an HTTP error status and its code a word clients can match
        assert HTTPStatus(kind.status).value >= 400, kind
        assert re.fullmatch(r"[a-z_]+", kind.code), kind
        assert kind.message and kind.detail, kind


def _documented_codes() -> set[str]:
    """The codes in the first column of docs/protocol.md's error code table."""
    section = DOCS.read_text(encoding="utf-8").split("### Error codes", 1)[1]
    first_cells = re.findall(r"^\| ([^|]+) \|", section.split("\n## ", 1)[0], flags=re.M)
    return {code for cell in first_cells for code in re.findall(r"`([a-z_]+)`", cell)}


def _codes_given_in_code() -> dict[str, str]:
    """Codes written where an error with a code of its own is raised (``BadFrame("code",
    ...)``, ``HandoffError("code", ...)``) or a frame is built (``error_frame("code", ...)``)
    anywhere in kefu_core, with where."""
    found: dict[str, str] = {}
    root = Path(kefu_core.__file__).parent
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in {"BadFrame", "HandoffError", "error_frame"}
                    and node.args and isinstance(node.args[0], ast.Constant)):
                found[str(node.args[0].value)] = f"{path.relative_to(root)}:{node.lineno}"
    return found


def test_every_error_code_written_in_kefu_core_is_documented() -> None:
    # GIVEN the codes the core's frames can carry
    given = _codes_given_in_code()
    assert {"no_conversation", "not_yours", "bad_json"} <= set(given)
    # WHEN docs/protocol.md's error code table is read
    documented = _documented_codes()
    # THEN each of them is there
    assert {code: where for code, where in given.items() if code not in documented} == {}


@pytest.mark.parametrize("kind", [errors.KefuError, errors.Unauthorized,
                                  errors.ConversationClosed, errors.NotConnected,
                                  errors.RateLimited, errors.StoreError, errors.ReplyNotStarted])
def test_error_frames_sent_for_core_errors_use_documented_codes(kind: type[KefuError]) -> None:
    # GIVEN a core error the WebSocket flows answer with an error frame
    # WHEN its frame is built
    frame = error_frame_for(kind)
    # THEN its code is in docs/protocol.md's table and it says retry only when a resend helps
    assert frame["code"] in _documented_codes()
    assert frame.get("retry", False) is kind.retry


def test_an_error_frame_never_carries_the_exception_text() -> None:
    # GIVEN an error raised with a text meant for the log
    error = errors.Unauthorized("token of agent a-7 revoked at version 3")
    # WHEN it becomes an error frame
    frame = error_frame_for(error)
    # THEN the client reads the class's message, not the log text
    assert frame == {"type": "error", "code": "unauthorized",
                     "message": "your access changed: sign in again"}


def test_the_retry_frames_come_from_the_store_and_reply_errors() -> None:
    # GIVEN the two frames that ask a client to resend / THEN they say what the errors say
    assert not_stored_frame("m-1") == {
        "type": "error", "code": errors.StoreError.code, "message": errors.StoreError.message,
        "client_msg_id": "m-1", "retry": True}
    assert reply_not_started_frame(None)["code"] == errors.ReplyNotStarted.code == (
        "reply_not_started")


def test_http_statuses_of_the_errors_the_http_surfaces_answer() -> None:
    # GIVEN the errors the admin API, the gateway and the body limits answer
    # THEN each has the status the API reference documents
    assert (Conflict.status, Conflict.detail) == (409, "already exists")
    assert (DataKeyUnavailable.status, DataKeyUnavailable.detail) == (
        503, "data encryption key unavailable")
    assert (Throttled.status, Throttled(7).retry_after) == (429, 7)
    assert (errors.GoneError.status, errors.GoneError.aws_type) == (410, "GoneException")
    assert (errors.PayloadTooLarge.status, errors.reason_phrase(errors.PayloadTooLarge)) == (
        413, "Request Entity Too Large")
    assert (errors.Unauthorized.status, errors.Forbidden.status) == (401, 403)
