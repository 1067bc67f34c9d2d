"""Latency the adapter adds: the router vs the bare `openai` SDK, same server, same run.

Starts the OpenAI-compatible test server (tests/support/fake_openai.py) in a child process,
then sends ``--requests`` streaming chat requests through each path, alternating, one at a
time: the bare SDK (``AsyncOpenAI.chat.completions.create(stream=True)``) and
``Router.stream`` (one engine, PII redaction on, in-process breakers, limits and cache, or
Redis-backed ones with ``--redis-url``). Tenant rate limits and the response cache are on
(every prompt is new, so every request pays a limit check, a cache miss and a cache write).
Time to first token is measured to the first non-empty piece of text; total time to the end
of the stream.

    python -m bench.adapter_overhead [--requests 400] [--first-token-ms 20] [--tokens 50]
                                     [--tokens-per-s 1000] [--redis-url redis://...]

Goal: p50 under 1 ms and p99 under 5 ms added.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai

from kefu_llm import AdapterSettings, ChatMessage, ChatRequest, Delta, EngineConfig, build_router
from tests.support.fake_openai import free_port

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "tests.support.fake_openai",
        "--port",
        str(port),
        "--first-token-ms",
        str(args.first_token_ms),
        "--tokens-per-s",
        str(args.tokens_per_s),
        "--tokens",
        str(args.tokens),
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


async def bare_once(client: openai.AsyncOpenAI, text: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    stream = await client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": text}], stream=True
    )
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - t0, end - t0


async def router_once(router: Any, text: str) -> tuple[float, float]:
    request = ChatRequest(
        tenant_id="bench", conversation_id="c", messages=[ChatMessage(role="user", content=text)]
    )
    t0 = time.perf_counter()
    first = None
    async for event in router.stream(request):
        if first is None and isinstance(event, Delta):
            first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - t0, end - t0


async def run(args: argparse.Namespace, url: str) -> dict[str, list[float]]:
    client = openai.AsyncOpenAI(base_url=url, api_key="sk-bench", max_retries=0)
    redis = None
    if args.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.Redis.from_url(args.redis_url)
    settings = AdapterSettings(
        engines=[EngineConfig(name="bench", base_url=url, model="fake", api_keys=["sk-bench"])],
        openai_api_key=None,
        openai_base_url=None,
        cache_ttl_s=args.cache_ttl_s,
        tenant_rpm=1_000_000,
        tenant_tpm=1_000_000_000,
    )
    router = build_router(settings=settings, redis=redis, key_prefix=f"kefu-bench:{os.getpid()}:")
    out: dict[str, list[float]] = {
        "bare_ttft": [],
        "bare_total": [],
        "router_ttft": [],
        "router_total": [],
    }
    for i in range(args.warmup + args.requests):
        text = f"订单{i}什么时候发货？我的手机是13812345678"
        paths = [("bare", bare_once, client), ("router", router_once, router)]
        if i % 2:
            paths.reverse()
        for name, fn, target in paths:
            ttft, total = await fn(target, text)
            if i >= args.warmup:
                out[f"{name}_ttft"].append(ttft * 1000)
                out[f"{name}_total"].append(total * 1000)
    await router.aclose()
    await client.close()
    if redis is not None:
        with contextlib.suppress(Exception):
            keys = [k async for k in redis.scan_iter(match=f"kefu-bench:{os.getpid()}:*")]
            if keys:
                await redis.delete(*keys)
        await redis.aclose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--first-token-ms", type=float, default=20)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--tokens-per-s", type=float, default=1000)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--cache-ttl-s", type=float, default=600, help="0 turns the cache off")
    args = parser.parse_args(argv)
    proc, url = start_server(args)
    try:
        res = asyncio.run(run(args, url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out = sys.stdout
    out.write(
        f"{args.requests} requests per path, alternating; server: first token "
        f"{args.first_token_ms:g} ms, {args.tokens} pieces at {args.tokens_per_s:g}/s; "
        f"state: {'Redis' if args.redis_url else 'in-process'}\n"
    )
    load = os.getloadavg()[0]
    out.write(f"machine: {os.cpu_count()} cores, load average {load:.1f} during the run\n")
    out.write(f"{'':<14}{'p50 ms':>10}{'p99 ms':>10}\n")
    for key in ("bare_ttft", "router_ttft", "bare_total", "router_total"):
        out.write(f"{key:<14}{pct(res[key], 0.5):>10.2f}{pct(res[key], 0.99):>10.2f}\n")
    for what in ("ttft", "total"):
        d50 = pct(res[f"router_{what}"], 0.5) - pct(res[f"bare_{what}"], 0.5)
        d99 = pct(res[f"router_{what}"], 0.99) - pct(res[f"bare_{what}"], 0.99)
        paired = [r - b for r, b in zip(res[f"router_{what}"], res[f"bare_{what}"], strict=True)]
        out.write(
            f"added {what:<6} p50 {d50:+.2f} ms, p99 {d99:+.2f} ms "
            f"(paired median {statistics.median(paired):+.2f} ms)\n"
        )
    cmd = (
        f"python -m bench.adapter_overhead --requests {args.requests} --first-token-ms "
        f"{args.first_token_ms:g} --tokens {args.tokens} --tokens-per-s {args.tokens_per_s:g}"
    )
    if args.redis_url:
        cmd += f" --redis-url {args.redis_url}"
    out.write(f"reproduce: {cmd}\n")


if __name__ == "__main__":
    main()
