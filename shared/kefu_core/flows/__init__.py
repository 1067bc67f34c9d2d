"""Chat flows: what each API Gateway route (and the stream function) does.

Each flow takes the event (or the stream payload) and the process's :class:`~kefu_core.deps.Deps`
and returns what API Gateway expects from a Lambda proxy integration.
"""

from .connect import handle_connect, handle_disconnect
from .message import handle_message
from .stream import handle_stream

__all__ = ["handle_connect", "handle_disconnect", "handle_message", "handle_stream"]
