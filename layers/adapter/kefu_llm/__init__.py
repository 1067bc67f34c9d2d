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
from ._openai_engine import OpenAICompatibleEngine
from ._pii import Redactor, Restorer, find_pii, redact_text
from ._router import Router
from ._settings import AdapterSettings, EngineConfig
from ._tokens import compress_history, count_tokens, encoding_for, protected_spans
from ._types import Busy, ChatMessage, ChatRequest, Delta, EngineCall, Event, Final

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
    "protected_spans",
    "redact_text",
]
