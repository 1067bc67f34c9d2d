"""Types shared by several admin routers (each router keeps its own request and response
models)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

__all__ = ["ResourceName"]

# A prompt or engine secret name in a path: the pattern is enforced and published in the schema.
ResourceName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", max_length=64)]
