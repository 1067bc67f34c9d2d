"""An OpenAI-compatible test server that speaks the real HTTP + SSE wire format.

Endpoints: ``POST /v1/chat/completions`` (``stream: true`` gives ``data: {...}\\n\\n`` chunks
ending with ``data: [DONE]``; otherwise one ``chat.completion`` object), ``POST /v1/embeddings``
(deterministic, L2-normalised hashed character n-gram vectors; ``float`` or ``base64``),
``GET /v1/models``, and control endpoints ``POST /_control``, ``POST /_reset``,
``GET /_stats``.

What a request gets (first match wins):

1. options in the ``model`` name: ``"fake:mode=cut,after=3,ttft=100,tps=50"``;
2. the next behaviour queued with `FakeOpenAI.push` or ``POST /_control {"push": [...]}``
   (for one model name with ``model=...`` / ``"model": ...``, else for any request);
3. the server defaults (constructor keywords, `FakeOpenAI.configure`, ``{"defaults": {...}}``).

Behaviour fields (model-name keys in brackets): ``mode`` ok | stall | cut | reset | malformed |
error; ``status`` (an error status: 429, 500, 401...; implies ``mode=error``); ``retry_after``
(seconds, sent as ``Retry-After`` with errors); ``first_token_ms`` [``ttft``] a number or a
range ``"1200-1800"``; ``tokens_per_s`` [``tps``] (0 = no pacing); ``after`` (pieces sent before
a stall/cut/malformed chunk); ``tokens`` (answer length in pieces; default: the echo's length);
``reply`` (the answer text; default ``"OK. "`` + the last user message, so tests can see what
the model received); ``chunk_chars`` (split the answer every N characters instead of into
words / CJK characters); ``stall_s`` (how long a stall lasts, default 3600); ``tool`` (after
the text, a ``tool_calls`` delta calling that function, finish reason ``tool_calls``);
``linger_s`` (the body stays open that long after ``[DONE]``, as behind a slow proxy).

``valid_keys``: when set, any other bearer token gets a 401 (key rotation tests).

Modes: ``stall`` stops sending after ``after`` pieces (``after=0``: before the first token);
``cut`` ends the response cleanly but with no finish reason and no ``[DONE]``; ``reset`` aborts
the connection mid-body; ``malformed`` sends a chunk that is not JSON.

In tests::

    with FakeOpenAI(first_token_ms=5) as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="k")

Standalone (load harness)::

    python -m tests.support.fake_openai --port 8900 --first-token-ms 1200-1800 --tokens-per-s 50

Pacing batches due pieces into one write per wake-up (at least ``min_tick_s`` apart), so a
single process serves thousands of concurrent streams.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import math
import random
import re
import socket
import struct
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["Behaviour", "FakeOpenAI", "create_app", "embed", "free_port"]

_MODES = ("ok", "stall", "cut", "reset", "malformed", "error")
_PIECE_RE = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]|[^\s\u4e00-\u9fff]+\s*|\s+")


@dataclass(frozen=True)
class Behaviour:
    mode: str = "ok"
    status: int = 200
    retry_after: float | None = None
    first_token_ms: tuple[float, float] = (0.0, 0.0)
    tokens_per_s: float = 0.0
    after: int = 3
    tokens: int | None = None
    reply: str | None = None
    stall_s: float = 3600.0
    chunk_chars: int | None = None
    tool: str | None = None  # after the text, call this function (a structured signal)
    linger_s: float = 0.0  # the body stays open this long after [DONE] (a slow proxy)

    def merged(self, **changes: Any) -> Behaviour:
        return replace(self, **_coerce(changes))


_ALIASES = {"ttft": "first_token_ms", "tps": "tokens_per_s", "retry": "retry_after"}
_FIELDS = {f.name for f in fields(Behaviour)}


def _range(value: Any) -> tuple[float, float]:
    if isinstance(value, (list, tuple)):
        lo, hi = float(value[0]), float(value[-1])
    elif isinstance(value, str) and "-" in value.strip("-"):
        a, b = value.split("-", 1)
        lo, hi = float(a), float(b)
    else:
        lo = hi = float(value)
    return (min(lo, hi), max(lo, hi))


def _coerce(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = _ALIASES.get(key, key)
        if key not in _FIELDS:
            raise ValueError(f"unknown behaviour field {key!r}")
        if key == "first_token_ms":
            out[key] = _range(value)
        elif key in ("status", "after", "tokens", "chunk_chars"):
            out[key] = None if value in (None, "") else int(value)
        elif key in ("retry_after", "tokens_per_s", "stall_s", "linger_s"):
            out[key] = None if value in (None, "") else float(value)
        else:
            out[key] = value
    if out.get("status", 200) != 200 and "mode" not in out:
        out["mode"] = "error"
    if "mode" in out and out["mode"] not in _MODES:
        raise ValueError(f"unknown mode {out['mode']!r}")
    return out


def _model_options(model: str) -> dict[str, Any]:
    if ":" not in model:
        return {}
    opts: dict[str, Any] = {}
    for part in model.split(":", 1)[1].split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            opts[key.strip()] = value.strip()
        elif part.strip():
            opts["mode"] = part.strip()
    return opts


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embed(text: str, dim: int = 256) -> list[float]:
    """Deterministic unit vector of hashed character uni/bi/tri-grams (similar text, close)."""
    vec = [0.0] * dim
    t = text.lower()
    for n, weight in ((1, 0.5), (2, 1.0), (3, 1.0)):
        for i in range(len(t) - n + 1):
            h = zlib.crc32(t[i : i + n].encode())
            vec[h % dim] += weight if (h >> 31) & 1 else -weight
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class _State:
    def __init__(self, defaults: Behaviour, valid_keys: set[str] | None, seed: int) -> None:
        self.defaults = defaults
        self.valid_keys = valid_keys
        self.queue: deque[Behaviour] = deque()
        self.model_queues: dict[str, deque[Behaviour]] = {}
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self.stats: Counter[str] = Counter()
        self.active = 0
        self.peak_active = 0
        self.peers: set[tuple[str, int]] = set()  # client addresses: one per TCP connection

    def behaviour_for(self, model: str) -> Behaviour:
        opts = _model_options(model)
        name = model.split(":", 1)[0]
        with self.lock:
            own = self.model_queues.get(name)
            if own:
                queued: Behaviour | None = own.popleft()
            else:
                queued = self.queue.popleft() if self.queue else None
        base = queued or self.defaults
        return base.merged(**opts) if opts else base


def _error(status: int, message: str, *, retry_after: float | None = None) -> JSONResponse:
    kinds = {
        400: "invalid_request_error",
        401: "invalid_api_key",
        403: "permission_denied",
        404: "not_found",
        408: "timeout",
        429: "rate_limit_exceeded",
    }
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    body = {
        "error": {
            "message": message,
            "type": kinds.get(status, "server_error"),
            "param": None,
            "code": kinds.get(status, "server_error"),
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _pieces(behaviour: Behaviour, messages: list[dict[str, Any]]) -> list[str]:
    if behaviour.reply is not None:
        text = behaviour.reply
    else:
        last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        content = last.get("content", "")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        text = "OK. " + str(content)
    if behaviour.chunk_chars:
        step = behaviour.chunk_chars
        pieces = [text[i : i + step] for i in range(0, len(text), step)] or [text]
    else:
        pieces = _PIECE_RE.findall(text) or [text]
    if behaviour.tokens is not None:
        n = behaviour.tokens
        if n <= len(pieces):
            pieces = pieces[:n]
        else:
            filler = ["lorem ", "ipsum ", "dolor ", "sit ", "amet "]
            pieces = pieces + [filler[i % len(filler)] for i in range(n - len(pieces))]
    return pieces


def create_app(state: _State, *, min_tick_s: float = 0.005) -> Starlette:
    async def chat(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body is not JSON")
        auth = request.headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else ""
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        state.stats["requests"] += 1
        if request.client is not None:
            state.peers.add((request.client.host, request.client.port))
        state.requests.append(
            {
                "model": model,
                "messages": messages,
                "key": key,
                "stream": bool(body.get("stream")),
                "body": body,
            }
        )
        if state.valid_keys is not None and key not in state.valid_keys:
            state.stats["status_401"] += 1
            return _error(401, "Incorrect API key provided.")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list")
        b = state.behaviour_for(model)
        state.stats[f"mode_{b.mode}"] += 1
        lo, hi = b.first_token_ms
        ttft = (lo if lo == hi else state.rng.uniform(lo, hi)) / 1000.0
        if b.mode == "error":
            if ttft:
                await asyncio.sleep(ttft)
            status = b.status if b.status >= 400 else 500
            state.stats[f"status_{status}"] += 1
            return _error(status, f"injected error {status}", retry_after=b.retry_after)
        pieces = _pieces(b, messages)
        if body.get("max_tokens"):
            pieces = pieces[: int(body["max_tokens"])]
            finish = "length" if len(pieces) == int(body["max_tokens"]) else "stop"
        else:
            finish = "stop"
        created = int(time.time())
        cid = f"chatcmpl-{state.stats['requests']:08d}"
        if not body.get("stream"):
            if ttft:
                await asyncio.sleep(ttft)
            if b.mode == "stall":
                await asyncio.sleep(b.stall_s)
            text = "".join(pieces)
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish,
                            "logprobs": None,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": sum(len(str(m.get("content", ""))) for m in messages),
                        "completion_tokens": len(pieces),
                        "total_tokens": len(pieces),
                    },
                }
            )
        prefix = f'"id":"{cid}","object":"chat.completion.chunk","created":{created},'
        prefix += f'"model":{json.dumps(model)},'
        head = "data: {" + prefix + '"choices":[{"index":0,"delta":'
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(piece: str) -> str:
            content = json.dumps(piece, ensure_ascii=False)
            return head + '{"content":' + content + '},"finish_reason":null}]}\n\n'

        async def events() -> AsyncIterator[bytes]:
            state.active += 1
            state.peak_active = max(state.peak_active, state.active)
            try:
                loop = asyncio.get_running_loop()
                if ttft:
                    await asyncio.sleep(ttft)
                out = [head + '{"role":"assistant","content":""},"finish_reason":null}]}\n\n']
                limit = len(pieces)
                if b.mode in ("stall", "cut", "reset", "malformed"):
                    limit = min(b.after, len(pieces))
                tps = b.tokens_per_s
                start = loop.time()
                sent = 0
                while sent < limit:
                    due = limit if tps <= 0 else min(limit, 1 + int((loop.time() - start) * tps))
                    out.extend(chunk(p) for p in pieces[sent:due])
                    sent = due
                    yield "".join(out).encode()
                    out = []
                    if sent < limit:
                        await asyncio.sleep(max(start + sent / tps - loop.time(), min_tick_s))
                if out:
                    yield "".join(out).encode()
                if b.mode == "stall":
                    state.stats["stalled"] += 1
                    await asyncio.sleep(b.stall_s)
                    return
                if b.mode == "cut":
                    return
                if b.mode == "reset":
                    raise ConnectionAbortedError("injected connection reset")
                if b.mode == "malformed":
                    yield b'data: {"id": "broken", "choices": [{"delta": {"content": "x"\n\n'
                    return
                if b.tool:
                    call = {"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": b.tool, "arguments": "{}"}}
                    yield (head + json.dumps({"tool_calls": [call]}) +
                           ',"finish_reason":null}]}\n\n').encode()
                tail = head + '{},"finish_reason":"' + (
                    "tool_calls" if b.tool else finish) + '"}]}\n\n'
                if include_usage:
                    n = len(pieces)
                    usage = (
                        f'"usage":{{"prompt_tokens":0,"completion_tokens":{n},"total_tokens":{n}}}'
                    )
                    tail += "data: {" + prefix + '"choices":[],' + usage + "}\n\n"
                yield (tail + "data: [DONE]\n\n").encode()
                state.stats["completed"] += 1
                if b.linger_s:
                    await asyncio.sleep(b.linger_s)
            finally:
                state.active -= 1

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        state.stats["embeddings"] += 1
        inputs = body.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        dim = int(body.get("dimensions") or state.embedding_dim)  # type: ignore[attr-defined]
        as_b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vec = embed(str(text), dim)
            value: Any = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if as_b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(len(str(t)) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "kefu-tests"}],
            }
        )

    async def control(request: Request) -> Response:
        body = await request.json()
        with state.lock:
            if "defaults" in body:
                state.defaults = state.defaults.merged(**body["defaults"])
            model = body.get("model")
            queue = state.queue if model is None else state.model_queues.setdefault(model, deque())
            for item in body.get("push", []):
                queue.append(state.defaults.merged(**item))
            if "valid_keys" in body:
                vk = body["valid_keys"]
                state.valid_keys = None if vk is None else set(vk)
        return JSONResponse({"ok": True, "defaults": _jsonable(state.defaults)})

    async def reset(request: Request) -> Response:
        with state.lock:
            state.queue.clear()
            state.model_queues.clear()
            state.requests.clear()
            state.stats.clear()
        return JSONResponse({"ok": True})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {**state.stats, "active": state.active, "peak_active": state.peak_active,
             "connections": len(state.peers)}
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/_control", control, methods=["POST"]),
            Route("/_reset", reset, methods=["POST"]),
            Route("/_stats", stats, methods=["GET"]),
        ]
    )


class _QuietInjectedResets(logging.Filter):
    """Drop uvicorn's traceback for the connection resets this server injects on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ConnectionAbortedError) and "injected" in str(exc))


logging.getLogger("uvicorn.error").addFilter(_QuietInjectedResets())


def _jsonable(b: Behaviour) -> dict[str, Any]:
    d = asdict(b)
    d["first_token_ms"] = list(b.first_token_ms)
    return d


class FakeOpenAI:
    """The test server in a background thread: ``start()`` returns the base URL (``.../v1``)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        valid_keys: set[str] | list[str] | None = None,
        embedding_dim: int = 256,
        seed: int = 0,
        min_tick_s: float = 0.005,
        **defaults: Any,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self._state = _State(
            Behaviour().merged(**defaults), None if valid_keys is None else set(valid_keys), seed
        )
        self._state.embedding_dim = embedding_dim  # type: ignore[attr-defined]
        self.app = create_app(self._state, min_tick_s=min_tick_s)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> str:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=4096,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=5)
                if self._thread.is_alive():
                    self._server.force_exit = True
                    self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (thread-safe) ----------------------------------------------------------------

    def configure(self, **defaults: Any) -> None:
        """Change the defaults for the requests that follow."""
        with self._state.lock:
            self._state.defaults = self._state.defaults.merged(**defaults)

    def push(self, *behaviours: dict[str, Any], model: str | None = None) -> None:
        """Queue behaviours for the next requests, one each, in order (over the defaults).

        With ``model``, only requests for that model name (before any ``:options``) take them.
        """
        with self._state.lock:
            queue = (
                self._state.queue
                if model is None
                else self._state.model_queues.setdefault(model, deque())
            )
            for item in behaviours:
                queue.append(self._state.defaults.merged(**item))

    def set_valid_keys(self, keys: set[str] | list[str] | None) -> None:
        self._state.valid_keys = None if keys is None else set(keys)

    def reset(self) -> None:
        with self._state.lock:
            self._state.queue.clear()
            self._state.model_queues.clear()
            self._state.requests.clear()
            self._state.stats.clear()
            self._state.peers.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last 1000 chat requests: model, messages, key, stream, body."""
        return list(self._state.requests)

    @property
    def stats(self) -> dict[str, int]:
        return {
            **self._state.stats,
            "active": self._state.active,
            "peak_active": self._state.peak_active,
            "connections": len(self._state.peers),
        }


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[FakeOpenAI]:
    """``with running(first_token_ms=5) as fake: ...``"""
    server = FakeOpenAI(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server (SSE streaming).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument(
        "--first-token-ms", default="0", help="a number or a range such as 1200-1800"
    )
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="0 = as fast as possible")
    parser.add_argument("--tokens", type=int, default=None, help="answer length in pieces")
    parser.add_argument("--mode", default="ok", choices=_MODES)
    parser.add_argument("--valid-key", action="append", default=None, help="accept only these keys")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-tick-ms",
        type=float,
        default=20.0,
        help="paced pieces due together go out in one write, at most every this often",
    )
    args = parser.parse_args(argv)
    server = FakeOpenAI(
        host=args.host,
        port=args.port,
        valid_keys=args.valid_key,
        seed=args.seed,
        first_token_ms=args.first_token_ms,
        tokens_per_s=args.tokens_per_s,
        tokens=args.tokens,
        mode=args.mode,
        min_tick_s=args.min_tick_ms / 1000.0,
    )
    print(f"fake OpenAI server on {server.base_url}", flush=True)
    config = uvicorn.Config(
        server.app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
