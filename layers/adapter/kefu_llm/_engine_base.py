"""The engine interface: one async stream per call, text pieces then how it ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from ._types import EngineCall, EngineOutcome

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

    ``stream`` yields pieces of the answer as they arrive, then, when it ends normally, one
    `EngineOutcome` as its last item (a stream without one ends as if it had yielded
    ``EngineOutcome()``, and one with neither text nor outcome counts as empty). It raises
    `EngineError` (or a subclass) on failure and never changes ``call``. Engines that need no
    key accept ``key=None``.
    """

    name: str
    provider: str
    model: str
    needs_key: bool
    local: bool
    supports_continuation: bool

    def stream(
        self, call: EngineCall, *, key: ApiKey | None
    ) -> AsyncIterator[str | EngineOutcome]: ...

    async def aclose(self) -> None: ...
