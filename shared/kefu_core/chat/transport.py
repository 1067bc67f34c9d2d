"""Posting frames to WebSocket connections, and invoking the stream function.

Two implementations of each seam:
- on AWS: the API Gateway management API (boto3 ``apigatewaymanagementapi``) and Lambda's
  asynchronous invoke;
- self-hosted: the gateway delivers in-process (or over Redis pub/sub to another replica) and
  runs the stream coroutine as a background task (see :mod:`kefu_core.gateway`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from kefu_core.infra.errors import GoneError, TransportError

__all__ = ["ApiGatewayPoster", "LambdaInvoker", "Poster", "StreamInvoker", "TaskInvoker"]

logger = logging.getLogger("kefu.transport")


class Poster(Protocol):
    async def post(self, connection_id: str, data: str) -> None:
        """Deliver one frame; raise :class:`GoneError` when the connection no longer exists."""

    async def close(self, connection_id: str) -> None:
        """Disconnect a connection (best effort)."""


class StreamInvoker(Protocol):
    async def invoke(self, payload: dict[str, Any]) -> None:
        """Start the stream flow for ``payload`` without waiting for it."""


class ApiGatewayPoster:
    """The API Gateway management API through boto3 (a real client, any endpoint_url)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def for_endpoint(cls, endpoint_url: str, *, region: str) -> ApiGatewayPoster:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=50),
        )
        return cls(client)

    async def post(self, connection_id: str, data: str) -> None:
        await asyncio.to_thread(self._post_sync, connection_id, data)

    def _post_sync(self, connection_id: str, data: str) -> None:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data.encode())
        except self._client.exceptions.GoneException as exc:  # a ClientError: catch it first
            raise GoneError(connection_id) from exc
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410:
                raise GoneError(connection_id) from exc
            raise TransportError("post_to_connection failed") from exc
        except BotoCoreError as exc:
            raise TransportError("post_to_connection failed") from exc

    async def close(self, connection_id: str) -> None:
        try:
            await asyncio.to_thread(self._client.delete_connection, ConnectionId=connection_id)
        except (ClientError, BotoCoreError):
            logger.info("delete_connection failed", extra={"connection_id": connection_id})


class LambdaInvoker:
    """Asynchronous (``Event``) invoke of the stream function; returns once Lambda queued it."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function = function_name

    @classmethod
    def for_function(cls, function_name: str, *, region: str) -> LambdaInvoker:
        import boto3

        return cls(boto3.client("lambda", region_name=region), function_name)

    async def invoke(self, payload: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self._client.invoke,
                FunctionName=self._function,
                InvocationType="Event",
                Payload=json.dumps(payload).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransportError("cannot invoke the stream function") from exc


class TaskInvoker:
    """Runs the stream flow as a background task in this process (self-hosted gateway)."""

    def __init__(self, run: Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]) -> None:
        self._run = run
        self._tasks: set[asyncio.Task[Any]] = set()

    async def invoke(self, payload: dict[str, Any]) -> None:
        task: asyncio.Task[Any] = asyncio.create_task(self._run(payload))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("stream task failed", exc_info=task.exception())

    async def drain(self, within_s: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within_s)

    @property
    def pending(self) -> int:
        return len(self._tasks)
