"""kefu_llm: the LLM adapter of Kefu.

Engines behind one async streaming interface (any OpenAI-compatible API, and an offline engine
that answers from knowledge passages), a router with fallback and a first-token commit point,
two-level circuit breakers, token-bucket rate limits, an exact-match response cache, API key
rotation, PII redaction with streamed restoration, token counting and context compression.

    router = build_router(settings=AdapterSettings(), redis=redis_client)
    async for event in router.stream(ChatRequest(...)):
        ...  # Delta..., then one Final (or a single Busy)

See docs/adapter.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._build import build_engine, build_router
    from ._exceptions import (
        ConfigurationError,
        EngineError,
        EngineHTTPError,
        EngineTimeout,
        KefuLLMError,
        KeyUnavailableError,
        RedactionError,
        StreamError,
    )
    from ._keys import FileKeySource, KeyRing, SecretsManagerKeySource, StaticKeySource
    from ._offline import OfflineEngine, detect_language
    from ._openai_engine import OpenAICompatibleEngine, preload_sdk
    from ._pii import Redactor, Restorer, find_pii, redact_text
    from ._router import Router
    from ._settings import AdapterSettings, EngineConfig
    from ._tokens import compress_history, count_tokens, encoding_for, protected_spans
    from ._types import (
        Busy,
        ChatMessage,
        ChatRequest,
        Delta,
        EngineCall,
        EngineOutcome,
        Event,
        Final,
    )

__all__ = [
    "AdapterSettings",
    "Busy",
    "ChatMessage",
    "ChatRequest",
    "ConfigurationError",
    "Delta",
    "EngineCall",
    "EngineConfig",
    "EngineError",
    "EngineHTTPError",
    "EngineOutcome",
    "EngineTimeout",
    "Event",
    "FileKeySource",
    "Final",
    "KefuLLMError",
    "KeyRing",
    "KeyUnavailableError",
    "OfflineEngine",
    "OpenAICompatibleEngine",
    "RedactionError",
    "Redactor",
    "Restorer",
    "Router",
    "SecretsManagerKeySource",
    "StaticKeySource",
    "StreamError",
    "build_engine",
    "build_router",
    "compress_history",
    "count_tokens",
    "detect_language",
    "encoding_for",
    "find_pii",
    "preload_sdk",
    "protected_spans",
    "redact_text",
]

# Names are loaded on first use, so a process that only redacts PII (every Lambda function's
# log records) or checks outbound URLs never imports the engines, tiktoken or openai: the
# WebSocket plumbing functions ship without them (see docs/design-notes.md, "Lambda layers").
_WHERE = {
    "AdapterSettings": "._settings",
    "Busy": "._types",
    "ChatMessage": "._types",
    "ChatRequest": "._types",
    "ConfigurationError": "._exceptions",
    "Delta": "._types",
    "EngineCall": "._types",
    "EngineConfig": "._settings",
    "EngineError": "._exceptions",
    "EngineHTTPError": "._exceptions",
    "EngineOutcome": "._types",
    "EngineTimeout": "._exceptions",
    "Event": "._types",
    "FileKeySource": "._keys",
    "Final": "._types",
    "KefuLLMError": "._exceptions",
    "KeyRing": "._keys",
    "KeyUnavailableError": "._exceptions",
    "OfflineEngine": "._offline",
    "OpenAICompatibleEngine": "._openai_engine",
    "RedactionError": "._exceptions",
    "Redactor": "._pii",
    "Restorer": "._pii",
    "Router": "._router",
    "SecretsManagerKeySource": "._keys",
    "StaticKeySource": "._keys",
    "StreamError": "._exceptions",
    "build_engine": "._build",
    "build_router": "._build",
    "compress_history": "._tokens",
    "count_tokens": "._tokens",
    "detect_language": "._offline",
    "encoding_for": "._tokens",
    "find_pii": "._pii",
    "preload_sdk": "._openai_engine",
    "protected_spans": "._tokens",
    "redact_text": "._pii",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
