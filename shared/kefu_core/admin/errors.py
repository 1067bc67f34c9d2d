"""How the admin API answers an exception.

The status and detail of a core error are its class's (``status``, ``detail``: the one mapping
in :mod:`kefu_core.infra.errors`). Only what a class cannot know is decided here: a store error
caused by the client's own data (a NUL character: 422) or by the token's tenant being gone
(404), and a malformed id in a path (404, like an unknown id). Routes raise the core's
exceptions, or ``HTTPException`` through :func:`found` and :func:`done` for a 404; no other
code turns an exception into a response, and no detail carries exception text.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from kefu_core.infra.errors import KefuError, RateLimited, StoreError
from kefu_core.security.datakeys import DataKeyError, DataKeyUnavailable

__all__ = ["NOT_FOUND", "Responses", "done", "found", "http_answer", "install_error_handlers"]

logger = logging.getLogger("kefu.admin")

T = TypeVar("T")

# A route's ``responses=``: what its statuses mean (OpenAPI).
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "nothing of that id or name in the caller's tenant"}}

# A numeric id in a path that is not a number, or out of range (curated answers' ids).
_NUMBER_ID_ERRORS = frozenset({"int_parsing", "greater_than_equal", "less_than_equal"})
_INVALID = (422, "invalid characters in the request")  # e.g. a NUL: the client's error


def http_answer(exc: KefuError | psycopg.DataError) -> tuple[int, str]:
    """The status and detail the admin API answers ``exc`` with."""
    cause = exc.__cause__
    if isinstance(exc, psycopg.DataError):
        return _INVALID
    if isinstance(exc, StoreError) and not isinstance(exc, DataKeyError):
        if isinstance(cause, psycopg.DataError):
            return _INVALID
        if isinstance(cause, psycopg.errors.ForeignKeyViolation):  # the token's tenant is gone
            return 404, "tenant not found"
    return exc.status, exc.detail


def _log(exc: Exception, status: int) -> None:
    if isinstance(exc, DataKeyUnavailable):
        return  # datakeys logged why (no key in production, unreadable key secret)
    if isinstance(exc, DataKeyError):
        logger.error("stored tenant secret unreadable: %s", exc)
    elif status >= 500:
        logger.warning("store error in admin API" if isinstance(exc, StoreError)
                       else "error in admin API", exc_info=exc)


async def _answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KefuError | psycopg.DataError)
    status, detail = http_answer(exc)
    _log(exc, status)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A malformed id in a path names nothing: 404, as for an id that does not exist."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and all(e["loc"][0] == "path" and (str(e["type"]).startswith("uuid")
                                                  or e["type"] in _NUMBER_ID_ERRORS)
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
    app.add_exception_handler(KefuError, _answer)
    app.add_exception_handler(psycopg.DataError, _answer)
    app.add_exception_handler(RequestValidationError, _invalid_request)
