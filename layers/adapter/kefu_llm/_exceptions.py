"""Exceptions of kefu_llm. Everything raised on purpose derives from `KefuLLMError`.

Tree::

    KefuLLMError
    ├── ConfigurationError        bad or missing settings, found at build time
    ├── RedactionError            the PII detector failed: nothing may leave the deployment
    ├── KeyUnavailableError       no usable API key for an engine (none configured, all retired)
    └── EngineError               one engine attempt failed (carries status / Retry-After / kind)
        ├── EngineTimeout         connect/read/first-token/stall timeout
        ├── EngineHTTPError       the provider answered with an HTTP error status
        └── StreamError           the stream was cut or carried a malformed chunk

The router turns `EngineError` into fallbacks or an incomplete `Final`; callers of
`Router.stream` only ever see `Delta`, `Final` and `Busy` events.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "EngineError",
    "EngineHTTPError",
    "EngineTimeout",
    "KefuLLMError",
    "KeyUnavailableError",
    "RedactionError",
    "StreamError",
]


class KefuLLMError(Exception):
    """Base class of every error raised by kefu_llm."""


class ConfigurationError(KefuLLMError):
    """Settings that cannot work (unknown engine kind, missing model, bad JSON)."""


class RedactionError(KefuLLMError):
    """The PII detector failed; the text must not be sent anywhere."""


class KeyUnavailableError(KefuLLMError):
    """No API key can be used for this engine right now."""


class EngineError(KefuLLMError):
    """One attempt on one engine failed.

    ``kind`` is one of ``timeout``, ``connection``, ``http``, ``cut``, ``stall``, ``malformed``,
    ``keys``. ``status`` is the HTTP status when the provider sent one, ``retry_after`` the
    provider's ``Retry-After`` in seconds when given.
    """

    kind: str = "error"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def counts_for_provider(self) -> bool:
        """Whether this failure is the provider's fault (408/429/5xx/timeouts/broken streams).

        400/401/403/404 (and other 4xx) are the request's or the key's fault and do not trip the
        provider-level breaker.
        """
        if self.status is None:
            return self.kind != "keys"
        return self.status in (408, 429) or self.status >= 500

    @property
    def counts_for_key(self) -> bool:
        """Whether this counts against the key/deployment breaker (all but plain 400/422)."""
        if self.kind == "keys":
            return False
        return self.status not in (400, 422)


class EngineTimeout(EngineError):
    kind = "timeout"


class EngineHTTPError(EngineError):
    kind = "http"


class StreamError(EngineError):
    kind = "cut"
