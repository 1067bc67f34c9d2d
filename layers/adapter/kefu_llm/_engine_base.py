"""The engine interface: one async stream of text pieces per call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from ._types import EngineCall

__all__ = ["ApiKey", "Engine"]


class ApiKey(Protocol):
    """A key as the engine sees it: an id safe to log and the secret value."""

    @property
    def id(self) -> str: ...

    @property
    def value(self) -> str: ...


@runtime_checkable
class Engine(Protocol):
    """An LLM behind one async streaming interface.

    ``stream`` yields pieces of the answer as they arrive and raises `EngineError` (or a
    subclass) on failure; a stream that ends normally sets ``call.finish_reason``. Engines that
    need no key accept ``key=None``.
    """

    name: str
    provider: str
    model: str
    needs_key: bool
    local: bool
    supports_continuation: bool

    def stream(self, call: EngineCall, *, key: ApiKey | None) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
