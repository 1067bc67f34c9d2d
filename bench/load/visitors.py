"""Simulated visitors: one process drives a shard of them over real WebSocket connections.

    python -m bench.load.visitors CONFIG.json SHARD

Each visitor connects (from its own 127.0.0.x source address), resumes with ``sync``, and, if
it is one of the chatting visitors, sends the user turns of a dialogue on a human rhythm: it
waits for the reply, reads and types (``think_s`` plus ``len(text) / type_cps`` seconds), then
sends the next turn. Like the widget it resends an unacknowledged message under the same
``client_msg_id`` (after an error frame with ``retry``, an ``ack_timeout_s`` or a reconnect),
reconnects with jittered backoff when the connection drops (trying the next gateway URL when
one refuses), and resumes with ``sync`` from the last sequence number it saw.

Every message is recorded (times are this process's ``perf_counter``; ``t_send_wall`` is
wall-clock) and written with the shard's counters to ``<out_dir>/visitors-<shard>.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kefu_core.security.tokens import issue_token

from .common import llm_ttft_ms

now = time.perf_counter


@dataclass
class Msg:
    cid: str
    text: str
    ttft_ms: int
    t_send: float
    t_send_wall: float
    sends: int = 1
    t_ack: float | None = None
    acked_via: str | None = None  # "ack" | "sync"
    seq: int | None = None
    duplicate_ack: bool = False
    t_first: float | None = None
    t_final: float | None = None
    final_via: str | None = None  # "final" | "sync"
    status: str | None = None
    engine: str | None = None
    fallback_used: bool = False
    reason: str | None = None
    deltas: int = 0
    delta_chars: int = 0
    delta_gap: bool = False
    text_mismatch: bool = False
    reconnected: bool = False  # the connection dropped between send and final
    busy: bool = False
    errors: list[str] = field(default_factory=list)
    conversation_id: str | None = None
    no_reply: bool = False
    resend_scheduled: bool = False
    retries: int = 0


class Shard:
    def __init__(self, cfg: dict[str, Any], shard: int) -> None:
        self.cfg = cfg
        self.shard = shard
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.open = 0
        self.peak_open = 0
        self.timeline: list[tuple[float, int]] = []
        self.messages: list[Msg] = []
        self.stop_chatting = asyncio.Event()
        self.closing = asyncio.Event()


class Visitor:
    def __init__(self, shard: Shard, spec: dict[str, Any]) -> None:
        self.s = shard
        self.cfg = shard.cfg
        self.spec = spec
        self.vid: str = spec["id"]
        self.urls: list[str] = spec["urls"]
        self.url_index = 0
        self.ws: Any = None
        self.connected = asyncio.Event()
        self.changed = asyncio.Event()
        self.last_seq = 0
        self.conversation_id: str | None = None
        self.pending: dict[str, Msg] = {}
        self.by_seq: dict[int, Msg] = {}
        self.delta_text: dict[int, list[str]] = {}
        self.rng = random.Random(spec["seed"])
        self.token = issue_token(secrets=[self.cfg["token_secret"]], tenant_id=self.cfg["tenant"],
                                 subject=self.vid, role="visitor", ttl_s=6 * 3600)
        self.connections = 0
        self.background: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- connection ---------------------------------------------------------------------------
    async def connection_loop(self) -> None:
        backoff = 0.5
        while not self.s.closing.is_set():
            url = f"{self.urls[self.url_index % len(self.urls)]}?token={self.token}"
            try:
                ws = await websockets.connect(
                    url, open_timeout=self.cfg["open_timeout_s"], ping_interval=None,
                    close_timeout=2, max_size=1 << 20,
                    compression="deflate" if self.cfg["deflate"] else None,
                    local_addr=(self.spec["src"], 0), user_agent_header="kefu-bench",
                )
            except InvalidStatus as exc:
                self.s.counters[f"connect_status_{exc.response.status_code}"] += 1
                self.s.counters["connect_failed"] += 1
                self.url_index += 1
                await self._sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, 8)
                continue
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                self.s.counters[f"connect_error_{type(exc).__name__}"] += 1
                self.s.counters["connect_failed"] += 1
                self.url_index += 1
                await self._sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, 8)
                continue
            backoff = 0.5
            self.connections += 1
            self.s.counters["connected"] += 1
            if self.connections > 1:
                self.s.counters["reconnected"] += 1
            self.ws = ws
            self.s.open += 1
            self.s.peak_open = max(self.s.peak_open, self.s.open)
            self.connected.set()
            try:
                await ws.send(json.dumps({"action": "sync", "last_seq": self.last_seq}))
                for msg in list(self.pending.values()):
                    if msg.seq is None:  # never acknowledged: resend under the same id
                        await self._send_message(msg)
                async for raw in ws:
                    self.on_frame(raw)
            except ConnectionClosed:
                pass
            finally:
                self.s.open -= 1
                self.ws = None
                self.connected.clear()
                for msg in self.by_seq.values():
                    if msg.t_final is None:
                        msg.reconnected = True
                self.changed.set()
            if not self.s.closing.is_set():
                self.s.counters["dropped"] += 1
                await self._sleep(0.2 + self.rng.random())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.s.closing.wait(), seconds)

    async def _send_message(self, msg: Msg) -> bool:
        ws = self.ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps({"action": "message", "client_msg_id": msg.cid,
                                      "text": msg.text}, ensure_ascii=False))
            return True
        except ConnectionClosed:
            return False

    # -- frames -------------------------------------------------------------------------------
    def on_frame(self, raw: str | bytes) -> None:
        t = now()
        try:
            frame = json.loads(raw)
        except ValueError:
            self.s.counters["bad_server_frame"] += 1
            return
        kind = frame.get("type")
        self.s.counters[f"frame_{kind}"] += 1
        if kind == "ack":
            msg = self.pending.get(frame.get("client_msg_id", ""))
            if msg is not None and msg.seq is None:
                msg.t_ack, msg.acked_via = t, "ack"
                msg.seq = int(frame["seq"])
                msg.duplicate_ack = bool(frame.get("duplicate"))
                msg.conversation_id = frame.get("conversation_id")
                self.by_seq[msg.seq] = msg
            self._seen(frame.get("seq"))
        elif kind == "delta":
            msg = self.by_seq.get(int(frame.get("reply_to") or -1))
            if msg is not None and msg.t_final is None:
                if msg.t_first is None:
                    msg.t_first = t
                parts = self.delta_text.setdefault(int(frame["seq"]), [])
                if int(frame.get("offset", -1)) != msg.delta_chars:
                    msg.delta_gap = True
                parts.append(frame.get("text", ""))
                msg.deltas += 1
                msg.delta_chars = int(frame.get("offset", 0)) + len(frame.get("text", ""))
        elif kind == "final":
            msg = self.by_seq.get(int(frame.get("reply_to") or -1))
            if msg is not None and msg.t_final is None:
                msg.t_final, msg.final_via = t, "final"
                msg.status = frame.get("status")
                msg.engine = frame.get("engine")
                msg.fallback_used = bool(frame.get("fallback_used"))
                msg.reason = frame.get("reason")
                streamed = "".join(self.delta_text.pop(int(frame["seq"]), []))
                if not msg.delta_gap and msg.deltas and streamed != frame.get("text", ""):
                    msg.text_mismatch = True
                self.pending.pop(msg.cid, None)
            self._seen(frame.get("seq"))
        elif kind == "history":
            self.conversation_id = frame.get("conversation_id", self.conversation_id)
            for item in frame.get("messages", []):
                self._from_history(item, t)
            self._seen(frame.get("last_seq"))
        elif kind == "error":
            code = str(frame.get("code"))
            self.s.errors[code] += 1
            cid = frame.get("client_msg_id")
            msg = self.pending.get(cid) if cid else None
            if msg is not None:
                msg.errors.append(code)
            if code == "not_connected" and self.ws is not None:
                # The server lost this connection's record: reconnect, like the widget.
                self._spawn(self.ws.close(code=1000))
            if code == "reply_not_started" and msg is not None and msg.t_final is None:
                # stored, but its reply never started: resending the same id starts it
                self.s.counters["reply_not_started"] += 1
                self._spawn(self._resend_later(msg, acked_too=True))
            elif frame.get("retry") or code in ("rate_limited", "internal_error"):
                for m in list(self.pending.values()):
                    if m.seq is None:
                        if m is not msg:
                            m.errors.append("retry:" + code)
                        self._spawn(self._resend_later(m))
        elif kind == "busy":
            for m in self.by_seq.values():
                if m.t_final is None:
                    m.busy = True
        self.changed.set()

    def _from_history(self, item: dict[str, Any], t: float) -> None:
        if item.get("role") == "visitor":
            msg = self.pending.get(item.get("client_msg_id") or "")
            if msg is not None and msg.seq is None:
                msg.seq, msg.acked_via, msg.t_ack = int(item["seq"]), "sync", t
                msg.conversation_id = self.conversation_id
                self.by_seq[msg.seq] = msg
        elif item.get("role") == "assistant":
            msg = self.by_seq.get(int(item.get("reply_to") or -1))
            if msg is not None and msg.t_final is None and item.get("status") != "streaming":
                msg.t_final, msg.final_via = t, "sync"
                msg.status = item.get("status")
                self.pending.pop(msg.cid, None)
        self._seen(item.get("seq"))

    def _seen(self, seq: Any) -> None:
        if isinstance(seq, int) and seq > self.last_seq:
            self.last_seq = seq

    async def _resend_later(self, msg: Msg, *, acked_too: bool = False) -> None:
        """Resend after an exponential, jittered backoff (1 s, 2 s, 4 s ... 16 s), once at a
        time per message, like a widget that does not hammer a struggling server."""
        if msg.resend_scheduled:
            return
        msg.resend_scheduled = True
        try:
            delay = min(16.0, 2.0 ** msg.retries) * (0.5 + self.rng.random())
            msg.retries += 1
            await self._sleep(delay)
            wanted = msg.seq is None or (acked_too and msg.t_final is None)
            if wanted and msg.cid in self.pending and await self._send_message(msg):
                msg.sends += 1
                self.s.counters["resent"] += 1
        finally:
            msg.resend_scheduled = False

    # -- chatting -----------------------------------------------------------------------------
    async def chat(self) -> None:
        turns: list[str] = self.spec["turns"]
        cfg = self.cfg
        lo, hi = cfg["ttft_ms"]
        think_lo, think_hi = cfg["think_s"]
        await self.connected.wait()
        await self._sleep(self.rng.uniform(0, think_hi + 4))
        i = 0
        while not self.s.stop_chatting.is_set() and not self.s.closing.is_set():
            text = turns[i % len(turns)]
            if i >= len(turns):  # another pass over the dialogue: a new question
                text = f"{text}（第{i // len(turns) + 1}次）"
            i += 1
            msg = Msg(cid=f"{self.vid[-12:]}-{i}", text=text, ttft_ms=llm_ttft_ms(text, lo, hi),
                      t_send=now(), t_send_wall=time.time())
            await self.connected.wait()
            msg.t_send, msg.t_send_wall = now(), time.time()
            self.pending[msg.cid] = msg
            self.s.messages.append(msg)
            self.s.counters["sent"] += 1
            await self._send_message(msg)
            await self._await_reply(msg)
            think = self.rng.uniform(think_lo, think_hi) + len(text) / cfg["type_cps"]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.s.stop_chatting.wait(), think)

    async def _await_reply(self, msg: Msg) -> None:
        cfg = self.cfg
        last_try = now()
        deadline = msg.t_send + cfg["reply_timeout_s"]
        synced = False
        while msg.t_final is None and not self.s.closing.is_set():
            self.changed.clear()
            remaining = deadline - now()
            if remaining <= 0:
                if not synced and self.ws is not None:
                    synced = True  # one last look at the stored history before giving up
                    with contextlib.suppress(ConnectionClosed):
                        await self.ws.send(json.dumps({"action": "sync",
                                                       "last_seq": max(0, (msg.seq or 1) - 1)}))
                    deadline = now() + 5
                    continue
                msg.no_reply = True
                if msg.seq is not None:
                    self.pending.pop(msg.cid, None)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            timeout = cfg["ack_timeout_s"] * min(8, 2 ** msg.retries)
            if msg.seq is None and not msg.resend_scheduled and now() - last_try > timeout:
                last_try = now()
                msg.retries += 1
                if await self._send_message(msg):
                    msg.sends += 1
                    self.s.counters["resent_timeout"] += 1


async def _sampler(shard: Shard, t0: float) -> None:
    while not shard.closing.is_set():
        shard.timeline.append((round(time.time() - t0, 1), shard.open))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(shard.closing.wait(), 1.0)


async def run_shard(cfg: dict[str, Any], shard_no: int) -> dict[str, Any]:
    shard = Shard(cfg, shard_no)
    specs = cfg["shards"][shard_no]
    visitors = [Visitor(shard, spec) for spec in specs]
    start_at = cfg["start_at"]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    t0 = time.time()
    sampler = asyncio.create_task(_sampler(shard, cfg["start_at"]))
    tasks: list[asyncio.Task[None]] = []
    rate = cfg["ramp_per_s"] / cfg["clients"]
    for k, v in enumerate(visitors):
        delay = start_at + k / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(v.connection_loop()))
        if v.spec["chatting"]:
            tasks.append(asyncio.create_task(v.chat()))
    ramp_done = time.time()
    chat_end = cfg["chat_end_at"]
    await asyncio.sleep(max(0.0, chat_end - time.time()))
    shard.stop_chatting.set()
    # Drain: wait for outstanding replies (bounded).
    drain_until = time.time() + cfg["drain_s"]
    while time.time() < drain_until:
        if not any(m.t_final is None and not m.no_reply for m in shard.messages):
            break
        await asyncio.sleep(0.5)
    held_at_end = shard.open
    shard.closing.set()
    # Close every connection at once (bounded), then stop whatever is still running.
    closers = [asyncio.ensure_future(v.ws.close()) for v in visitors if v.ws is not None]
    if closers:
        await asyncio.wait(closers, timeout=15)
    _done, pending = await asyncio.wait(tasks, timeout=15) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    for task in closers:
        task.cancel()
    sampler.cancel()
    return {
        "shard": shard_no,
        "visitors": len(visitors),
        "chatting": sum(1 for v in visitors if v.spec["chatting"]),
        "counters": dict(shard.counters),
        "errors": dict(shard.errors),
        "peak_open": shard.peak_open,
        "held_at_end": held_at_end,
        "ramp_s": round(ramp_done - t0, 2),
        "timeline": shard.timeline,
        "conversations": {v.vid: v.conversation_id for v in visitors if v.conversation_id},
        "messages": [asdict(m) for m in shard.messages],
    }


def main() -> None:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    shard_no = int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    result = asyncio.run(run_shard(cfg, shard_no))
    out = Path(cfg["out_dir"]) / f"visitors-{shard_no}.json"
    out.write_text(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
