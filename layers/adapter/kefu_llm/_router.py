"""The router: one reply over a chain of engines, with breakers, limits, cache and PII.

Per request: tenant rate limit (-> `Busy`), cache lookup (-> replayed stream), PII redaction,
then the chain. Before the first streamed token (the commit point) any failure — timeout,
error, open breaker, rate-limited key — moves on to the next key or engine. After it, a cut,
stalled or malformed stream ends the reply ``incomplete``, or, with ``midstream_fallback``,
continues it on the next engine that can continue (``Final.reason = "continued_on:<name>"``).
The last engine of the chain is never skipped for an open breaker.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import tiktoken

from ._breaker import Breakers
from ._cache import ResponseCache, cache_key
from ._engine_base import Engine
from ._exceptions import EngineError, EngineHTTPError, EngineTimeout, KefuLLMError, RedactionError
from ._keys import ApiKeyEntry, KeyRing
from ._offline import detect_language
from ._pii import Redactor, Restorer
from ._ratelimit import Limit, RateLimiter, RedisRateLimiter
from ._tokens import count_message_tokens, encoding_for
from ._types import Busy, ChatRequest, Delta, EngineCall, Event, Final

__all__ = ["EngineSlot", "Router", "RouterConfig"]

logger = logging.getLogger("kefu.llm.router")

_CONTINUE = {
    "zh": "（上面的回答被中断了。请从中断处直接接着写，不要重复已写的内容。）",
    "en": "(The answer above was cut off. Continue exactly where it stopped; do not repeat it.)",
}
_SUMMARY_PROMPT = {
    "zh": "请用简洁的中文总结以下客服对话，"
    "保留所有数字、金额、订单号、电话、地址、人名和商家名称，原样照抄：",
    "en": "Summarise this customer-service conversation concisely. Keep every number, amount, "
    "order id, phone number, address and name verbatim:",
}


@dataclass(slots=True)
class EngineSlot:
    """An engine with its place-specific settings."""

    engine: Engine
    first_token_timeout_s: float
    stall_timeout_s: float
    total_timeout_s: float
    key_group: str = "default"
    key_rpm: int = 0
    key_tpm: int = 0
    encoding: tiktoken.Encoding = field(default_factory=lambda: encoding_for(None))
    # Prefix of this engine's breaker, rate-limit and cache ids: empty for the deployment's
    # engines; a tenant's own engine gets its tenant and configuration, so tenants pointing
    # engines of the same name at different servers never share a breaker or a cached answer.
    scope: str = ""

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def provider_breaker(self) -> str:
        return f"p:{self.scope}{self.engine.provider}"

    @property
    def cache_id(self) -> str:
        return f"{self.scope}{self.name}"

    def key_breaker(self, key_id: str) -> str:
        return f"k:{self.scope}{self.name}:{key_id}"

    def key_limit(self, key_id: str) -> str:
        return f"key:{self.scope}{self.name}:{key_id}"


@dataclass(frozen=True, slots=True)
class RouterConfig:
    total_timeout_s: float = 60.0
    midstream_fallback: bool = False
    tenant_rpm: int = 600
    tenant_tpm: int = 1_000_000
    completion_token_estimate: int = 256
    pii_redaction: bool = True
    key_retire_s: float = 3600.0
    cache_replay_chunk_chars: int = 8


class _Skip(Exception):
    """This engine cannot be used for this request (breaker, keys, limits)."""

    def __init__(self, reason: str, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


@dataclass(slots=True)
class _Reply:
    raw: list[str] = field(default_factory=list)  # model output as sent (placeholders)
    shown: list[str] = field(default_factory=list)  # restored text given to the caller
    engine: str = ""
    fallback_used: bool = False
    cut_reason: str | None = None


class Router:
    """Streams replies over a chain of engines. Build it with `build_router`."""

    def __init__(
        self,
        *,
        slots: list[EngineSlot],
        keyring: KeyRing,
        breakers: Breakers,
        limiter: RateLimiter,
        cache: ResponseCache,
        config: RouterConfig,
        detector: Callable[[str], Any] | None = None,
    ) -> None:
        if not slots:
            raise KefuLLMError("a router needs at least one engine")
        self.slots = slots
        self.keyring = keyring
        self.breakers = breakers
        self.limiter = limiter
        self.cache = cache
        self.config = config
        self._detector = detector
        self._background: set[asyncio.Task[None]] = set()

    @property
    def engine_names(self) -> list[str]:
        return [s.name for s in self.slots]

    # -- public -----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Deltas then exactly one `Final`, or a single `Busy`."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.total_timeout_s
        slots = self.slots if request.fallback else self.slots[:1]
        primary = slots[0]
        prompt_tokens = count_message_tokens(request.messages, enc=primary.encoding)
        if request.passages:
            prompt_tokens += sum(len(primary.encoding.encode_ordinary(p)) for p in request.passages)
        expected = prompt_tokens + (request.max_tokens or cfg.completion_token_estimate)

        tenant_scope = f"tenant:{request.tenant_id}"
        digests: list[tuple[str, str]] = []
        if self.cache.enabled:
            digests = [
                (s.name, cache_key(request, s.cache_id)) for s in slots if not s.engine.local
            ]
        wait, hit = await self._admit(
            tenant_scope,
            [Limit("req", cfg.tenant_rpm, 1), Limit("tok", cfg.tenant_tpm, expected)],
            digests,
        )
        if wait > 0:
            yield Busy(retry_after_s=_ceil(wait), scope="tenant")
            return
        if digests:
            if hit is not None:
                engine_name, text = hit
                step = max(cfg.cache_replay_chunk_chars, 1)
                for i in range(0, len(text), step):
                    yield Delta(text[i : i + step])
                yield Final(text=text, status="complete", engine=engine_name, cached=True)
                return

        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        lang = request.language or detect_language(question)
        lang = "zh" if lang.lower().startswith("zh") else "en"
        plain_call = EngineCall(
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            passages=list(request.passages),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            language=lang,
        )
        redactor: Redactor | None = None
        redacted_call: EngineCall | None = plain_call
        if cfg.pii_redaction:
            redactor = Redactor(self._detector) if self._detector else Redactor()
            try:
                redacted_call = EngineCall(
                    messages=[
                        {"role": m["role"], "content": redactor.redact(m["content"])}
                        for m in plain_call.messages
                    ],
                    passages=redactor.redact_all(plain_call.passages),
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    language=lang,
                )
            except RedactionError:
                logger.error(
                    "PII detection failed: only local engines may answer",
                    extra={"tenant": request.tenant_id},
                )
                redacted_call = None

        reply = _Reply()
        tried_any = False
        limited_wait = 0.0
        last_error = "no_engine"
        n = len(slots)
        for idx, slot in enumerate(slots):
            is_last = idx == n - 1
            continuing = bool(reply.raw)
            if continuing and not slot.engine.supports_continuation:
                continue
            if loop.time() >= deadline:
                last_error = "total_timeout"
                break
            engine = slot.engine
            base = plain_call if engine.local else redacted_call
            if base is None:
                last_error = "redaction_failed"
                continue
            call = (
                self._continuation(base, "".join(reply.raw), lang)
                if continuing
                else _copy_call(base)
            )
            restorer = (
                redactor.restorer() if (redactor is not None and not engine.local) else Restorer({})
            )
            try:
                keys = await self._usable_keys(slot, is_last=is_last, prompt_tokens=prompt_tokens)
            except _Skip as skip:
                last_error = skip.reason
                continue
            if idx > 0:  # anything but the first engine of the chain is a fallback
                reply.fallback_used = True
            for key in keys:
                wait = await self._key_admission(slot, key, prompt_tokens)
                if wait > 0:
                    limited_wait = min(limited_wait, wait) if limited_wait else wait
                    last_error = "rate_limited"
                    continue
                tried_any = True
                outcome = _Outcome()
                async for piece in self._attempt(slot, call, key, outcome, deadline=deadline):
                    reply.raw.append(piece)
                    shown = restorer.feed(piece)
                    if shown:
                        reply.shown.append(shown)
                        yield Delta(shown)
                if outcome.committed or outcome.error is None:
                    tail = restorer.flush()
                    if tail:
                        reply.shown.append(tail)
                        yield Delta(tail)
                if outcome.error is None:
                    # complete
                    reply.engine = slot.name
                    await self._on_success(slot, key)
                    text = "".join(reply.shown)
                    reason = (
                        f"continued_on:{slot.name}"
                        if continuing
                        else ("length" if call.finish_reason == "length" else None)
                    )
                    cache_digest = None
                    if (digests and not continuing and not engine.local and reason is None
                            and not call.handoff):
                        cache_digest = next((d for n, d in digests if n == slot.name), None)
                        if cache_digest is not None:
                            self.cache.put_local(slot.name, cache_digest, text)
                    self._spawn(
                        self._after_reply(
                            request, slot, key, reply, tenant_scope, cache_digest, text
                        )
                    )
                    yield Final(
                        text=text,
                        status="complete",
                        engine=slot.name,
                        fallback_used=reply.fallback_used,
                        reason=reason,
                        handoff=call.handoff,
                        answered=call.answered,
                    )
                    return
                err = outcome.error
                last_error = outcome.kind
                await self._on_failure(slot, key, err, outcome.kind)
                if outcome.committed or (continuing and reply.raw):
                    reply.engine = slot.name
                    reply.cut_reason = reply.cut_reason or outcome.kind
                    break  # mid-stream failure: no other key of this engine
                if not _try_next_key(err):
                    break
            if reply.raw and not (cfg.midstream_fallback and loop.time() < deadline):
                break
        if reply.raw:
            self._spawn(self._after_reply(request, None, None, reply, tenant_scope, None, ""))
            yield Final(
                text="".join(reply.shown),
                status="incomplete",
                engine=reply.engine,
                fallback_used=reply.fallback_used,
                reason=reply.cut_reason or last_error,
            )
            return
        if limited_wait > 0 and not tried_any:
            yield Busy(retry_after_s=_ceil(limited_wait), scope="key")
            return
        yield Final(
            text="",
            status="incomplete",
            engine=reply.engine or "none",
            fallback_used=reply.fallback_used,
            reason=last_error,
        )

    async def summarize(self, text: str, *, language: str = "zh", max_tokens: int = 256) -> str:
        """A summary by the first remote engine that answers (for `compress_history`).

        Raises `KefuLLMError` when no engine could summarise; PII is redacted on the way out
        and restored on the way back, as for replies.
        """
        lang = "zh" if language.startswith("zh") else "en"
        redactor = Redactor(self._detector) if self._detector else Redactor()
        body = redactor.redact(text) if self.config.pii_redaction else text
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.total_timeout_s
        for idx, slot in enumerate(self.slots):
            if slot.engine.local and slot.engine.provider == "offline":
                continue
            call = EngineCall(
                messages=[
                    {"role": "system", "content": _SUMMARY_PROMPT[lang]},
                    {"role": "user", "content": body},
                ],
                max_tokens=max_tokens,
                temperature=0.0,
                language=lang,
            )
            try:
                keys = await self._usable_keys(
                    slot, is_last=idx == len(self.slots) - 1, prompt_tokens=0
                )
            except _Skip:
                continue
            for key in keys[:1]:
                if await self._key_admission(slot, key, 0) > 0:
                    continue
                outcome = _Outcome()
                parts = [
                    p async for p in self._attempt(slot, call, key, outcome, deadline=deadline)
                ]
                if outcome.error is None:
                    await self._on_success(slot, key)
                    return redactor.restore("".join(parts))
                await self._on_failure(slot, key, outcome.error, outcome.kind)
        raise KefuLLMError("no engine could summarise")

    async def flush(self) -> None:
        """Wait for the bookkeeping still running after the replies already given."""
        while True:
            pending = [t for t in self._background if not t.done()]
            self._background = set(pending)
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        await self.flush()
        await self.keyring.aclose()
        for slot in self.slots:
            try:
                await slot.engine.aclose()
            except Exception:  # closing is best effort
                logger.debug("engine close failed", exc_info=True)

    # -- internals --------------------------------------------------------------------------

    async def _admit(
        self, scope: str, limits: list[Limit], digests: list[tuple[str, str]]
    ) -> tuple[float, tuple[str, str] | None]:
        """Tenant rate limit and cache lookup; one Redis round trip for both when shared."""
        hit = self.cache.local_get(digests) if digests else None
        limiter = self.limiter
        remote = self.cache.redis
        if (
            isinstance(limiter, RedisRateLimiter)
            and remote is not None
            and limiter.redis is remote
            and digests
            and hit is None
        ):
            prepared = limiter.prepare(scope, limits)
            if isinstance(prepared, float):
                return prepared, None
            async with remote.pipeline(transaction=False) as pipe:
                if prepared is not None:
                    limiter.queue(pipe, scope, prepared)
                self.cache.queue_get(pipe, digests)
                results = await pipe.execute(raise_on_error=False)
            if isinstance(results[-1], Exception):
                raise results[-1]
            wait = (
                await limiter.finish(scope, results[0], prepared) if prepared is not None else 0.0
            )
            return wait, (self.cache.finish_get(digests, results[-1]) if wait <= 0 else None)
        wait = await limiter.acquire(scope, limits)
        if wait > 0:
            return wait, None
        if digests and hit is None:
            hit = await self.cache.get(digests)
        return 0.0, hit

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Bookkeeping after a reply (token charges, shared cache write) off the reply's path.

        `flush` / `aclose` wait for it.
        """
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_reply(
        self,
        request: ChatRequest,
        slot: EngineSlot | None,
        key: ApiKeyEntry | None,
        reply: _Reply,
        tenant_scope: str,
        cache_digest: str | None,
        text: str,
    ) -> None:
        try:
            await self._charge_completion(request, slot, key, reply, tenant_scope)
            if cache_digest is not None:
                await self.cache.put_remote(cache_digest, text)
        except Exception:
            logger.warning("bookkeeping after a reply failed", exc_info=True)

    @staticmethod
    def _continuation(base: EngineCall, partial: str, lang: str) -> EngineCall:
        return EngineCall(
            messages=[
                *base.messages,
                {"role": "assistant", "content": partial},
                {"role": "user", "content": _CONTINUE[lang]},
            ],
            passages=base.passages,
            max_tokens=base.max_tokens,
            temperature=base.temperature,
            language=base.language,
        )

    async def _usable_keys(
        self, slot: EngineSlot, *, is_last: bool, prompt_tokens: int
    ) -> list[ApiKeyEntry | None]:
        engine = slot.engine
        provider_bid = slot.provider_breaker
        if not is_last:
            ok, wait = await self.breakers.allow([provider_bid])
            if not ok:
                raise _Skip("breaker_open", wait)
        if not engine.needs_key:
            return [None]
        try:
            candidates = await self.keyring.candidates(slot.key_group)
        except KefuLLMError as exc:
            raise _Skip("keys_unavailable") from exc
        if not candidates:
            raise _Skip("no_key")
        usable: list[ApiKeyEntry | None] = []
        for key in candidates:
            ok, _ = await self.breakers.allow([slot.key_breaker(key.id)])
            if ok:
                usable.append(key)
        if not usable:
            if is_last:
                return [candidates[0]]  # the last resort is never locked out by a breaker
            raise _Skip("breaker_open")
        return usable

    async def _key_admission(self, slot: EngineSlot, key: ApiKeyEntry | None, tokens: int) -> float:
        """Take from the key's buckets just before using it: 0, or the seconds to wait.

        A rate limit is a "busy", not a lock-out: it holds for the last engine too.
        """
        if key is None or not (slot.key_rpm or slot.key_tpm):
            return 0.0
        return await self.limiter.acquire(
            slot.key_limit(key.id),
            [Limit("req", slot.key_rpm, 1), Limit("tok", slot.key_tpm, tokens)],
        )

    async def _attempt(
        self,
        slot: EngineSlot,
        call: EngineCall,
        key: ApiKeyEntry | None,
        outcome: _Outcome,
        *,
        deadline: float,
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        gen = cast(AsyncGenerator[str, None], slot.engine.stream(call, key=key))
        attempt_deadline = min(deadline, loop.time() + slot.total_timeout_s)
        try:
            try:
                async with asyncio.timeout_at(
                    min(attempt_deadline, loop.time() + slot.first_token_timeout_s)
                ):
                    first = await anext(gen)
            except StopAsyncIteration:
                if call.finish_reason is None:
                    outcome.fail(EngineError(f"{slot.name}: empty stream", kind="cut"), "empty")
                return
            except TimeoutError:
                kind = "total_timeout" if loop.time() >= deadline else "first_token_timeout"
                outcome.fail(
                    EngineTimeout(f"{slot.name}: no first token in time", kind="timeout"), kind
                )
                return
            except EngineError as exc:
                outcome.fail(exc, exc.kind)
                return
            except Exception as exc:  # an engine bug must not break the reply
                logger.exception("engine raised unexpectedly", extra={"engine": slot.name})
                outcome.fail(
                    EngineError(f"{slot.name}: {type(exc).__name__}", kind="error"), "error"
                )
                return
            outcome.committed = True
            yield first
            stall = slot.stall_timeout_s
            while True:
                try:
                    async with asyncio.timeout_at(min(attempt_deadline, loop.time() + stall)):
                        piece = await anext(gen)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    kind = "total_timeout" if loop.time() >= attempt_deadline else "stall"
                    outcome.fail(EngineTimeout(f"{slot.name}: stream {kind}", kind="stall"), kind)
                    return
                except EngineError as exc:
                    outcome.fail(exc, exc.kind)
                    return
                except Exception as exc:
                    logger.exception("engine raised unexpectedly", extra={"engine": slot.name})
                    outcome.fail(
                        EngineError(f"{slot.name}: {type(exc).__name__}", kind="error"), "error"
                    )
                    return
                yield piece
        finally:
            await gen.aclose()

    async def _on_success(self, slot: EngineSlot, key: ApiKeyEntry | None) -> None:
        if slot.engine.provider == "offline":
            return
        await self.breakers.success(slot.provider_breaker)
        if key is not None:
            await self.breakers.success(slot.key_breaker(key.id))
            self.keyring.worked(key)

    async def _on_failure(
        self, slot: EngineSlot, key: ApiKeyEntry | None, err: EngineError, kind: str
    ) -> None:
        logger.warning(
            "engine attempt failed",
            extra={
                "engine": slot.name,
                "kind": kind,
                "status": err.status,
                "key_id": key.id if key else None,
            },
        )
        if slot.engine.provider == "offline":
            return
        if key is not None and err.counts_for_key:
            open_for: float | None = None
            if err.status == 401:
                self.keyring.retire(key)
                open_for = self.config.key_retire_s
            elif err.status == 429 and err.retry_after:
                open_for = err.retry_after
            await self.breakers.failure(slot.key_breaker(key.id), open_for=open_for)
        if err.counts_for_provider:
            await self.breakers.failure(slot.provider_breaker, open_for=None)

    async def _charge_completion(
        self,
        request: ChatRequest,
        slot: EngineSlot | None,
        key: ApiKeyEntry | None,
        reply: _Reply,
        tenant_scope: str,
    ) -> None:
        """Correct the token buckets with what the answer really cost (after the fact)."""
        enc = (slot or self.slots[0]).encoding
        used = len(enc.encode_ordinary("".join(reply.raw)))
        estimate = request.max_tokens or self.config.completion_token_estimate
        extra = used - estimate
        jobs: list[Awaitable[float]] = []
        if extra > 0 and self.config.tenant_tpm:
            jobs.append(
                self.limiter.acquire(
                    tenant_scope, [Limit("tok", self.config.tenant_tpm, extra)], force=True
                )
            )
        if slot is not None and key is not None and slot.key_tpm and used:
            jobs.append(
                self.limiter.acquire(
                    slot.key_limit(key.id), [Limit("tok", slot.key_tpm, used)], force=True
                )
            )
        for job in jobs:
            await job


@dataclass(slots=True)
class _Outcome:
    committed: bool = False
    error: EngineError | None = None
    kind: str = ""

    def fail(self, error: EngineError, kind: str) -> None:
        self.error = error
        self.kind = kind


def _copy_call(base: EngineCall) -> EngineCall:
    return EngineCall(
        messages=base.messages,
        passages=base.passages,
        max_tokens=base.max_tokens,
        temperature=base.temperature,
        language=base.language,
    )


def _try_next_key(err: EngineError) -> bool:
    """Failures that are the key's own: another key of the same engine may work."""
    return isinstance(err, EngineHTTPError) and err.status in (401, 403, 429)


def _ceil(seconds: float) -> float:
    return max(math.ceil(seconds * 10) / 10, 0.1)
