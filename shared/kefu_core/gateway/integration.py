"""What the gateway does with the events it builds: the route integrations.

:class:`FlowIntegration` calls the flows in this process (``kefu run``); the local stack
(:mod:`kefu_core.local`) invokes the built Lambda functions with the same events instead, as
API Gateway's ``AWS_PROXY`` integrations do.
"""

from __future__ import annotations

from typing import Any, Protocol

from kefu_core.deps import Deps
from kefu_core.flows import handle_connect, handle_disconnect, handle_message

__all__ = ["FlowIntegration", "Integration"]


class Integration(Protocol):
    async def connect(self, event: dict[str, Any]) -> dict[str, Any]:
        """The ``$connect`` route: its ``statusCode`` accepts (200) or refuses the handshake."""

    async def message(self, event: dict[str, Any]) -> None:
        """A frame on ``message`` or ``$default``; replies travel through the management API."""

    async def disconnect(self, event: dict[str, Any]) -> None:
        """The ``$disconnect`` route (best effort)."""


class FlowIntegration:
    """The flows, called in this process with its dependencies."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def connect(self, event: dict[str, Any]) -> dict[str, Any]:
        return await handle_connect(event, self.deps)

    async def message(self, event: dict[str, Any]) -> None:
        await handle_message(event, self.deps)

    async def disconnect(self, event: dict[str, Any]) -> None:
        await handle_disconnect(event, self.deps)
