"""No token and no personal data in any log line, on every entry point.

Tokens travel in the WebSocket URL's query string; uvicorn's error logger prints that request
line. Visitors type phone numbers and e-mail addresses. At ``LOG_LEVEL=DEBUG`` too, none of it
may reach the server log: neither through ``kefu run`` (uvicorn, websockets, our own loggers)
nor through a Lambda function's Powertools logger.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from kefu_core.infra.logs import (
    JsonFormatter,
    RedactingFilter,
    TextFormatter,
    redact_log_text,
)
from kefu_core.security.tokens import issue_token
from tests.support.kefu_process import ROOT, kefu_command, kefu_run

SECRET = "log-test-secret-0123456789-abcdefghijklmnop"
PHONE = "13912345678"
EMAIL = "zhang.san@example.com"
MANAGEMENT_KEY = "AKIDLOGTEST:management-secret-0123456789"


def _token(secret: str = SECRET, role: str = "visitor") -> str:
    return issue_token(secrets=[secret], tenant_id="acme", subject=f"v-{uuid.uuid4().hex}",
                       role=role, ttl_s=600)  # type: ignore[arg-type]


# -- the filter and formatters, record by record -----------------------------------------------


def _record(msg: Any, *args: Any, exc: BaseException | None = None,
            **extra: Any) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord("kefu.test", logging.INFO, __file__, 10, msg, args or None,
                               exc_info)
    record.__dict__.update(extra)
    return record


def _raised(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


@pytest.mark.parametrize("text", [
    "GET /prod?token={jwt} HTTP/1.1",
    "/prod?foo=1&token={jwt}&x=2",
    "Authorization: Bearer {jwt}",
    "{{'authorization': 'Bearer {jwt}'}}",
    '{{"token": "{jwt}"}}',
    "a bare {jwt} in text",
])
def test_tokens_are_redacted_wherever_they_appear(text: str) -> None:
    # GIVEN a line carrying a real token in one of the shapes logs show it
    jwt = _token()
    line = text.format(jwt=jwt)
    # WHEN it is redacted
    clean = redact_log_text(line)
    # THEN no part of the token is left
    for part in jwt.split("."):
        assert part not in clean
    assert "[REDACTED]" in clean or "[TOKEN]" in clean


def test_the_filter_redacts_message_args_extra_and_exception_text() -> None:
    # GIVEN records carrying a token and personal data in each place a record can carry them
    jwt = _token()
    records = [
        _record("connect %s from %s", f"/prod?token={jwt}", PHONE),
        _record("visitor wrote", text=f"call me on {PHONE} or {EMAIL}", nested={"t": [jwt]}),
        _record("flow failed", exc=_raised(f"bad frame {EMAIL} token={jwt}")),
        _record({"event": {"queryStringParameters": {"token": jwt}, "body": PHONE}}),
    ]
    for record in records:
        # WHEN the filter of a handler we do not own sees it, then a plain formatter writes it
        assert RedactingFilter().filter(record)
        written = logging.Formatter("%(message)s %(text)s %(nested)s").format(record) \
            if hasattr(record, "text") else logging.Formatter("%(message)s").format(record)
        # THEN neither the token nor the values are written
        for secret in (*jwt.split("."), PHONE, EMAIL):
            assert secret not in written, written
    # AND the exception is still reported, redacted
    assert "ValueError: bad frame [EMAIL_1]" in logging.Formatter().format(records[2])


@pytest.mark.parametrize("formatter", [JsonFormatter(service="kefu"), TextFormatter()])
def test_our_formatters_redact_without_the_filter(formatter: logging.Formatter) -> None:
    # GIVEN a record with a token and personal data in args, extra and the exception
    jwt = _token()
    record = _record("ws %s", f"?token={jwt}", exc=_raised(f"number {PHONE}"),
                     conversation_id="c-1", text=f"mail {EMAIL}")
    # WHEN one of our formatters writes it (no filter in front)
    line = formatter.format(record)
    # THEN nothing sensitive is written, and the correlation field is
    for secret in (*jwt.split("."), PHONE, EMAIL):
        assert secret not in line, line
    assert "c-1" in line


def test_json_lines_carry_powertools_field_names_and_extra_fields() -> None:
    # GIVEN the gateway's JSON formatter
    formatter = JsonFormatter(service="kefu")
    # WHEN a record with correlation fields is written
    line = formatter.format(_record("reply finished", conversation_id="c-9", connection_id="k-1",
                                    tenant_id="acme"))
    # THEN it is one JSON object with the fields Powertools' Logger writes on Lambda
    data = json.loads(line)
    assert {"level", "location", "message", "timestamp", "service"} <= set(data)
    assert data["service"] == "kefu" and data["message"] == "reply finished"
    assert (data["conversation_id"], data["connection_id"], data["tenant_id"]) == \
        ("c-9", "k-1", "acme")


def test_a_failing_detector_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN PII detection that raises
    import kefu_core.infra.logs as logs

    def broken(text: str) -> str:
        raise RuntimeError("detector down")

    monkeypatch.setattr(logs, "_redact_pii", broken)
    # WHEN a record is filtered
    record = _record("visitor %s", PHONE)
    RedactingFilter().filter(record)
    # THEN the message is withheld rather than written in clear
    assert PHONE not in record.getMessage()
    assert "[REDACTED]" in record.getMessage()


# -- kefu run, a real process at LOG_LEVEL=DEBUG ------------------------------------------------


async def _chat(ws_url: str, good: str, bad: str) -> str:
    """The conversation id the gateway acknowledged the message in."""
    # A refused handshake (the request line with the bad token is logged by uvicorn) ...
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{ws_url}?token={bad}", open_timeout=30):
            pass
    assert refused.value.response.status_code == 401
    # ... and an accepted one, with a message carrying personal data.
    async with websockets.connect(f"{ws_url}?token={good}", open_timeout=30) as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-log-1",
                                  "text": f"我的手机号是 {PHONE}，邮箱 {EMAIL}，请回电"}))
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(120):
            while not frames or frames[-1]["type"] != "final":
                frames.append(json.loads(await ws.recv()))
    (ack,) = [f for f in frames if f["type"] == "ack"]
    return str(ack["conversation_id"])


def test_kefu_run_at_debug_logs_no_token_and_no_personal_data(
    tmp_path: Path, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    # GIVEN `kefu run` in production mode at LOG_LEVEL=DEBUG, with the default log format
    env = {"KEFU_ENV": "production", "TOKEN_SECRETS": SECRET, "LOG_LEVEL": "DEBUG",
           "DATABASE_URL": pg_dsn, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
           "GATEWAY_MANAGEMENT_KEYS": MANAGEMENT_KEY, "DATA_DIR": str(tmp_path / "data")}
    good, bad = _token(), _token(secret="forged-secret-0123456789-0123456789-xyz")
    with kefu_run(env, tmp_path / "out") as kefu:
        kefu.wait_until_serving()
        # WHEN a visitor is refused with a bad token, connects with a good one and sends
        # a message with a mobile number and an e-mail address
        conversation_id = asyncio.run(_chat(kefu.ws, good, bad))
        kefu.stop()
    output = kefu.output()
    # THEN the process did log (DEBUG really was on) ...
    assert "WebSocket" in output and "DEBUG" in output
    # ... but no token, no part of a token, and neither value appears anywhere in it
    for secret in (*good.split("."), *bad.split("."), PHONE, EMAIL):
        assert secret not in output, f"{secret!r} leaked into the log"
    # AND every log line is a JSON object with the Powertools field names
    lines = [line for line in (tmp_path / "out" / "stderr").read_text().splitlines() if line]
    records = [json.loads(line) for line in lines]
    assert all({"level", "location", "message", "timestamp", "service"} <= set(r)
               for r in records)
    # AND the extra= field that follows a conversation across replicas is kept: the reply's
    # lines carry the conversation's id
    assert any(r.get("conversation_id") == conversation_id and r["message"] == "reply finished"
               for r in records), lines[-20:]


# -- a Lambda function: the Powertools logger ---------------------------------------------------

_LAMBDA_SCRIPT = """
import json, logging, sys
# The Lambda runtime's own root handler, there before the function module is imported.
logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                    format="[%(levelname)s] %(name)s %(message)s")
sys.path[:0] = [{connect!r}]
import app
from kefu_core.lambda_runtime import logger
logger.debug("event %s", json.dumps({{"queryStringParameters": {{"token": {jwt!r}}}}}))
logger.info({{"raw_event": {{"headers": {{"Authorization": "Bearer " + {jwt!r}}}}}}},
            extra={{"connection_id": "k-1", "body": "tel " + {phone!r}}})
try:
    raise ValueError("frame from " + {email!r})
except ValueError:
    logger.exception("flow failed")
logging.getLogger("kefu.flows.message").warning("visitor wrote %s", {phone!r})
logging.getLogger().warning("root sees token=%s", {jwt!r})
"""


def test_lambda_logger_writes_no_token_and_no_personal_data() -> None:
    # GIVEN a function module imported as Lambda imports it, with Powertools' logger at DEBUG
    jwt = _token()
    script = _LAMBDA_SCRIPT.format(connect=str(ROOT / "functions" / "connect"), jwt=jwt,
                                   phone=PHONE, email=EMAIL)
    env = {"KEFU_ENV": "production", "TOKEN_SECRETS": SECRET, "POWERTOOLS_LOG_LEVEL": "DEBUG",
           "LOG_LEVEL": "DEBUG", "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_LAMBDA_FUNCTION_NAME": "kefu-connect"}
    # WHEN the logger and plain loggers write records carrying tokens and personal data
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, timeout=120, check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    # THEN the records were written ...
    assert "flow failed" in output and "k-1" in output and "visitor wrote" in output
    assert "root sees token=[TOKEN]" in done.stderr.decode()
    # ... without the token or the values
    for secret in (*jwt.split("."), PHONE, EMAIL):
        assert secret not in output, output
    # AND the Powertools JSON lines keep their shape
    lines = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    assert lines and all({"level", "location", "message", "service"} <= set(r) for r in lines)


def test_filter_and_formatter_survive_odd_records() -> None:
    # GIVEN records whose args do not match their format string, or are not strings at all
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter(service="kefu"))
    log = logging.getLogger(f"kefu.test.{uuid.uuid4().hex}")
    log.propagate = False
    log.addHandler(handler)
    # WHEN they are logged
    log.warning("two %s %s", PHONE)
    log.warning(12345)
    log.warning("bytes %r", PHONE.encode())
    # THEN each is written, none in clear
    written = stream.getvalue()
    assert len(written.splitlines()) == 3
    assert PHONE not in written


def test_a_rejected_input_repeated_by_a_validation_error_is_withheld() -> None:
    # GIVEN a validation error about a visitor's text (pydantic repeats the input in it)
    from pydantic import BaseModel, ValidationError

    class Frame(BaseModel):
        seq: int

    visitor_text = "我叫王小明，住在长宁路5号"
    with pytest.raises(ValidationError) as info:
        Frame(seq=visitor_text)  # type: ignore[arg-type]
    # WHEN a record carrying it is filtered
    record = _record("bad frame", exc=info.value)
    RedactingFilter().filter(record)
    # THEN the text is not written, the error still is
    written = logging.Formatter().format(record)
    assert "王小明" not in written and "input_value=[REDACTED]" in written


def test_kefu_refuses_an_unknown_log_format_or_level(tmp_path: Path) -> None:
    # GIVEN a typo in LOG_FORMAT or LOG_LEVEL
    for env in ({"LOG_FORMAT": "xml"}, {"LOG_LEVEL": "verbose"}):
        # WHEN kefu starts
        done = subprocess.run([*kefu_command(), "token", "--tenant", "t", "--subject", "s"],
                              env={"PATH": "/usr/bin:/bin", "TOKEN_SECRETS": SECRET, **env},
                              cwd=tmp_path, capture_output=True, timeout=60, check=False)
        # THEN it stops at once with a clear message instead of logging some other way
        assert done.returncode == 2
        assert next(iter(env)) in done.stderr.decode()


def test_the_detector_shortcut_covers_every_kind_kefu_llm_recognises() -> None:
    # GIVEN the kinds of personal data kefu_llm recognises (the log redaction skips the detector
    # for lines with no "@" and no run of ten digits: every kind listed here needs one of them)
    from kefu_llm._pii import KINDS

    assert set(KINDS) == {"ID", "CARD", "PHONE", "EMAIL"}, \
        "a new kind: check kefu_core.infra.logs._may_hold_pii still lets it through"
    # WHEN values of each kind, written the ways visitors write them, reach a log line
    values = ["13912345678", "139 1234 5678", "+86 139-1234-5678", "１３９１２３４５６７８",
              "(010) 1234-5678", "110101199003078515", "6222 0212 3456 7890 128",
              "zhang.san@example.com", "ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ"]
    for value in values:
        # THEN none survives redaction
        assert value not in redact_log_text(f"visitor wrote: {value}!"), value


_FORMAT_SCRIPT = """
import logging
from kefu_core.infra.logs import configure_logging
configure_logging()
logging.getLogger("kefu.flows.stream").info("reply finished", extra={"conversation_id": "c-77"})
"""


@pytest.mark.parametrize(("kefu_env", "json_lines"), [("production", True), ("development", False)])
def test_the_default_format_is_json_in_production_even_on_a_terminal(
    kefu_env: str, json_lines: bool
) -> None:
    # GIVEN the default LOG_FORMAT and a stderr that is a terminal
    import os
    import pty

    leader, follower = pty.openpty()
    env = {"KEFU_ENV": kefu_env, "PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(
        str(ROOT / p) for p in ("shared", "layers/adapter", "layers/memory"))}
    # WHEN the process logs a reply's line
    try:
        done = subprocess.run([sys.executable, "-c", _FORMAT_SCRIPT], env=env, cwd=ROOT,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower,
                              timeout=120, check=False)
        os.close(follower)
        written = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0, written
    (line,) = [ln for ln in written.decode().splitlines() if "reply finished" in ln]
    # THEN production writes a JSON line with the conversation id, development a readable one
    if json_lines:
        record = json.loads(line)
        assert record["message"] == "reply finished" and record["conversation_id"] == "c-77"
    else:
        assert line.split()[2:] == ["INFO", "kefu.flows.stream", "reply", "finished",
                                    "conversation_id=c-77"]
