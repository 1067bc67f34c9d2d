"""`build_router`: settings + (optional) Redis -> a ready `Router`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._breaker import BreakerConfig, Breakers, MemoryBreakerStore, RedisBreakerStore
from ._cache import ResponseCache
from ._engine_base import Engine
from ._exceptions import ConfigurationError
from ._keys import (
    EnvKeySource,
    FileKeySource,
    KeyRing,
    KeySource,
    SecretsManagerKeySource,
    StaticKeySource,
)
from ._offline import OfflineEngine
from ._openai_engine import OpenAICompatibleEngine
from ._pii import Span
from ._ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from ._router import EngineSlot, Router, RouterConfig
from ._settings import AdapterSettings, EngineConfig
from ._tokens import encoding_for
from .netguard import OutboundPolicy

__all__ = ["build_engine", "build_router"]

logger = logging.getLogger("kefu.llm.build")


def _offline_engine(name: str, settings: AdapterSettings) -> OfflineEngine:
    """The offline engine, matching by meaning too when ``OFFLINE_SEMANTIC`` is on, or unset
    and its model's package installed (words only without it, as in the Lambda layers)."""
    if settings.offline_semantic is False:
        return OfflineEngine(name)
    from ._offline_semantic import ExtraMissing, load_similarity

    try:
        similarity = load_similarity(settings.offline_semantic_model)
    except ExtraMissing:
        if settings.offline_semantic:
            raise
        return OfflineEngine(name)
    rule = similarity.rule
    return OfflineEngine(name, semantic=similarity, semantic_min=rule.minimum,
                         semantic_margin=rule.margin, semantic_share=rule.share,
                         semantic_story_margin=rule.story_margin)


def build_engine(
    config: EngineConfig,
    *,
    settings: AdapterSettings,
    http_client: Any | None = None,
    outbound_policy: OutboundPolicy | None = None,
) -> Engine:
    """The engine of ``config``. Give ``outbound_policy`` when the base URL is not the
    operator's (a tenant's engine): its scheme is checked now and the address of every
    connection when it is made (`kefu_llm.netguard`)."""
    if config.kind == "offline":
        return _offline_engine(config.name, settings)
    if not config.model:
        raise ConfigurationError(f"engine {config.name!r} needs a model")
    return OpenAICompatibleEngine(
        name=config.name,
        model=config.model,
        base_url=config.base_url,
        provider=config.provider,
        connect_timeout_s=config.connect_timeout_s,
        read_timeout_s=config.stall_timeout_s or settings.stall_timeout_s,
        default_headers=config.default_headers,
        extra_body=config.extra_body,
        encoding=config.encoding,
        local=config.local,
        http_client=http_client,
        handoff_tool=config.handoff_tool,
        outbound_policy=outbound_policy,
        images=config.images,
        max_connections=settings.llm_max_connections,
    )


def build_router(
    *,
    settings: AdapterSettings,
    redis: Any | None,
    key_prefix: str = "kefu:",
    secrets_client: Any | None = None,
    key_sources: list[KeySource] | None = None,
    http_client: Any | None = None,
    pii_detector: Callable[[str], list[Span]] | None = None,
    configs: list[EngineConfig] | None = None,
    outbound_policy: OutboundPolicy | None = None,
    scope_of: Callable[[EngineConfig], str] | None = None,
    share_with: Router | None = None,
) -> Router:
    """A router for ``settings``. With ``redis`` (a ``redis.asyncio.Redis``) breakers, rate
    limits and the response cache are shared by every process using the same Redis and
    ``key_prefix``; with ``None`` they live in this process.

    Another chain than the deployment's (a tenant's): ``configs`` (the whole chain, last
    resort included: `AdapterSettings.with_last_resort`), ``key_sources`` (its keys only),
    ``outbound_policy`` (its base URLs are not the operator's: checked by `kefu_llm.netguard`,
    and an engine that cannot be built is skipped with a warning instead of failing the
    router), ``scope_of`` (the prefix of an engine's breaker, limit and cache ids) and
    ``share_with`` (a router whose breakers, limits and cache this one uses too).

    ``secrets_client`` (a boto3 Secrets Manager client), ``key_sources``, ``http_client`` (an
    async HTTP client for the SDK) and ``pii_detector`` (replaces `find_pii`) are seams for
    tests and special setups.
    """
    if configs is None:
        configs = settings.engine_chain()
    if not configs:
        raise ConfigurationError("no engine configured")
    slots: list[EngineSlot] = []
    env_vars: dict[str, str] = {}
    inline: dict[str, list[str]] = {}
    for cfg in configs:
        try:
            engine = build_engine(cfg, settings=settings, http_client=http_client,
                                  outbound_policy=outbound_policy)
        except ConfigurationError as exc:
            if outbound_policy is None:
                raise
            logger.warning("engine skipped: %s", exc)
            continue
        if cfg.api_key_env:
            env_vars.setdefault(cfg.key_group, cfg.api_key_env)
        if cfg.api_keys:
            inline.setdefault(cfg.key_group, []).extend(k.get_secret_value() for k in cfg.api_keys)
        slots.append(
            EngineSlot(
                engine=engine,
                first_token_timeout_s=cfg.first_token_timeout_s or settings.first_token_timeout_s,
                stall_timeout_s=cfg.stall_timeout_s or settings.stall_timeout_s,
                total_timeout_s=cfg.total_timeout_s or settings.total_timeout_s,
                key_group=cfg.key_group,
                key_rpm=settings.key_rpm if cfg.key_rpm is None else cfg.key_rpm,
                key_tpm=settings.key_tpm if cfg.key_tpm is None else cfg.key_tpm,
                encoding=encoding_for(cfg.model or None, cfg.encoding),
                scope=scope_of(cfg) if scope_of is not None else "",
            )
        )
    if not slots:
        raise ConfigurationError("no engine of the chain could be built")
    if key_sources is None:
        key_sources = []
        if settings.llm_keys_secret_id:
            key_sources.append(
                SecretsManagerKeySource(settings.llm_keys_secret_id, client=secrets_client)
            )
        if settings.llm_keys_file:
            key_sources.append(FileKeySource(settings.llm_keys_file))
        if env_vars:
            key_sources.append(EnvKeySource(env_vars))
        if inline:
            key_sources.append(StaticKeySource(inline))
    keyring = KeyRing(
        key_sources, refresh_s=settings.llm_keys_refresh_s, retire_s=settings.key_retire_s
    )
    if share_with is not None:
        breakers, limiter, cache = share_with.breakers, share_with.limiter, share_with.cache
    else:
        breakers, limiter, cache = _shared_state(settings, redis, key_prefix)
    return Router(
        slots=slots,
        keyring=keyring,
        breakers=breakers,
        limiter=limiter,
        cache=cache,
        config=RouterConfig(
            total_timeout_s=settings.total_timeout_s,
            midstream_fallback=settings.midstream_fallback,
            tenant_rpm=settings.tenant_rpm,
            tenant_tpm=settings.tenant_tpm,
            completion_token_estimate=settings.completion_token_estimate,
            pii_redaction=settings.pii_redaction,
            key_retire_s=settings.key_retire_s,
            cache_replay_chunk_chars=settings.cache_replay_chunk_chars,
        ),
        detector=pii_detector,
    )


def _shared_state(
    settings: AdapterSettings, redis: Any | None, key_prefix: str
) -> tuple[Breakers, RateLimiter, ResponseCache]:
    """Breakers, rate limiter and response cache: in Redis when there is one."""
    bcfg = BreakerConfig(
        failure_threshold=settings.breaker_failure_threshold,
        failure_rate=settings.breaker_failure_rate,
        min_samples=settings.breaker_min_samples,
        window_s=settings.breaker_window_s,
        open_s=settings.breaker_open_s,
        max_open_s=settings.breaker_max_open_s,
        half_open_successes=settings.breaker_half_open_successes,
        half_open_probes=settings.breaker_half_open_probes,
        probe_lease_s=max(settings.total_timeout_s, 1.0),
        cache_s=settings.breaker_cache_s,
    )
    limiter: RateLimiter
    if redis is not None:
        breakers = Breakers(RedisBreakerStore(redis, key_prefix), bcfg)
        limiter = RedisRateLimiter(redis, key_prefix)
    else:
        breakers = Breakers(MemoryBreakerStore(), bcfg)
        limiter = MemoryRateLimiter()
    cache = ResponseCache(
        ttl_s=settings.cache_ttl_s, lru_size=settings.cache_lru_size, redis=redis, prefix=key_prefix
    )
    return breakers, limiter, cache
