"""Outbound URL guard against server-side request forgery (SSRF).

A URL a tenant (or anyone but the operator) supplies must not make the server call its own
loopback services, the private network, or the cloud's metadata endpoint. Two checks:

- :func:`check_url` when a URL is stored or configured: ``http``/``https`` only, a host, and a
  host written as an address (``127.0.0.1``, ``[::1]``, ``2130706433``, ``localhost``) must be
  allowed by the policy. No DNS lookup here: what a name resolves to is only known at use time.
- :func:`guarded_transport` at use time: an ``httpx`` transport whose network backend resolves
  the host itself, checks **every** address the name resolves to, and then connects to one of
  those checked addresses (never a second lookup, so DNS rebinding between check and connect
  cannot work). Every connection goes through it, redirects included; the transport ignores
  proxy environment variables.

Refused unless the :class:`OutboundPolicy` allows them: loopback, private (RFC 1918, IPv6 ULA),
shared/CGNAT (100.64.0.0/10) — lifted by ``allow_private`` —, and always (only an explicit
allowed network lifts them): link-local (169.254.0.0/16, fe80::/10), cloud metadata addresses
(169.254.169.254, fd00:ec2::254, 100.100.100.200, 168.63.129.16, ...), multicast, unspecified
and reserved addresses. IPv6 forms that embed an IPv4 address (``::ffff:127.0.0.1``, 6to4,
NAT64, Teredo) are judged by the embedded address.

This module is public: ``kefu_core`` builds the policy from ``OUTBOUND_ALLOW_PRIVATE`` and
``OUTBOUND_ALLOWED_HOSTS`` and uses it for tenant engine URLs and the CRM client;
`build_engine(..., outbound_policy=...)` uses it for an engine whose base URL is untrusted.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOCAL_NAMES",
    "METADATA_NETWORKS",
    "OutboundPolicy",
    "UnsafeURL",
    "address_kind",
    "check_url",
    "guarded_transport",
    "parse_address",
]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata and platform endpoints of the major clouds.
METADATA_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in (
    "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle (IMDS)
    "169.254.170.2/32",  # AWS ECS task metadata and credentials
    "169.254.170.23/32",  # AWS EKS pod identity agent
    "fd00:ec2::254/128",  # AWS IMDS over IPv6
    "fd00:ec2::23/128",  # AWS EKS pod identity agent over IPv6
    "100.100.100.200/32",  # Alibaba Cloud
    "168.63.129.16/32",  # Azure wire server (a public-range address)
    "192.0.0.192/32",  # Oracle Cloud
))
_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Kinds that OUTBOUND_ALLOW_PRIVATE lifts (a self-hosted model or CRM on the operator's network).
_PRIVATE_KINDS = frozenset({"loopback", "private", "shared (CGNAT)"})
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class UnsafeURL(ValueError):
    """A URL the policy refuses (bad scheme, no host, or a refused address)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(ip: IPAddress) -> str | None:
    """Why an address is not a public one (``"loopback"``, ``"cloud metadata"``...), or None."""
    if any(ip in net for net in METADATA_NETWORKS):
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_kind(embedded) or (
                None if ip.ipv4_mapped is not None or any(ip in n for n in _NAT64) else "reserved")
        if ip.scope_id:
            return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if any(ip in net for net in _PRIVATE):
        return "private"
    if ip in _SHARED:
        return "shared (CGNAT)"
    if not ip.is_global or ip.is_reserved:
        return "reserved"
    return None


def parse_address(host: str) -> IPAddress | None:
    """An address written as a host: the usual forms, and the legacy IPv4 ones that resolvers
    accept (``2130706433``, ``0x7f.1``, ``017700000001``)."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text) and text[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations outbound calls may reach.

    ``allow_private`` lifts loopback, private and CGNAT ranges; ``allowed`` entries are host
    names (exact, or ``.example.com`` for its subdomains), addresses or CIDR networks whose
    destinations are always allowed (the only way to reach a link-local or metadata address).
    """

    allow_private: bool = False
    allowed: tuple[str, ...] = ()
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in self.allowed:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("."):
                suffixes.append(entry)
            else:
                hosts.add(entry.rstrip("."))
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_suffixes", tuple(suffixes))
        object.__setattr__(self, "_networks", tuple(networks))

    @classmethod
    def of(cls, *, allow_private: bool = False, allowed: Iterable[str] = ()) -> OutboundPolicy:
        return cls(allow_private=allow_private, allowed=tuple(allowed))

    def host_allowed(self, host: str) -> bool:
        """Whether the operator listed this host name (any address it resolves to is fine)."""
        name = host.lower().rstrip(".")
        return name in self._hosts or any(name.endswith(s) for s in self._suffixes)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why the policy refuses this address, or None when it may be reached."""
        if any(ip.version == net.version and ip in net for net in self._networks):
            return None
        kind = address_kind(ip)
        if kind is None or (self.allow_private and kind in _PRIVATE_KINDS):
            return None
        return kind


def check_url(url: str, policy: OutboundPolicy) -> None:
    """Refuse (:class:`UnsafeURL`) a URL whose scheme is not http(s), that has no host, or whose
    host is written as an address (or a loopback name) the policy refuses. No DNS lookup."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UnsafeURL("not a valid URL") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeURL("only http and https URLs are allowed")
    if not host:
        raise UnsafeURL("the URL has no host")
    host = host.rstrip(".")
    if policy.host_allowed(host):
        return
    address = parse_address(host)
    if address is None and (host in LOCAL_NAMES or host.endswith(".localhost")):
        address = ipaddress.IPv4Address("127.0.0.1")
    if address is not None:
        why = policy.refusal(address)
        if why is not None:
            raise UnsafeURL(f"the URL points to a {why} address, which is not allowed "
                            "(the operator can allow it: OUTBOUND_ALLOW_PRIVATE / "
                            "OUTBOUND_ALLOWED_HOSTS)")


def guarded_transport(policy: OutboundPolicy, *, verify: ssl.SSLContext | bool = True,
                      limits: Any | None = None) -> Any:
    """An ``httpx.AsyncBaseTransport`` that only connects to addresses the policy allows
    (checked after resolution, on every connection, redirects included). A refused connection
    raises ``httpx.ConnectError`` caused by :class:`BlockedAddress`. Proxy variables are not
    used (a transport given to ``httpx.AsyncClient`` disables them)."""
    from ._guarded_transport import GuardedTransport  # httpx/httpcore only when used

    return GuardedTransport(policy, verify=verify, limits=limits)

