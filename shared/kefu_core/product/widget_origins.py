"""Which web pages may use a widget key: its allowed origins.

A widget key is public (it is in the page's HTML), so on its own it lets any site embed a
tenant's chat. A key may therefore carry a list of allowed origins (``scheme://host[:port]``,
or ``scheme://*.example.com`` for every subdomain): the browser's ``Origin`` header must match
one of them when a visitor token is obtained with the key (``POST /v1/visitor-token``) and
when that token opens the WebSocket (``$connect``). A key with no allowed origins stays open
to every origin. The check stops other websites' pages, not scripts outside a browser, which
can send any ``Origin``; rate limits (:mod:`kefu_core.security.rate_limits`) are the defence there.

:func:`connect_origin_allowed` looks the key up through ``WidgetKeyStore``
and caches the answer in the process for a few seconds, so a burst of connections costs one
query; a change of a key's origins or its revocation is seen within that time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from cachetools import TTLCache

from kefu_core.product.tenants.widget_keys import WidgetKeyStore

__all__ = [
    "CACHE_S",
    "MAX_ORIGINS",
    "connect_origin_allowed",
    "forget_widget_key",
    "header",
    "normalise_origin",
    "normalise_origins",
    "origin_allowed",
]

MAX_ORIGINS = 20
CACHE_S = 10.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(value: str) -> str:
    """``value`` as a browser sends it in ``Origin`` (lower case, no default port); raises
    :class:`ValueError` for anything that is not ``http(s)://host[:port]``."""
    text = value.strip()
    if not text or len(text) > 253 or any(c.isspace() for c in text):
        raise ValueError("an origin is scheme://host[:port]")
    parts = urlsplit(text.lower())
    if (parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username
            or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment
            or text.endswith("?") or text.endswith("#")):
        raise ValueError("an origin is scheme://host[:port], without path, query or user")
    host = parts.hostname
    bare = host[2:] if host.startswith("*.") else host
    if "*" in bare or (bare != host and "." not in bare):
        raise ValueError("a wildcard origin is scheme://*.domain.tld")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("invalid port in origin") from exc
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}"


def normalise_origins(values: Iterable[str]) -> list[str]:
    """Each origin normalised, duplicates removed, order kept; at most :data:`MAX_ORIGINS`."""
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(normalise_origin(value), None)
    if len(seen) > MAX_ORIGINS:
        raise ValueError(f"at most {MAX_ORIGINS} origins per widget key")
    return list(seen)


def _matches(origin: str, allowed: str) -> bool:
    if origin == allowed:
        return True
    scheme, _, pattern = allowed.partition("://*.")
    if not pattern:
        return False
    prefix = f"{scheme}://"
    if not origin.startswith(prefix):
        return False
    rest = origin[len(prefix):]
    # "https://*.example.com" matches "https://shop.example.com" (and deeper subdomains),
    # with the same port; never "https://example.com" nor "https://evil-example.com".
    return rest.endswith("." + pattern) and len(rest) > len(pattern) + 1


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request with this ``Origin`` header may use a key allowing ``allowed``.

    No allowed origins: every request (with or without ``Origin``). Otherwise the header must
    be present and match (``null``, as sandboxed frames send, never matches)."""
    if not allowed:
        return True
    if not origin:
        return False
    try:
        normalised = normalise_origin(origin)
    except ValueError:
        return False
    return any(_matches(normalised, entry) for entry in allowed)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header of an API Gateway event, whatever the case of its name."""
    wanted = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == wanted:
            return value
    return None


# key -> allowed origins, or None for an unknown or revoked key
_cache: TTLCache[str, list[str] | None] = TTLCache(maxsize=10_000, ttl=CACHE_S)


def forget_widget_key(key: str) -> None:
    """Drop a key from this process's cache (after it changed here)."""
    _cache.pop(key, None)


async def connect_origin_allowed(
    keys: WidgetKeyStore, *, widget_key: str, origin: str | None
) -> bool:
    """Whether a visitor token minted with ``widget_key`` may connect from ``origin``: the key
    must still be active and, when it has allowed origins, ``origin`` must match one.
    Raises :class:`~kefu_core.infra.errors.StoreError` when the key cannot be read."""
    if widget_key in _cache:
        allowed = _cache[widget_key]
    else:
        key = await keys.active(widget_key)
        allowed = _cache[widget_key] = list(key.allowed_origins) if key is not None else None
    return allowed is not None and origin_allowed(origin, allowed)
