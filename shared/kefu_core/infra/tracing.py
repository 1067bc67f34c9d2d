"""X-Ray tracing of the hot path on Lambda, a no-op everywhere else.

The functions run with ``Tracing: Active``; :func:`trace_handler` wraps each Lambda handler
(Powertools ``capture_lambda_handler``: a ``## handler`` subsegment, cold start annotated,
botocore calls traced) and :func:`span` marks the main steps of a reply (``recall``,
``engine``, ``persist``) as subsegments. Outside Lambda, or with
``POWERTOOLS_TRACE_DISABLED=true``, no tracer is built and :func:`span` returns a shared empty
context manager: one function call and one attribute test per step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

__all__ = ["span", "trace_handler", "tracer"]

H = TypeVar("H", bound=Callable[..., Any])

_tracer: Any = None
_checked = False


def _enabled() -> bool:
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("AWS_SAM_LOCAL"):
        return False
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in (
        "1", "true", "yes")


def tracer() -> Any:
    """The process's Powertools Tracer, or None when tracing is off (or X-Ray's SDK absent)."""
    global _tracer, _checked
    if not _checked:
        _checked = True
        if _enabled():
            try:
                import aws_xray_sdk  # noqa: F401  (Powertools imports it lazily)
                from aws_lambda_powertools import Tracer

                _tracer = Tracer(patch_modules=("botocore",))
            except ImportError:  # aws-xray-sdk missing from the layers: run untraced
                _tracer = None
    return _tracer


def trace_handler(handler: H) -> H:
    """``handler`` as an X-Ray traced Lambda handler when tracing is on; else unchanged."""
    active = tracer()
    if active is None:
        return handler
    traced: H = active.capture_lambda_handler(handler, capture_response=False)
    return traced


@contextlib.asynccontextmanager
async def _subsegment(name: str) -> AsyncIterator[None]:
    async with _tracer.provider.in_subsegment_async(name=f"## {name}"):
        yield


class _AsyncNoop:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_ASYNC_NOOP = _AsyncNoop()


def span(name: str) -> contextlib.AbstractAsyncContextManager[None]:
    """``async with span("recall"):`` a subsegment when tracing, nothing otherwise."""
    if _tracer is None:
        return _ASYNC_NOOP
    return _subsegment(name)


def reset() -> None:
    """Forget the tracer (tests that change the environment)."""
    global _tracer, _checked
    _tracer, _checked = None, False
