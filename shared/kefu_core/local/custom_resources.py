"""CloudFormation custom resources of the template, run once when ``kefu local`` starts.

For each ``Custom::*`` (or ``AWS::CloudFormation::CustomResource``) whose ``ServiceToken`` is a
function of the template, its function is invoked with a ``Create`` request, as
CloudFormation would on a new stack; the response is ``PUT`` to a one-shot loopback URL (the
event's ``ResponseURL``). ``FAILED`` stops the stack with the function's reason, as a failed
resource fails ``sam deploy``. Here: the ``SchemaMigration`` resource, so the database is
migrated before any function serves (the functions only verify the schema).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kefu_core.local.errors import LocalStackError
from kefu_core.local.functions import FunctionPool
from kefu_core.local.template import StackContext, Template

__all__ = ["run_custom_resources"]

_CUSTOM = ("AWS::CloudFormation::CustomResource",)


class _Responses:
    def __init__(self) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()


def _server(responses: _Responses) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > 64 * 1024:
                self.send_response(413)
                self.end_headers()
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {"Status": "FAILED", "Reason": "response is not JSON"}
            with responses.lock:
                responses.bodies[self.path.strip("/")] = body
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


async def run_custom_resources(template: Template, pools: dict[str, FunctionPool],
                               context: StackContext) -> list[str]:
    """Create every custom resource; the logical ids created."""
    resources = [(logical_id, resource) for logical_id, resource in template.resources.items()
                 if str(resource.get("Type", "")).startswith("Custom::")
                 or resource.get("Type") in _CUSTOM]
    if not resources:
        return []
    responses = _Responses()
    server = _server(responses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    created = []
    try:
        for logical_id, resource in resources:
            props = template.resolve(resource.get("Properties") or {})
            token = str(props.get("ServiceToken", ""))
            pool = pools.get(token.rsplit(":", 1)[-1])
            if pool is None:
                raise LocalStackError(f"{logical_id}: ServiceToken {token} is not a function "
                                      "of this template")
            request_id = str(uuid.uuid4())
            event = {
                "RequestType": "Create", "ServiceToken": token,
                "ResponseURL": f"http://127.0.0.1:{port}/{request_id}",
                "StackId": (f"arn:aws:cloudformation:{context.region}:{context.account_id}:"
                            f"stack/{context.stack_name}/local"),
                "RequestId": request_id, "LogicalResourceId": logical_id,
                "ResourceType": resource.get("Type"),
                "ResourceProperties": props,
            }
            result = await pool.invoke(json.dumps(event).encode())
            with responses.lock:
                answer = responses.bodies.get(request_id)
            if answer is None:
                detail = result.payload.decode("utf-8", "replace")[:500]
                raise LocalStackError(f"{logical_id}: its function sent no response ({detail})")
            if answer.get("Status") != "SUCCESS":
                raise LocalStackError(f"{logical_id} failed: {answer.get('Reason')}")
            created.append(logical_id)
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
    return created
