"""The transport behind :func:`kefu_llm.netguard.guarded_transport` (imported on first use)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from .netguard import OutboundPolicy, parse_address

__all__ = ["BlockedAddress", "GuardedTransport"]

logger = logging.getLogger("kefu.llm.netguard")


class BlockedAddress(httpcore.ConnectError):
    """A connection refused before it was opened: the host resolves to a refused address.

    ``httpx`` raises it as ``httpx.ConnectError`` (this exception is its ``__cause__``)."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, connects to a checked address."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    async def _addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        literal = parse_address(host)
        if literal is not None:
            return [str(literal)]
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            text = str(sockaddr[0])
            if text not in found:
                found.append(text)
        return found

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._addresses(host, port, timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self._policy.host_allowed(host):
            for text in addresses:
                why = self._policy.refusal(ipaddress.ip_address(text.split("%", 1)[0]))
                if why is not None:
                    logger.warning("outbound call refused: %s resolves to a %s address (%s)",
                                   host, why, text)
                    raise BlockedAddress(f"refused: {host} resolves to a {why} address")
        last: Exception | None = None
        for text in addresses:
            try:
                return await self._inner.connect_tcp(text, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("refused: unix sockets are not an outbound destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy, *, verify: ssl.SSLContext | bool = True,
                 limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=100)
        super().__init__(verify=verify, limits=limits)
        ssl_context = self._pool._ssl_context
        # The same pool httpx builds, on a backend that checks where each connection goes.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, httpcore.AnyIOBackend()),
        )

