"""How the admin API answers an error: one mapping from exception to HTTP status and detail.

Routes raise the core's exceptions (:mod:`kefu_core.infra.errors` and the stores' own) and
``HTTPException`` for answers of their own (404 through :func:`found`); nothing else turns an
exception into a response, and no detail carries exception text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from kefu_core.infra.errors import StoreError
from kefu_core.product.tenants import Conflict
from kefu_core.security.datakeys import DataKeyError, DataKeyUnavailable

__all__ = [
    "ANSWERED", "NOT_FOUND", "Answer", "Responses", "done", "found", "http_answer",
    "install_error_handlers",
]

logger = logging.getLogger("kefu.admin")

T = TypeVar("T")

# A route's ``responses=``: what its statuses mean (OpenAPI).
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "nothing of that id or name in the caller's tenant"}}


@dataclass(frozen=True)
class Answer:
    status: int
    detail: str
    log: str | None = None  # what the server log says, with the exception
    level: int = logging.WARNING


_INVALID = Answer(422, "invalid characters in the request")  # e.g. a NUL: the client's error


def http_answer(exc: Exception) -> Answer:
    """The answer of the admin API to ``exc``, one of :data:`ANSWERED`."""
    cause = exc.__cause__
    match exc:
        case Conflict():
            return Answer(409, "already exists")
        case DataKeyUnavailable():  # datakeys logged why (no key in production, unreadable)
            return Answer(503, "data encryption key unavailable")
        case DataKeyError():
            return Answer(503, "a stored secret cannot be decrypted",
                          log="stored tenant secret unreadable", level=logging.ERROR)
        case psycopg.DataError():
            return _INVALID
        case StoreError() if isinstance(cause, psycopg.DataError):
            return _INVALID
        case StoreError() if isinstance(cause, psycopg.errors.ForeignKeyViolation):
            return Answer(404, "tenant not found")  # the token's tenant is gone
        case StoreError():
            return Answer(503, "temporarily unavailable", log="store error in admin API")
    raise TypeError(f"the admin API has no answer to {type(exc).__name__}") from exc


# The exceptions http_answer answers (their subclasses too).
ANSWERED: tuple[type[Exception], ...] = (Conflict, psycopg.DataError, StoreError)


async def _answer(request: Request, exc: Exception) -> Response:
    answer = http_answer(exc)
    if answer.log:
        logger.log(answer.level, answer.log, exc_info=exc)
    return JSONResponse({"detail": answer.detail}, status_code=answer.status)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A malformed id in a path names nothing: 404, as for an id that does not exist."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and all(e["loc"][0] == "path" and str(e["type"]).startswith("uuid")
                      for e in errors):
        return JSONResponse({"detail": "not found"}, status_code=404)
    return await request_validation_exception_handler(request, exc)


def found(value: T | None) -> T:
    """``value``, or 404 when the store found nothing (in the caller's tenant)."""
    if value is None:
        raise HTTPException(status_code=404, detail="not found")
    return value


def done(changed: bool) -> None:
    """404 when a change (delete, revoke) found nothing to change in the caller's tenant."""
    if not changed:
        raise HTTPException(status_code=404, detail="not found")


def install_error_handlers(app: FastAPI) -> None:
    for kind in ANSWERED:
        app.add_exception_handler(kind, _answer)
    app.add_exception_handler(RequestValidationError, _invalid_request)
