"""The router: one reply over a chain of engines, with breakers, limits, cache and PII.

`Router.stream` in steps: `_prepare` (the engines, the token estimate, the cache keys),
`_admit` (tenant rate limit -> `Busy`, cache lookup -> `_replay`), `_engine_calls` (the call
and its PII-redacted copy), `_try_engine` for each engine of the chain until one completes the
reply (`_complete`), and `_finish` when none does. Engines never change the call: each stream
ends with an `EngineOutcome` (finish reason, handoff, answered) that `_complete` carries into
the `Final`.

Before the first streamed token (the commit point) any failure — timeout,
error, open breaker, rate-limited key — moves on to the next key or engine. After it, a cut,
stalled or malformed stream ends the reply ``incomplete``, or, with ``midstream_fallback``,
continues it on the next engine that can continue (``Final.reason = "continued_on:<name>"``).
The last engine of the chain is never skipped for an open breaker.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
)
from contextlib import aclosing
from dataclasses import dataclass, field, replace
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
from ._types import Busy, ChatRequest, Delta, EngineCall, EngineOutcome, Event, Final

__all__ = ["EngineSlot", "Router", "RouterConfig"]

logger = logging.getLogger("kefu.llm.router")

_CONTINUE = {
    "zh": "（上面的回答被中断了。请从中断处直接接着写，不要重复已写的内容。）",
    "en": "(The answer above was cut off. Continue exactly where it stopped; do not repeat it.)",
}
# How a stream that ended without an `EngineOutcome` ended.
_UNSAID = EngineOutcome()
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

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Turn:
    """A request as the router plans it, before anything is sent."""

    request: ChatRequest
    slots: list[EngineSlot]
    deadline: float  # event-loop time
    prompt_tokens: int
    tenant_scope: str
    limits: list[Limit]  # the tenant's, charged at admission
    digests: list[tuple[str, str]]  # (engine, cache key) of each remote engine; cache on only


@dataclass(frozen=True, slots=True)
class _Calls:
    """What the engines are sent: local engines the plain call, remote ones the redacted one."""

    language: str
    plain: EngineCall
    redacted: EngineCall | None  # None: redaction failed, no remote engine may be sent it
    redactor: Redactor | None

    def restorer(self, engine: Engine) -> Restorer:
        """Puts the PII back into what ``engine`` says."""
        if self.redactor is None or engine.local:
            return Restorer({})
        return self.redactor.restorer()


@dataclass(slots=True)
class _Reply:
    """A reply as it is streamed over the chain: what was said, and why it is not done yet."""

    raw: list[str] = field(default_factory=list)  # model output as sent (placeholders)
    shown: list[str] = field(default_factory=list)  # restored text given to the caller
    engine: str = ""
    fallback_used: bool = False
    cut_reason: str | None = None
    last_error: str = "no_engine"
    tried_any: bool = False  # some engine was called (not every key rate limited)
    limited_wait: float = 0.0  # the shortest wait of the rate-limited keys
    final: Final | None = None  # set when an engine completed the reply

    def rate_limited(self, wait: float) -> None:
        self.limited_wait = min(self.limited_wait, wait) if self.limited_wait else wait
        self.last_error = "rate_limited"


@dataclass(slots=True)
class _Attempt:
    """One call of one engine with one key: whether it got past the first token, its failure
    or how it ended."""

    committed: bool = False
    error: EngineError | None = None
    kind: str = ""
    outcome: EngineOutcome = _UNSAID

    def fail(self, error: EngineError, kind: str) -> None:
        self.error = error
        self.kind = kind


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
    def sees_images(self) -> bool:
        """Whether an engine of the chain reads images (``images: true`` in its configuration):
        only then is a picture worth reading and attaching to a request."""
        return any(getattr(slot.engine, "sees_images", False) for slot in self.slots)

    @property
    def engine_names(self) -> list[str]:
        return [s.name for s in self.slots]

    # -- public -----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Deltas then exactly one `Final`, or a single `Busy`."""
        turn = self._prepare(request)
        wait, hit = await self._admit(turn.tenant_scope, turn.limits, turn.digests)
        if wait > 0:
            yield Busy(retry_after_s=_ceil(wait), scope="tenant")
            return
        if hit is not None:
            for event in self._replay(*hit):
                yield event
            return
        calls = self._engine_calls(request)
        reply = _Reply()
        loop = asyncio.get_running_loop()
        for idx, slot in enumerate(turn.slots):
            if reply.raw and not slot.engine.supports_continuation:
                continue
            if loop.time() >= turn.deadline:
                reply.last_error = "total_timeout"
                break
            async with aclosing(self._try_engine(turn, calls, reply, idx)) as deltas:
                async for delta in deltas:
                    yield delta
            if reply.final is not None:
                yield reply.final
                return
            if reply.raw and not (self.config.midstream_fallback and loop.time() < turn.deadline):
                break
        yield self._finish(turn, reply)

    async def summarize(self, text: str, *, language: str = "zh", max_tokens: int = 256) -> str:
        """A summary by the first remote engine that answers (for `compress_history`).

        Raises `KefuLLMError` when no engine could summarise; PII is redacted on the way out
        and restored on the way back, as for replies.
        """
        lang = "zh" if language.startswith("zh") else "en"
        redactor = self._redactor()
        body = redactor.redact(text) if self.config.pii_redaction else text
        call = EngineCall(
            messages=[
                {"role": "system", "content": _SUMMARY_PROMPT[lang]},
                {"role": "user", "content": body},
            ],
            max_tokens=max_tokens,
            temperature=0.0,
            language=lang,
        )
        deadline = asyncio.get_running_loop().time() + self.config.total_timeout_s
        for idx, slot in enumerate(self.slots):
            if slot.engine.local and slot.engine.provider == "offline":
                continue
            try:
                keys = await self._usable_keys(
                    slot, is_last=idx == len(self.slots) - 1, prompt_tokens=0
                )
            except _Skip:
                continue
            for key in keys[:1]:
                if await self._key_admission(slot, key, 0) > 0:
                    continue
                attempt = _Attempt()
                parts = [
                    p async for p in self._attempt(slot, call, key, attempt, deadline=deadline)
                ]
                if attempt.error is None:
                    await self._on_success(slot, key)
                    return redactor.restore("".join(parts))
                await self._on_failure(slot, key, attempt.error, attempt.kind)
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

    # -- the steps of a reply ---------------------------------------------------------------

    def _prepare(self, request: ChatRequest) -> _Turn:
        """The engines to try, the tokens the request will cost, where its answer is cached."""
        cfg = self.config
        slots = self.slots if request.fallback else self.slots[:1]
        encoding = slots[0].encoding
        prompt_tokens = 0
        if cfg.tenant_tpm or any(s.key_tpm for s in slots):  # only a token budget needs them
            prompt_tokens = count_message_tokens(request.messages, enc=encoding)
            if request.passages:
                prompt_tokens += sum(len(encoding.encode_ordinary(p)) for p in request.passages)
        expected = prompt_tokens + (request.max_tokens or cfg.completion_token_estimate)
        digests: list[tuple[str, str]] = []
        # A reply about a picture is not cached: the cache key is the text alone.
        if self.cache.enabled and not any(m.images for m in request.messages):
            digests = [
                (s.name, cache_key(request, s.cache_id)) for s in slots if not s.engine.local
            ]
        return _Turn(
            request=request,
            slots=slots,
            deadline=asyncio.get_running_loop().time() + cfg.total_timeout_s,
            prompt_tokens=prompt_tokens,
            tenant_scope=f"tenant:{request.tenant_id}",
            limits=[Limit("req", cfg.tenant_rpm, 1), Limit("tok", cfg.tenant_tpm, expected)],
            digests=digests,
        )

    def _replay(self, engine: str, text: str) -> Iterator[Event]:
        """A cached answer, streamed again in small pieces."""
        step = max(self.config.cache_replay_chunk_chars, 1)
        for i in range(0, len(text), step):
            yield Delta(text[i : i + step])
        yield Final(text=text, status="complete", engine=engine, cached=True)

    def _engine_calls(self, request: ChatRequest) -> _Calls:
        """The call in the visitor's language, and its PII-redacted copy for remote engines."""
        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        lang = request.language or detect_language(question)
        lang = "zh" if lang.lower().startswith("zh") else "en"
        plain = EngineCall(
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            images={i: list(m.images) for i, m in enumerate(request.messages) if m.images},
            passages=list(request.passages),
            more_passages=list(request.more_passages),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            language=lang,
        )
        if not self.config.pii_redaction:
            return _Calls(language=lang, plain=plain, redacted=replace(plain, more_passages=[]),
                          redactor=None)
        redactor = self._redactor()
        try:
            redacted = replace(
                plain,
                messages=[
                    {"role": m["role"], "content": redactor.redact(m["content"])}
                    for m in plain.messages
                ],
                passages=redactor.redact_all(plain.passages),
                more_passages=[],
            )
        except RedactionError:
            logger.error(
                "PII detection failed: only local engines may answer",
                extra={"tenant": request.tenant_id},
            )
            return _Calls(language=lang, plain=plain, redacted=None, redactor=redactor)
        return _Calls(language=lang, plain=plain, redacted=redacted, redactor=redactor)

    async def _try_engine(
        self, turn: _Turn, calls: _Calls, reply: _Reply, idx: int
    ) -> AsyncGenerator[Delta, None]:
        """One engine of the chain: its usable keys in turn, streaming what it says.

        Ends with ``reply.final`` set when the engine completed the reply; otherwise ``reply``
        says why it did not (and holds what was streamed before a mid-stream failure).
        """
        slot = turn.slots[idx]
        base = calls.plain if slot.engine.local else calls.redacted
        if base is None:
            reply.last_error = "redaction_failed"
            return
        continuing = bool(reply.raw)
        call = self._continuation(base, "".join(reply.raw), calls.language) if continuing else base
        restorer = calls.restorer(slot.engine)
        try:
            keys = await self._usable_keys(
                slot, is_last=idx == len(turn.slots) - 1, prompt_tokens=turn.prompt_tokens
            )
        except _Skip as skip:
            reply.last_error = skip.reason
            return
        if idx > 0:  # anything but the first engine of the chain is a fallback
            reply.fallback_used = True
        for key in keys:
            wait = await self._key_admission(slot, key, turn.prompt_tokens)
            if wait > 0:
                reply.rate_limited(wait)
                continue
            reply.tried_any = True
            attempt = _Attempt()
            async with aclosing(
                self._attempt(slot, call, key, attempt, deadline=turn.deadline)
            ) as pieces:
                async for piece in pieces:
                    reply.raw.append(piece)
                    shown = restorer.feed(piece)
                    if shown:
                        reply.shown.append(shown)
                        yield Delta(shown)
            if attempt.committed or attempt.error is None:
                tail = restorer.flush()
                if tail:
                    reply.shown.append(tail)
                    yield Delta(tail)
            if attempt.error is None:
                reply.final = await self._complete(turn, reply, slot, key, attempt, continuing)
                return
            reply.last_error = attempt.kind
            await self._on_failure(slot, key, attempt.error, attempt.kind)
            if attempt.committed or continuing:
                reply.engine = slot.name
                reply.cut_reason = reply.cut_reason or attempt.kind
                return  # mid-stream failure: no other key of this engine
            if not _try_next_key(attempt.error):
                return

    async def _complete(
        self,
        turn: _Turn,
        reply: _Reply,
        slot: EngineSlot,
        key: ApiKeyEntry | None,
        attempt: _Attempt,
        continuing: bool,
    ) -> Final:
        """A reply the engine completed: breakers told, answer cached, bookkeeping started."""
        outcome = attempt.outcome
        reply.engine = slot.name
        await self._on_success(slot, key)
        text = "".join(reply.shown)
        reason = (
            f"continued_on:{slot.name}"
            if continuing
            else ("length" if outcome.finish_reason == "length" else None)
        )
        cache_digest = None
        if not (continuing or slot.engine.local or reason is not None or outcome.handoff):
            cache_digest = next((d for n, d in turn.digests if n == slot.name), None)
            if cache_digest is not None:
                self.cache.put_local(slot.name, cache_digest, text)
        self._spawn(self._after_reply(turn, slot, key, reply, cache_digest, text))
        return Final(
            text=text,
            status="complete",
            engine=slot.name,
            fallback_used=reply.fallback_used,
            reason=reason,
            handoff=outcome.handoff,
            answered=outcome.answered,
        )

    def _finish(self, turn: _Turn, reply: _Reply) -> Event:
        """The end of a reply no engine completed: cut short, rate limited, or failed."""
        if reply.raw:
            self._spawn(self._after_reply(turn, None, None, reply, None, ""))
            return Final(
                text="".join(reply.shown),
                status="incomplete",
                engine=reply.engine,
                fallback_used=reply.fallback_used,
                reason=reply.cut_reason or reply.last_error,
            )
        if reply.limited_wait > 0 and not reply.tried_any:
            return Busy(retry_after_s=_ceil(reply.limited_wait), scope="key")
        return Final(
            text="",
            status="incomplete",
            engine=reply.engine or "none",
            fallback_used=reply.fallback_used,
            reason=reply.last_error,
        )

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
        turn: _Turn,
        slot: EngineSlot | None,
        key: ApiKeyEntry | None,
        reply: _Reply,
        cache_digest: str | None,
        text: str,
    ) -> None:
        try:
            await self._charge_completion(turn, slot, key, reply)
            if cache_digest is not None:
                await self.cache.put_remote(cache_digest, text)
        except Exception:
            logger.warning("bookkeeping after a reply failed", exc_info=True)

    def _redactor(self) -> Redactor:
        return Redactor(self._detector) if self._detector else Redactor()

    @staticmethod
    def _continuation(base: EngineCall, partial: str, lang: str) -> EngineCall:
        return replace(
            base,
            messages=[
                *base.messages,
                {"role": "assistant", "content": partial},
                {"role": "user", "content": _CONTINUE[lang]},
            ],
        )

    async def _usable_keys(
        self, slot: EngineSlot, *, is_last: bool, prompt_tokens: int
    ) -> list[ApiKeyEntry | None]:
        engine = slot.engine
        provider_bid = slot.provider_breaker
        if not is_last:
            ok, _ = await self.breakers.allow([provider_bid])
            if not ok:
                raise _Skip("breaker_open")
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
        attempt: _Attempt,
        *,
        deadline: float,
    ) -> AsyncGenerator[str, None]:
        """The engine's text pieces under its timeouts; ``attempt`` says how it ended."""
        loop = asyncio.get_running_loop()
        gen = cast(AsyncGenerator[str | EngineOutcome, None], slot.engine.stream(call, key=key))
        attempt_deadline = min(deadline, loop.time() + slot.total_timeout_s)
        try:
            while True:
                wait = slot.stall_timeout_s if attempt.committed else slot.first_token_timeout_s
                try:
                    async with asyncio.timeout_at(min(attempt_deadline, loop.time() + wait)):
                        item = await anext(gen)
                except StopAsyncIteration:
                    if not attempt.committed:
                        attempt.fail(EngineError(f"{slot.name}: empty stream", kind="cut"), "empty")
                    return
                except TimeoutError:
                    # the whole reply's deadline before the first token, the attempt's after
                    over = loop.time() >= (attempt_deadline if attempt.committed else deadline)
                    attempt.fail(*_timeout(slot.name, committed=attempt.committed, over=over))
                    return
                except EngineError as exc:
                    attempt.fail(exc, exc.kind)
                    return
                except Exception as exc:  # an engine bug must not break the reply
                    logger.exception("engine raised unexpectedly", extra={"engine": slot.name})
                    attempt.fail(
                        EngineError(f"{slot.name}: {type(exc).__name__}", kind="error"), "error"
                    )
                    return
                if isinstance(item, EngineOutcome):
                    attempt.outcome = item
                    return
                attempt.committed = True
                yield item
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
        self, turn: _Turn, slot: EngineSlot | None, key: ApiKeyEntry | None, reply: _Reply
    ) -> None:
        """Correct the token buckets with what the answer really cost (after the fact)."""
        key_budget = slot is not None and key is not None and slot.key_tpm
        if not (self.config.tenant_tpm or key_budget):
            return  # no token budget to correct: the answer is not tokenized
        enc = (slot or self.slots[0]).encoding
        used = len(enc.encode_ordinary("".join(reply.raw)))
        estimate = turn.request.max_tokens or self.config.completion_token_estimate
        extra = used - estimate
        jobs: list[Awaitable[float]] = []
        if extra > 0 and self.config.tenant_tpm:
            jobs.append(
                self.limiter.acquire(
                    turn.tenant_scope, [Limit("tok", self.config.tenant_tpm, extra)], force=True
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


def _timeout(engine: str, *, committed: bool, over: bool) -> tuple[EngineError, str]:
    """The failure of an engine silent for too long, and its kind: before its first token
    (``first_token_timeout``) or after (``stall``); ``total_timeout`` when the deadline was
    ``over``."""
    if committed:
        kind = "total_timeout" if over else "stall"
        return EngineTimeout(f"{engine}: stream {kind}", kind="stall"), kind
    kind = "total_timeout" if over else "first_token_timeout"
    return EngineTimeout(f"{engine}: no first token in time", kind="timeout"), kind


def _try_next_key(err: EngineError) -> bool:
    """Failures that are the key's own: another key of the same engine may work."""
    return isinstance(err, EngineHTTPError) and err.status in (401, 403, 429)


def _ceil(seconds: float) -> float:
    return max(math.ceil(seconds * 10) / 10, 0.1)
