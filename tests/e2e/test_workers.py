"""``kefu run --workers 2``: two gateway processes on one port, reaching each other's tabs.

The command runs as users run it (a real process, production mode); the kernel spreads the
connections over the workers (SO_REUSEPORT), and a reply written on one worker reaches the
visitor's tab held by the other through the Redis hub.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

import psutil
import pytest
import redis
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.kefu_process import kefu_run

pytestmark = pytest.mark.timeout(300)

SECRET = "workers-test-secret-0123456789-abcdefgh"


def _owners(redis_url: str, prefix: str) -> dict[str, str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = list(client.scan_iter(match=f"{prefix}gw:owner:*"))
    return {key.rsplit(":", 1)[1]: client.get(key) or "" for key in keys}


async def _frames_until(ws: websockets.ClientConnection, kind: str) -> list[dict[str, object]]:
    seen = []
    async with asyncio.timeout(30):
        while True:
            frame = json.loads(await ws.recv())
            seen.append(frame)
            if frame["type"] == kind:
                return seen


async def _tabs_on_both_workers(url: str, token: str, redis_url: str, prefix: str) -> None:
    tabs = [await websockets.connect(f"{url}?token={token}") for _ in range(12)]
    try:
        for tab in tabs:
            await tab.send(json.dumps({"action": "sync", "last_seq": 0}))
            await _frames_until(tab, "history")
        # THEN the connections are spread over two worker replicas
        owners = set(_owners(redis_url, prefix).values())
        assert len(owners) == 2 and all(o.endswith(("-w0", "-w1")) for o in owners), owners
        # WHEN the visitor writes in one tab
        await tabs[0].send(json.dumps({"action": "message", "client_msg_id": "c-1",
                                       "text": "hello"}))
        first = await _frames_until(tabs[0], "final")
        # THEN every other tab, on either worker, sees the whole streamed reply
        for tab in tabs[1:]:
            frames = await _frames_until(tab, "final")
            assert any(f["type"] == "message" and f["text"] == "hello" for f in frames)
            assert frames[-1]["text"] == first[-1]["text"]
    finally:
        for tab in tabs:
            await tab.close()


def test_two_workers_share_the_port_and_deliver_to_each_others_tabs(
    tmp_path: Path, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    # GIVEN `kefu run --workers 2` in production mode
    env = {"KEFU_ENV": "production", "TOKEN_SECRETS": SECRET, "DATABASE_URL": pg_dsn,
           "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
           "GATEWAY_MANAGEMENT_KEYS": "AKIDWORKERS:management-secret-0123456789",
           "DATA_DIR": str(tmp_path / "data")}
    token = issue_token(secrets=[SECRET], tenant_id="acme", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    with kefu_run(env, tmp_path / "out", args=("--workers", "2")) as kefu:
        kefu.wait_until_serving()
        workers = psutil.Process(kefu.proc.pid).children()
        assert len(workers) == 2
        # WHEN one visitor opens a dozen tabs
        asyncio.run(_tabs_on_both_workers(kefu.ws, token, redis_url, redis_prefix))
        # AND the parent is stopped as docker or systemd stop it
        code = kefu.stop(signal.SIGTERM)
    # THEN it exits cleanly and leaves no worker behind
    assert code == 0, kefu.output()[-2000:]
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
