"""The WebSocket API's route integrations, read from the template and run as Lambda invokes.

The gateway (:mod:`kefu_core.gateway`) speaks the API Gateway WebSocket contract; here each
route's ``AWS_PROXY`` integration invokes its function synchronously with the gateway's event,
as API Gateway does. ``$connect`` accepts the handshake only on a 200 ``statusCode``; a function
error refuses it with 500. Replies reach the client only through the management API.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from kefu_core.local.errors import InvocationError, LocalStackError
from kefu_core.local.functions import Result
from kefu_core.local.template import Template

__all__ = ["LambdaIntegration", "WebSocketApiSpec", "websocket_api"]

logger = logging.getLogger("kefu.local")
Invoke = Callable[[str, bytes], Awaitable[Result]]
_FUNCTION_IN_URI = re.compile(r"/functions/(arn:[^/]+:function:([^/:]+))(?::[^/]*)?/invocations")


class WebSocketApiSpec:
    """The WebSocket API of a template: its id, its stage and its route -> function table."""

    def __init__(self, *, logical_id: str, api_id: str, stage: str,
                 routes: dict[str, str]) -> None:
        self.logical_id = logical_id
        self.api_id = api_id
        self.stage = stage
        self.routes = routes

    @property
    def custom_routes(self) -> frozenset[str]:
        return frozenset(key for key in self.routes if not key.startswith("$"))


def websocket_api(template: Template) -> WebSocketApiSpec:
    """The one ``AWS::ApiGatewayV2::Api`` with ``ProtocolType: WEBSOCKET`` of the template."""
    resources = template.resources
    apis = [lid for lid, r in resources.items() if r.get("Type") == "AWS::ApiGatewayV2::Api"
            and (r.get("Properties") or {}).get("ProtocolType") == "WEBSOCKET"]
    if len(apis) != 1:
        raise LocalStackError(f"expected one WebSocket API in the template, found {len(apis)}")
    api = apis[0]
    selection = (resources[api].get("Properties") or {}).get("RouteSelectionExpression")
    if selection != "$request.body.action":
        raise LocalStackError(f"route selection {selection!r} is not supported "
                              "(only $request.body.action)")
    integrations: dict[str, str] = {}
    for lid, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::ApiGatewayV2::Integration":
            uri = str(template.resolve(props.get("IntegrationUri", "")))
            match = _FUNCTION_IN_URI.search(uri)
            if match and props.get("IntegrationType") == "AWS_PROXY":
                integrations[lid] = match[2]
    routes: dict[str, str] = {}
    stage = None
    for resource in resources.values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::ApiGatewayV2::Route":
            target = str(template.resolve(props.get("Target", "")))
            integration = next((lid for lid in integrations
                                if target == f"integrations/{template.resolve({'Ref': lid})}"),
                               None)
            if integration is not None:
                routes[str(props["RouteKey"])] = integrations[integration]
        elif resource.get("Type") == "AWS::ApiGatewayV2::Stage":
            stage = str(template.resolve(props.get("StageName")))
    if "$connect" not in routes:
        raise LocalStackError("the WebSocket API has no $connect route to a function")
    return WebSocketApiSpec(logical_id=api, api_id=str(template.resolve({"Ref": api})),
                            stage=stage or "prod", routes=routes)


class LambdaIntegration:
    """The gateway's :class:`~kefu_core.gateway.integration.Integration`, by Lambda invoke."""

    def __init__(self, spec: WebSocketApiSpec, invoke: Invoke) -> None:
        self._spec = spec
        self._invoke = invoke

    async def _call(self, route: str, event: dict[str, Any]) -> Any:
        function = self._spec.routes.get(route) or self._spec.routes.get("$default")
        if function is None:
            raise InvocationError("NoRoute", f"no integration for route {route}")
        result = await self._invoke(function, json.dumps(event).encode())
        if result.function_error:
            raise InvocationError("Function.Error", f"{function} failed on {route}")
        return result.json()

    async def connect(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await self._call("$connect", event)
        except InvocationError as exc:
            logger.warning("$connect integration failed: %s", exc)
            return {"statusCode": 500, "body": "Internal server error"}
        if not isinstance(answer, dict) or "statusCode" not in answer:
            logger.warning("$connect integration returned a malformed proxy response")
            return {"statusCode": 502, "body": "Bad Gateway"}
        return answer

    async def message(self, event: dict[str, Any]) -> None:
        await self._call(str(event["requestContext"]["routeKey"]), event)

    async def disconnect(self, event: dict[str, Any]) -> None:
        try:
            await self._call("$disconnect", event)
        except InvocationError as exc:
            logger.warning("$disconnect integration failed: %s", exc)
