"""Connections to the model over HTTPS: kept between replies, or a new one (TCP + TLS) per reply.

The fake model (bench/load/fake_llm.py) serves HTTPS with a self-signed certificate made for
the run (openssl); the router streams replies from it through the `openai` client, as the
gateway and the `stream` function do. Two ways, back to back, same replies:

- ``kept``: the engine as it is (its pool keeps the connections between replies);
- ``new per reply``: the same engine with ``Connection: close`` on every request, which is
  what happened when a reply's connection was closed after it (a response left unread).

Printed per way: the client's CPU milliseconds per reply (this process: the router, the SDK,
TLS), the time to the first token beyond the model's (client side, p50 / p95), and the
connections the server accepted. On a real network a new connection also waits for its TCP and TLS
round trips (two to three RTTs) before the request is sent; on loopback they cost nothing, so
this measures only the CPU and the local handshake.

    .venv/bin/python -m bench.llm_connections [--replies 400] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL_MS = 50.0  # the fake model's first-token latency


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _serve(port: int, cert: Path, key: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load.fake_llm", "--port", str(port),
         "--first-token-ms", f"{MODEL_MS:.0f}", "--tokens-per-s", "0",
         "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the fake model did not start")


def _server_connections(port: int, cert: Path) -> int:
    """Client connections the fake model has seen so far (its ``/_stats``: distinct client
    addresses, so a port the kernel reused for a later connection is counted once)."""
    import json
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/_stats", context=ctx) as r:
        return int(json.load(r)["connections"])


async def _run(base_url: str, *, close: bool, replies: int, concurrency: int) -> dict[str, Any]:
    from kefu_llm import (
        AdapterSettings,
        ChatMessage,
        ChatRequest,
        Delta,
        EngineConfig,
        build_router,
    )

    engine = EngineConfig(name="remote", provider="remote", base_url=base_url, model="fake",
                          api_keys=["sk-bench"],
                          default_headers={"Connection": "close"} if close else {})
    router = build_router(settings=AdapterSettings(engines=[engine], cache_ttl_s=0,
                                                   openai_api_key=None,
                                                   offline_last_resort=False,
                                                   tenant_rpm=10**6), redis=None)
    gate = asyncio.Semaphore(concurrency)
    waits: list[float] = []

    async def reply(i: int) -> None:
        async with gate:
            request = ChatRequest(tenant_id="t", conversation_id=f"c{i}",
                                  messages=[ChatMessage(role="user", content=f"hello {i}")])
            started = time.perf_counter()
            first = None
            async for event in router.stream(request):
                if first is None and isinstance(event, Delta):
                    first = time.perf_counter()
            if first is not None:
                waits.append((first - started) * 1000 - MODEL_MS)

    await asyncio.gather(*(reply(i) for i in range(concurrency)))  # warm: imports, first pool
    waits.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(reply(i) for i in range(replies)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await router.aclose()
    waits.sort()
    return {"replies": len(waits), "cpu_ms_per_reply": round(cpu * 1000 / replies, 2),
            "wall_s": round(wall, 2),
            "first_token_beyond_model_ms": {
                "p50": round(statistics.median(waits), 1),
                "p95": round(waits[int(0.95 * (len(waits) - 1))], 1)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replies", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the two ways this often")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _certificate(Path(tmp))
        os.environ["SSL_CERT_FILE"] = str(cert)  # the SDK's HTTP library trusts it
        port = _free_port()
        server = _serve(port, cert, key)
        try:
            base = f"https://127.0.0.1:{port}/v1"
            print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.replies} replies, "
                  f"{args.concurrency} at once, model first token {MODEL_MS:.0f} ms, HTTPS")
            for r in range(args.rounds):
                for name, close in (("kept", False), ("new per reply", True)):
                    before = _server_connections(port, cert)
                    result = asyncio.run(_run(base, close=close, replies=args.replies,
                                              concurrency=args.concurrency))
                    ft = result["first_token_beyond_model_ms"]
                    print(f"round {r + 1} {name:>13}: {result['cpu_ms_per_reply']:6.2f} ms CPU"
                          f" per reply, first token beyond the model p50 {ft['p50']} / p95"
                          f" {ft['p95']} ms, connections opened "
                          f"{_server_connections(port, cert) - before}, {result['wall_s']} s")
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
