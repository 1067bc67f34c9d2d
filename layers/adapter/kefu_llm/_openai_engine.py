"""An engine for any OpenAI-compatible chat completions API, on the official SDK.

The base URL decides the provider: OpenAI, DeepSeek, Qwen (DashScope compatible mode), Ollama
(``/v1``), vLLM, llama.cpp's server... One `AsyncOpenAI` client per key shares one HTTP
connection pool; the SDK's own retries are off (the router decides what happens next).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._engine_base import ApiKey
from ._exceptions import (
    ConfigurationError,
    EngineError,
    EngineHTTPError,
    EngineTimeout,
    KeyUnavailableError,
    StreamError,
)
from ._sse import json_loads, sse_data
from ._types import EngineCall, EngineOutcome
from .netguard import OutboundPolicy, UnsafeURL, check_url

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAICompatibleEngine", "parse_retry_after", "preload_sdk"]

_PASSAGES_HEAD = {
    "zh": "以下是知识库中与问题相关的资料，请据此回答；资料中没有的内容请如实说明不知道：",
    "en": "Knowledge-base passages relevant to the question. Answer from them; say you do not know "
    "when they do not cover it:",
}
_PLACEHOLDER_NOTE = {
    "zh": "文中形如 [PHONE_1] 的方括号标记代表已隐藏的个人信息，需要时请原样照抄标记。",
    "en": "Bracketed markers like [PHONE_1] stand for hidden personal data; copy them verbatim "
    "when you need them.",
}


def preload_sdk() -> None:
    """Import the SDK and the HTTP stack its first request pulls in (seconds of imports on a
    busy machine), for a long-running process to call off its event loop before it serves:
    the engines import them on first use, which would otherwise stall every connection while
    the first reply starts."""
    import openai
    import openai.resources.chat.completions  # the client loads it lazily

    client = openai.AsyncOpenAI(api_key="preload", base_url="http://127.0.0.1:9/v1")
    _ = client.chat.completions.with_streaming_response  # resolves the lazy resources
    import anyio._backends._asyncio  # noqa: F401  (the transport's backend, loaded on send)


_POOL_SIZE = 64  # connections per pool (see OpenAICompatibleEngine.__init__)


@dataclass
class _Pool:
    """One HTTP client's connection pool, the SDK clients over it (one per API key) and the
    replies streaming through it."""

    http_client: Any
    root: AsyncOpenAI | None = None
    clients: dict[str, AsyncOpenAI] = field(default_factory=dict)
    in_flight: int = 0


_DRAIN_S = 1.0  # how long the end of a body may take after [DONE]


async def _read_to_end(events: AsyncIterator[bytes]) -> None:
    """Read a response's body to its end after ``[DONE]``: a response closed unread closes its
    connection too, and the next reply opens (over HTTPS, handshakes) a new one. A body that
    does not end within ``_DRAIN_S`` (a proxy holding it open) is left: the reply is complete,
    only that connection is not reused."""
    try:
        async with asyncio.timeout(_DRAIN_S):
            async for _ in events:
                pass
    except Exception:  # the reply is complete; only its connection is not kept
        return


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms:
            return max(float(ms) / 1000.0, 0.0)
        raw = headers.get("retry-after")
    except Exception:
        return None
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    import email.utils
    import time

    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def build_messages(
    call: EngineCall, *, redacted: bool, images: bool = False
) -> list[dict[str, Any]]:
    """The chat messages sent to the provider: passages join as a system message; with
    ``images`` (an engine that reads them) a message's pictures follow its text as
    ``image_url`` parts, otherwise they are left out."""
    with_images = _with_images(call) if images and call.images else None
    lang = "zh" if call.language.startswith("zh") else "en"
    extra: list[str] = []
    if call.passages:
        extra.append(
            _PASSAGES_HEAD[lang]
            + "\n"
            + "\n".join(f"[{i + 1}] {p}" for i, p in enumerate(call.passages))
        )
    if redacted:
        extra.append(_PLACEHOLDER_NOTE[lang])
    if not extra:
        return with_images or list(call.messages)
    messages: list[dict[str, Any]] = with_images or list(call.messages)
    at = 0
    while at < len(messages) and messages[at].get("role") == "system":
        at += 1
    messages.insert(at, {"role": "system", "content": "\n\n".join(extra)})
    return messages


def _with_images(call: EngineCall) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(call.messages):
        pictures = call.images.get(index)
        if not pictures:
            messages.append(message)
            continue
        parts: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}]
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in pictures]
        messages.append({"role": message["role"], "content": parts})
    return messages


HANDOFF_TOOL_NAME = "request_human_agent"
HANDOFF_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": HANDOFF_TOOL_NAME,
        "description": (
            "Hand the conversation to a human customer-service agent: call it when the customer "
            "asks for a person, is upset, or needs something you cannot do or do not know."
        ),
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "why, in a few words"}},
        },
    },
}


def _transport_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """Read timeouts and other HTTP errors of the SDK's HTTP library and of httpx.

    The SDK sends through its own ``httpx2`` (recent versions) or through the httpx client it
    was given (the outbound-guarded one); errors while reading a streamed body are theirs.
    """
    import httpx

    timeouts: list[type[Exception]] = [httpx.TimeoutException]
    errors: list[type[Exception]] = [httpx.HTTPError]
    try:
        import httpx2
    except ImportError:  # pragma: no cover - older SDKs send through httpx
        pass
    else:
        timeouts.append(httpx2.TimeoutException)
        errors.append(httpx2.HTTPError)
    return tuple(timeouts), tuple(errors)


def _asks_handoff(tool_calls: list[dict[str, Any]]) -> bool:
    return any(
        (call.get("function") or {}).get("name") == HANDOFF_TOOL_NAME for call in tool_calls
    )


class OpenAICompatibleEngine:
    """Streams chat completions from an OpenAI-compatible endpoint."""

    needs_key = True
    supports_continuation = True

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str | None = None,
        provider: str = "openai",
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 15.0,
        default_headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
        encoding: str | None = None,
        local: bool = False,
        http_client: Any | None = None,
        handoff_tool: bool = True,
        outbound_policy: OutboundPolicy | None = None,
        images: bool = False,
        max_connections: int = 1000,
    ) -> None:
        if outbound_policy is not None:
            # An untrusted base URL (a tenant's): http(s) only, and every connection's address
            # is checked when it is made, on the resolved address (DNS rebinding).
            try:
                check_url(base_url or "", outbound_policy)
            except UnsafeURL as exc:
                raise ConfigurationError(f"engine {name!r}: {exc}") from exc
        self.name = name
        self.handoff_tool = handoff_tool
        self.model = model
        self.provider = provider
        self.base_url = base_url
        self.encoding = encoding
        self.local = local
        self.sees_images = images
        self._extra_body = extra_body or None
        self._read_timeout_s = read_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._headers = default_headers or None
        self._given_http_client = http_client
        self._outbound_policy = outbound_policy
        # Several small connection pools rather than one large one: the HTTP library scans
        # every connection of a pool (a socket poll for each idle one) whenever a request
        # enters or leaves it, so that work grows with the pool (6% of the gateway's CPU with
        # ~400 connections in one pool). A given client is one pool.
        if http_client is not None:
            self._pool_count, self._pool_size = 1, max_connections
        else:
            self._pool_size = min(max_connections, _POOL_SIZE)
            self._pool_count = -(-max_connections // self._pool_size)
        self._pools: list[_Pool] = []

    def _pool(self) -> _Pool:
        """The first pool with room (so that few replies at a time, as in a Lambda container,
        keep reusing one pool's connections), a new one while allowed, else the least busy."""
        for pool in self._pools:
            if pool.in_flight < self._pool_size:
                return pool
        if len(self._pools) < self._pool_count:
            pool = _Pool(self._given_http_client or self._pooled_http_client(self._pool_size))
            self._pools.append(pool)
            return pool
        return min(self._pools, key=lambda p: p.in_flight)

    def _client(self, pool: _Pool, key: ApiKey) -> AsyncOpenAI:
        client = pool.clients.get(key.value)
        if client is None:
            if pool.root is None:
                import openai  # imported on first use: it costs ~0.6 s at cold start

                pool.root = openai.AsyncOpenAI(
                    api_key=key.value,
                    base_url=self.base_url,
                    timeout=openai.Timeout(self._read_timeout_s, connect=self._connect_timeout_s),
                    max_retries=0,
                    default_headers=self._headers,
                    http_client=pool.http_client,
                )
                client = pool.root
            else:
                client = pool.root.with_options(api_key=key.value)
            if len(pool.clients) > 32:  # keys rotated many times: forget the oldest clients
                pool.clients.pop(next(iter(pool.clients)))
            pool.clients[key.value] = client
        return client

    def _pooled_http_client(self, n: int) -> Any:
        """An HTTP client keeping all of its ``n`` connections alive between replies (the
        SDK's own keeps 100 of up to 1,000, so above 100 replies at once most requests opened
        a connection of their own and closed it after the reply)."""
        import openai
        from openai._constants import DEFAULT_CONNECTION_LIMITS

        if self._outbound_policy is not None:
            import httpx  # the SDK takes an httpx client (and its own httpx2 ones)

            from .netguard import guarded_transport

            return httpx.AsyncClient(
                transport=guarded_transport(
                    self._outbound_policy,
                    limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                ),
                follow_redirects=False,
            )
        # The limits type of the HTTP library the installed SDK is built on (httpx or httpx2).
        limits = type(DEFAULT_CONNECTION_LIMITS)(max_connections=n, max_keepalive_connections=n)
        return openai.DefaultAsyncHttpxClient(limits=limits)

    def _params(self, call: EngineCall) -> dict[str, Any]:
        """The streamed chat-completions request of ``call``."""
        body: dict[str, Any] = {"messages": build_messages(call, redacted=not self.local,
                                                           images=self.sees_images)}
        if call.max_tokens is not None:
            body["max_tokens"] = call.max_tokens
        if call.temperature is not None:
            body["temperature"] = call.temperature
        if self.handoff_tool:
            body["tools"] = [HANDOFF_TOOL]
            body["tool_choice"] = "auto"
        # The request's JSON goes as ``extra_body``, which the SDK sends as it is: its typed
        # parameters are walked against their TypedDict annotations on every call (a tenth of
        # the gateway's CPU under load), to change nothing in plain chat messages.
        return {
            "model": self.model,
            "messages": [],
            "stream": True,
            "extra_body": {**body, **(self._extra_body or {})},
        }

    async def stream(
        self, call: EngineCall, *, key: ApiKey | None
    ) -> AsyncIterator[str | EngineOutcome]:
        if key is None:
            raise KeyUnavailableError(f"engine {self.name} needs an API key")

        pool = self._pool()
        client = self._client(pool, key)
        pool.in_flight += 1
        try:
            import openai

            timeouts, http_errors = _transport_errors()
            cuts: tuple[type[Exception], ...] = (*http_errors, openai.APIError)
            params = self._params(call)
            finish: str | None = None
            handoff = False
            try:
                # The raw HTTP stream, parsed here: the SDK would build and validate a pydantic
                # model per chunk, most of the adapter's CPU on a long reply.
                async with client.chat.completions.with_streaming_response.create(
                    **params
                ) as response:
                    events = sse_data(response.iter_bytes())
                    async for event in events:
                        if event == b"[DONE]":
                            await _read_to_end(events)
                            break
                        chunk = json_loads(event)
                        if chunk.get("error") is not None:
                            raise StreamError(f"{self.name}: error event in stream", kind="cut")
                        choices = chunk.get("choices")
                        if not choices:
                            continue
                        choice = choices[0]
                        delta = choice.get("delta")
                        if delta:
                            content = delta.get("content")
                            if content:
                                yield content
                            if delta.get("tool_calls") and _asks_handoff(delta["tool_calls"]):
                                handoff = True
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
            except StreamError:
                raise
            except openai.APITimeoutError as exc:  # before the response's headers
                raise EngineTimeout(f"{self.name}: request timed out", kind="timeout") from exc
            except openai.APIStatusError as exc:
                raise EngineHTTPError(
                    f"{self.name}: HTTP {exc.status_code}",
                    status=exc.status_code,
                    retry_after=parse_retry_after(exc.response.headers),
                ) from exc
            except openai.APIConnectionError as exc:
                raise EngineError(f"{self.name}: connection failed", kind="connection") from exc
            except timeouts as exc:  # reading the body: the SDK does not wrap these
                raise EngineTimeout(f"{self.name}: read timed out", kind="stall") from exc
            except cuts as exc:
                raise StreamError(f"{self.name}: stream cut", kind="cut") from exc
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                raise StreamError(f"{self.name}: malformed chunk", kind="malformed") from exc
            if finish is None:
                raise StreamError(f"{self.name}: stream ended without a finish reason", kind="cut")
            yield EngineOutcome(finish_reason=finish, handoff=handoff)
        finally:
            pool.in_flight -= 1

    async def aclose(self) -> None:
        pools, self._pools = self._pools, []
        for pool in pools:
            if pool.root is not None:
                await pool.root.close()  # closes the HTTP client too
            elif pool.http_client is not self._given_http_client:
                await pool.http_client.aclose()
