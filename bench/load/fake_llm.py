"""The project's fake OpenAI server (tests/support/fake_openai.py) with per-prompt latency.

A thin ASGI wrapper: for each ``POST /v1/chat/completions`` it reads the last user message and
asks the fake for a first-token latency of ``llm_ttft_ms(text)`` (via the model-name option
``ttft=...``, which wins over the server defaults), so a visitor that knows what it sent knows
exactly how long the model made it wait. Faults are injected through the fake's own
``/_control`` endpoint (modes stall, cut, error...), which this wrapper passes through.

    python -m bench.load.fake_llm --port 8900 --first-token-ms 1200-1800 --tokens-per-s 50
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from typing import Any

import uvicorn

from tests.support.fake_openai import Behaviour, _State, create_app

from .common import llm_ttft_ms, parse_range


def _last_user(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content", "")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


class PerPromptLatency:
    def __init__(self, app: Any, *, lo: float, hi: float) -> None:
        self.app, self.lo, self.hi = app, lo, hi
        # When each prompt arrived (wall clock), by the CRC-32 of its last user turn: the
        # harness splits the system's overhead into before and after the model.
        self.arrivals: dict[str, float] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/arrivals":
            body = json.dumps(self.arrivals).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        arrived = time.time()
        body = b"".join(chunks)
        try:
            data = json.loads(body)
            text = _last_user(data.get("messages"))
            self.arrivals.setdefault(str(zlib.crc32(text.strip().encode("utf-8"))), arrived)
            model = str(data.get("model", "fake"))
            sep = "," if ":" in model else ":"
            data["model"] = f"{model}{sep}ttft={llm_ttft_ms(text, self.lo, self.hi)}"
            body = json.dumps(data, ensure_ascii=False).encode()
        except (ValueError, AttributeError):
            pass
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--first-token-ms", default="1200-1800")
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate")
    parser.add_argument("--ssl-keyfile", default=None)
    args = parser.parse_args(argv)
    lo, hi = parse_range(args.first_token_ms)
    defaults = Behaviour().merged(first_token_ms=args.first_token_ms,
                                  tokens_per_s=args.tokens_per_s, tokens=args.tokens)
    state = _State(defaults, None, args.seed)
    state.embedding_dim = 256  # type: ignore[attr-defined]
    app = PerPromptLatency(create_app(state, min_tick_s=0.01), lo=lo, hi=hi)
    scheme = "https" if args.ssl_certfile else "http"
    print(f"fake LLM on {scheme}://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                lifespan="off", backlog=4096, timeout_keep_alive=60,
                timeout_graceful_shutdown=1, ssl_certfile=args.ssl_certfile,
                ssl_keyfile=args.ssl_keyfile)


if __name__ == "__main__":
    main()
