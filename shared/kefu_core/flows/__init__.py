"""Chat flows: what each API Gateway route (and the stream function) does.

Each flow takes the event (or the stream payload) and the process's :class:`~kefu_core.deps.Deps`
and returns what API Gateway expects from a Lambda proxy integration. Flows are imported on
first use, so a Lambda function loads only the flow it runs (the stream flow pulls in the LLM
adapter and the memory layer; ``connect`` and ``message`` do not).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kefu_core.flows.connect import handle_connect, handle_disconnect, refuse_unauthenticated
    from kefu_core.flows.message import handle_message
    from kefu_core.flows.stream import handle_stream
    from kefu_core.flows.stream_failure import handle_stream_failures

__all__ = ["ANSWER_PATH_ACTIONS", "handle_connect", "handle_disconnect", "handle_message",
           "handle_stream", "handle_stream_failures", "refuse_unauthenticated"]

# The client actions whose handling needs the answer path (kefu_llm, kefu_memory and their
# packages): opening or taking a conversation shows the customer's memory and business
# records, suggest drafts a reply with the tenant's engines. On AWS each of these has a route
# of its own to AgentFunction, which carries those layers and their secrets; every other action
# goes to the light MessageFunction (template.yaml, checked by the template tests).
ANSWER_PATH_ACTIONS = frozenset({"open", "take", "suggest"})

_WHERE = {
    "handle_connect": ".connect",
    "handle_disconnect": ".connect",
    "handle_message": ".message",
    "handle_stream": ".stream",
    "handle_stream_failures": ".stream_failure",
    "refuse_unauthenticated": ".connect",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(name)
