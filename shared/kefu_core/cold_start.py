"""A Lambda function's imports without the cyclic garbage collector.

Importing a handler creates tens of thousands of long-lived objects (modules, classes, pydantic
schemas) and next to no cyclic garbage, yet the collector ran about 130 times during the
imports, scanning them again and again: about 60 ms of CPU of each ``connect``, ``message`` and
``stream`` cold start (``python -X importtime`` and ``gc.callbacks``, bench/lambda_figures.py's
layout). Each ``functions/*/app.py`` imports inside :func:`imports_without_gc`; afterwards the
objects are frozen (``gc.freeze``: the permanent generation), so the collections that run
during invocations do not scan them either.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["imports_without_gc"]


@contextmanager
def imports_without_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, then freeze what it created; the
    collector is on again afterwards, even when an import in the block fails."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()
