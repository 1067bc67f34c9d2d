"""Writes docs/benchmarks.md from the results of the load, fault and Lambda benchmarks.

    .venv/bin/python -m bench.report              # render from bench/results/ as it is
    .venv/bin/python -m bench.report --run all    # run every benchmark below first (~60 min)
    .venv/bin/python -m bench.report --run faults # or: load, faults, lambda, fuzz
    .venv/bin/python -m bench.report --lambda-only  # only the Lambda section, from lambda.json

Each benchmark writes ``bench/results/<name>/summary.json`` (load and fault runs) or
``bench/results/lambda.json``; this module only reads them, so the page shows exactly what
the runs measured, with the command that reproduces each figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
LAMBDA_NOTES = ROOT / "bench" / "lambda_notes.md"  # hand-written reading of the Lambda figures
PY = ".venv/bin/python"
DIALOGUES = "../shared/data/crosswoz/val.json.zip"

LOAD_RUNS = {
    "hold-10k": ["--connections", "10000", "--chatting", "0", "--duration", "60",
                 "--ramp", "100"],
    "load-2k": ["--connections", "2000", "--chatting", "400", "--duration", "60",
                "--ramp", "100"],
    "load-10k-400": ["--connections", "10000", "--chatting", "400", "--duration", "60",
                     "--ramp", "100"],
    "load-10k": ["--connections", "10000", "--chatting", "2000", "--duration", "90",
                 "--ramp", "100", "--profile", "30"],
    "load-10k-r2": ["--connections", "10000", "--chatting", "2000", "--duration", "90",
                    "--ramp", "100", "--replicas", "2"],
}
FAULT_COMMON = ["--connections", "1000", "--chatting", "200", "--duration", "60",
                "--fault-at", "15", "--fault-for", "10"]
FAULT_RUNS = {
    "fault-llm-fail": ["--fault", "llm-fail"],
    "fault-llm-stall": ["--fault", "llm-stall"],
    "fault-llm-cut": ["--fault", "llm-cut"],
    "fault-llm-midstall": ["--fault", "llm-midstall"],
    "fault-redis-restart": ["--fault", "redis-restart"],
    "fault-pg-restart": ["--fault", "pg-restart"],
    # interrupted replies are reported incomplete after 90 s: wait long enough to see it
    "fault-replica-kill": ["--fault", "replica-kill", "--replicas", "2", "--reply-timeout",
                           "120", "--drain", "110"],
}
FAULT_TEXT = {
    "llm-fail": "primary LLM answers HTTP 500 to everything for 10 s (breaker opens; a second "
                "fake provider is the fallback engine)",
    "llm-stall": "primary LLM accepts requests and never sends a first token for 10 s "
                 "(first-token deadline 5 s, then fallback)",
    "llm-cut": "primary LLM ends every stream after 5 pieces, with no finish reason, for 10 s",
    "llm-midstall": "primary LLM stops sending after 5 pieces and holds the stream open, for "
                    "10 s (stall timeout)",
    "redis-restart": "the Redis server is killed (SIGKILL, no persistence) and a new empty one "
                     "starts on the same port 10 s later",
    "pg-restart": "PostgreSQL is stopped (fast shutdown: connections cut) and started again "
                  "10 s later",
    "replica-kill": "one of two gateway replicas is killed with SIGKILL and restarted 10 s "
                    "later; its visitors reconnect (to the other replica first) and resume",
}


def load_cmd(name: str, args: list[str]) -> list[str]:
    return [PY, "-m", "bench.load.run", "--name", name, "--dialogues", DIALOGUES, *args]


def run_all(which: str) -> None:
    jobs: list[list[str]] = []
    if which in ("all", "load"):
        jobs += [load_cmd(n, a) for n, a in LOAD_RUNS.items()]
    if which in ("all", "faults"):
        jobs += [load_cmd(n, [*FAULT_COMMON, *a]) for n, a in FAULT_RUNS.items()]
    if which in ("all", "lambda"):
        jobs.append([PY, "-m", "bench.lambda_figures"])
    if which in ("all", "fuzz"):
        jobs.append([PY, "-m", "pytest", "tests/fuzz", "-q", "-p", "no:cacheprovider",
                     "--junitxml", str(RESULTS / "fuzz.xml")])
    for cmd in jobs:
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=False)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data or None
    except (OSError, ValueError):
        return None


def _ms(d: dict[str, Any] | None, key: str = "p99") -> str:
    if not d or d.get(key) is None:
        return "–"
    return f"{d[key]:,.0f}" if d[key] >= 100 else f"{d[key]:.1f}"


def _cmd(s: dict[str, Any]) -> str:
    args = s.get("args", {})
    name = s.get("name", "")
    base = LOAD_RUNS.get(name) or ([*FAULT_COMMON, *FAULT_RUNS[name]] if name in FAULT_RUNS
                                   else None)
    if base is not None:
        return " ".join(load_cmd(name, base))
    return f"{PY} -m bench.load.run " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in args.items() if v not in (None, False, []))


def verdict(summaries: dict[str, dict[str, Any]], lam: dict[str, Any] | None) -> list[str]:
    lines = ["## In short", ""]
    lost = sum(s["loss"]["lost"] for s in summaries.values())
    lines.append(f"- **Messages lost across every run on this page: {lost}** (load and fault runs "
                 "together; each acknowledged message was found in PostgreSQL).")
    hold = summaries.get("hold-10k")
    if hold:
        gw = hold["resources"]["gateway"]
        lines.append(f"- One replica holds {hold['connections']['held_at_end']:,} idle "
                     f"connections at {gw['cpu_pct_mean_steady']}% of a core and "
                     f"{gw['rss_mb_peak']} MB RSS.")
    small = summaries.get("load-2k")
    if small:
        st = small["steady"]
        lines.append(f"- 2,000 connections with 400 chatting: end-to-end p99 "
                     f"{_ms(st['e2e_ms'])} ms, overhead p50 {_ms(st['overhead_ms'], 'p50')} ms / "
                     f"p99 {_ms(st['overhead_ms'])} ms, with the replica at "
                     f"{small['resources']['gateway']['cpu_pct_mean_steady']}% of its core.")
    big = summaries.get("load-10k")
    if big:
        lines.append("- 10,000 connections with 2,000 chatting is beyond this machine: one "
                     "replica (one core) saturates and latencies grow to tens of seconds; two "
                     "replicas answer more but the 2 cores are shared with the visitors, "
                     "PostgreSQL and the fake LLM. The goals of overhead p99 < 50 ms and "
                     "end-to-end p99 < 3 s are not met at that load; see \"Performance\" below "
                     "for where the time goes.")
    if lam:
        msg = lam.get("message", {}).get("warm_ms", {})
        cold = lam.get("cold", {})
        sizes = lam.get("sizes", {})
        lines.append(
            "- Lambda, as built (bytecode compiled at build time, layers split by need): init "
            + ", ".join(f"`{fn}` {cold.get(fn, {}).get('init_ms_p50')} ms" for fn in cold)
            + " (goals: connect and message < 250 ms, stream < 500 ms); zipped with their "
            "layers " + ", ".join(f"`{fn}` {s['with_layers_zip_mb']} MB" for fn, s in sizes.items())
            + f" (goals: 15 MB, stream 30 MB); `message` warm p50 {_ms(msg, 'p50')} ms. "
            "CPU time of the import, steadier than wall time on a busy machine: "
            + ", ".join(f"`{fn}` {cold.get(fn, {}).get('import_cpu_ms_p50', '–')} ms"
                        for fn in cold)
            + (f" (load average {lam.get('load_avg_at_start')} at the start, on 2 cores)."
               if lam.get("load_avg_at_start") else "."))
    return [*lines, ""]


def machine_section(any_summary: dict[str, Any] | None) -> list[str]:
    m = (any_summary or {}).get("machine", {})
    lim = (any_summary or {}).get("limits", {})
    lines = ["## The machine", ""]
    if m:
        lines += [
            f"- CPU: {m.get('cpu_model')}, **{m.get('nproc')} cores** (`nproc`); memory "
            f"**{m.get('memory_gib')} GiB**; Linux {m.get('kernel')}; Python {m.get('python')}.",
            f"- Limits: `ulimit -n` raised by the harness to {lim.get('nofile')} (soft, hard); "
            f"fs.file-max {lim.get('fs.file-max')}, fs.nr_open {lim.get('fs.nr_open')}, "
            f"net.core.somaxconn {lim.get('net.core.somaxconn')}, tcp_max_syn_backlog "
            f"{lim.get('net.ipv4.tcp_max_syn_backlog')}, ephemeral ports "
            f"{str(lim.get('net.ipv4.ip_local_port_range')).replace(chr(9), '-')}. Visitors "
            "connect from 50 source addresses (127.0.0.2-51), so neither the port range "
            "nor the per-IP connection limit (50/s, burst 200) caps the runs.",
            "- Everything runs on this one machine: the gateway, PostgreSQL, Redis, the fake "
            "LLM and the visitor processes share the 2 cores. The machine is shared with other "
            "work, so the load average at the start of each run is shown; figures taken on a "
            "busy machine are worse than the system's own.",
        ]
    return [*lines, ""]


def load_section(summaries: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Load: visitors over real WebSocket connections", "",
             "Visitors send the user turns of CrossWOZ dialogues (validation set) on a human "
             "rhythm: after each reply they read and type for 2-6 s plus 1 s per 5 characters. "
             "The fake LLM waits a first-token latency that is a pure function of the prompt "
             "(uniform 1.2-1.8 s across prompts) and streams at 50 pieces/s, so the system's own "
             "overhead is the time to the first delta minus that latency. Replies echo the "
             "question (about 30 pieces). Lost = acknowledged but absent from PostgreSQL, or "
             "sent and never acknowledged nor stored. Percentiles cover the steady state (from "
             "10 s after the last connection opened to the end of the chat phase).", ""]
    rows = [("run", "conns held / target", "chatting",
             "msgs sent / acked / answered (incomplete; no reply in 30 s)",
             "lost", "ack p50 / p99 ms", "overhead p50 / p99 ms", "end-to-end p50 / p99 ms",
             "gateway CPU mean (max) % of 1 core", "gateway peak RSS MB", "load avg at start")]
    for name in LOAD_RUNS:
        s = summaries.get(name)
        if not s:
            continue
        st, msg, c = s["steady"], s["messages"], s["connections"]
        gw = s["resources"].get("gateway", {})
        rows.append((
            name, f"{c['held_at_end']:,} / {c['target']:,}", str(s["args"]["chatting"]),
            f"{msg['sent']:,} / {msg['acknowledged']:,} / {msg['answered']:,} "
            f"({msg['final_status'].get('incomplete', 0):,}; {msg['no_reply']:,})",
            f"**{s['loss']['lost']}**",
            f"{_ms(st['ack_ms'], 'p50')} / {_ms(st['ack_ms'])}",
            f"{_ms(st['overhead_ms'], 'p50')} / {_ms(st['overhead_ms'])}",
            f"{_ms(st['e2e_ms'], 'p50')} / {_ms(st['e2e_ms'])}",
            f"{gw.get('cpu_pct_mean_steady')} ({gw.get('cpu_pct_max')})",
            f"{gw.get('rss_mb_peak')}", str(s.get("loadavg_at_start", "–")),
        ))
    lines += _table(rows)
    hold = summaries.get("hold-10k")
    if hold:
        gw = hold["resources"].get("gateway", {})
        held = hold["connections"]["held_at_end"]
        base = 170.0  # an idle replica's RSS before any connection (seen in every run)
        per = ((gw.get("rss_mb_peak") or base) - base) * 1024 / max(1, held)
        lines += ["", f"Holding idle connections (`hold-10k`): {held:,} held, gateway peak RSS "
                  f"{gw.get('rss_mb_peak')} MB, about {per:.0f} KB per connection (the gateway "
                  "declines permessage-deflate since b4254df: 970 MB, 82 KB each, with it), "
                  "CPU mean "
                  f"{gw.get('cpu_pct_mean_steady')}% of a core for keep-alive pings."]
    big = summaries.get("load-10k")
    if big:
        lines += ["", "### 10,000 connections, 2,000 chatting: against the goals", ""]
        st, gw = big["steady"], big["resources"].get("gateway", {})
        goal_rows = [("figure", "goal", "measured", "met")]
        checks = [
            ("connections held", "10,000", f"{big['connections']['held_at_end']:,}",
             big["connections"]["held_at_end"] >= 10000),
            ("messages lost", "0", str(big["loss"]["lost"]), big["loss"]["lost"] == 0),
            ("overhead p99 (first token minus the LLM's own)", "< 50 ms",
             f"{_ms(st['overhead_ms'])} ms", (st["overhead_ms"].get("p99") or 1e9) < 50),
            ("end-to-end p99", "< 3 s", f"{_ms(st['e2e_ms'])} ms",
             (st["e2e_ms"].get("p99") or 1e9) < 3000),
            ("gateway peak RSS", "< 1 GB", f"{gw.get('rss_mb_peak')} MB",
             (gw.get("rss_mb_peak") or 1e9) < 1024),
        ]
        for label, goal, got, ok in checks:
            goal_rows.append((label, goal, got, "yes" if ok else "**no**"))
        lines += _table(goal_rows)
        others = big["resources"]
        lines += ["", "Every process during that run (CPU in % of one core, steady-state mean; "
                  "peak RSS):", ""]
        lines += _table([("process", "CPU mean %", "CPU max %", "peak RSS MB")] + [
            (k, str(v.get("cpu_pct_mean_steady")), str(v.get("cpu_pct_max")),
             str(v.get("rss_mb_peak"))) for k, v in others.items()])
        pre = st.get("pre_llm_ms", {})
        lines += ["", f"Of the overhead, the part before the model (visitor sends → the prompt "
                  f"reaches the LLM: acknowledge, persist, build the prompt, open the stream) "
                  f"was p50 {_ms(pre, 'p50')} ms / p99 {_ms(pre)} ms. Delta frames per reply: "
                  f"p50 {_ms(big['messages']['deltas_per_reply'], 'p50')}."]
        prof = big.get("profile")
        if prof and prof.get("own_by_package_pct"):
            lines += ["", "### Where the gateway's time goes (py-spy, 30 s of the 10k run)", "",
                      f"{prof['samples']} samples of the gateway process (`py-spy record "
                      "--nonblocking --format raw`). Own time by package:", ""]
            lines += _table([("package / module", "% of samples")] + [
                (f"`{k}`", str(v)) for k, v in prof["own_by_package_pct"][:12]])
            lines += ["", "Hottest functions (own time):", ""]
            lines += _table([("function", "% of samples")] + [
                (f"`{k}`", str(v)) for k, v in prof["own_pct"][:12]])
    lines += ["", "Commands:", ""]
    for name in LOAD_RUNS:
        if summaries.get(name):
            lines.append(f"    {_cmd(summaries[name])}")
    return [*lines, ""]


def fault_section(summaries: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Faults under load", "",
             "Same harness, 1,000 connections with 200 visitors chatting; the fault starts 15 s "
             "into the chat phase and lasts 10 s. Visitors resend an unacknowledged message "
             "under the same `client_msg_id` (after an error frame with `retry`, 5 s without an "
             "ack, or a reconnect), reconnect with jittered backoff and resume with `sync`. "
             "\"No reply\" counts acknowledged messages with neither a final frame nor a "
             "finished reply in the history within 30 s (+ one `sync`): a silent gap.", ""]
    rows = [("fault", "sent", "acked (via sync)", "lost", "stored, never acked",
             "final: complete / incomplete", "fallback", "answered via sync", "no reply",
             "resent", "error frames", "reasons")]
    for name in FAULT_RUNS:
        s = summaries.get(name)
        if not s:
            continue
        m = s["messages"]
        fs = m["final_status"]
        rows.append((
            name.removeprefix("fault-"), f"{m['sent']:,}",
            f"{m['acknowledged']:,} ({m['acknowledged_via_sync']})", f"**{s['loss']['lost']}**",
            str(s["loss"]["stored_but_never_acked"]),
            f"{fs.get('complete', 0)} / {fs.get('incomplete', 0)}", str(m["fallback_used"]),
            str(m["answered_via_sync"]), str(m["no_reply"]), str(m["resent"]),
            ", ".join(f"{k} {v}" for k, v in sorted(s.get("errors", {}).items())) or "–",
            ", ".join(f"{k} {v}" for k, v in sorted(m.get("reasons", {}).items())) or "–",
        ))
    lines += _table(rows)
    lines += ["", "What each fault does:", ""]
    for key, text in FAULT_TEXT.items():
        lines.append(f"- `{key}`: {text}.")
    lines += ["", "Commands:", ""]
    for name in FAULT_RUNS:
        if summaries.get(name):
            lines.append(f"    {_cmd(summaries[name])}")
    return [*lines, ""]


GOALS_INIT_MS = {"connect": 250, "message": 250, "stream": 500}
GOALS_ZIP_MB = {"connect": 15, "disconnect": 15, "message": 15, "stream": 30}


def lambda_section(r: dict[str, Any] | None) -> list[str]:
    lines = ["## Lambda figures", ""]
    if not r:
        return [*lines, "Not measured yet: `.venv/bin/python -m bench.lambda_figures`.", ""]
    before = r.get("before") or {}
    lines += [
        f"`sam build` of revision `{Path(str(r.get('build'))).name}` (built "
        f"{r.get('built_at')}). Each function is imported in a fresh `python3.12 -B -S -I` "
        "process with Lambda's layout on its path: its folder, the `python/` folder of each "
        "layer the built template gives it (in the template's order), then only boto3 and its "
        "dependencies as the runtime ships them. `-B` plays Lambda's read-only `/var/task` and "
        "`/opt`: the `.pyc` files compiled by the build are read, none is written. Each process "
        "gets a fresh `TMPDIR` (what it writes there is reported). \"without bytecode\" is the "
        "same build with its `__pycache__` folders removed (what SAM's python builder ships)"
        + (f"; \"before\" is the build of revision `{before.get('revision')}`, measured in "
           "the same run" if before else "")
        + ". Cold starts of all builds are interleaved round by round, so a busy machine weighs "
        f"on each alike. Interpreter start alone: {r.get('interpreter_start_ms')} ms.", ""]
    load_start = (r.get("load_avg_at_start") or [0.0])[0]
    if load_start > 1.0:
        lines += [
            f"**Measured on a busy machine** (load average {load_start} on 2 cores at the "
            "start): the timings below are inflated several-fold and vary from run to run; "
            "between builds, compare the instruction counts (`--instructions`), which load "
            "does not change. The goals are judged on a quiet machine (load below 1).", ""]
    head = ["function", "layers", "init ms as built (goal)", "init ms min as built",
            "import ms as built", "import CPU ms as built"]
    if before:
        head += ["import CPU ms before"]
    head += ["init ms without bytecode"]
    if before:
        head += ["init ms before", "init ms min before"]
    head += ["zipped with layers MB (goal)", "unzipped MB"]
    if before:
        head += ["zipped MB before"]
    rows = [tuple(head)]
    for fn, c in r["cold"].items():
        size = r["sizes"][fn]
        goal_ms = GOALS_INIT_MS.get(fn)
        goal_mb = GOALS_ZIP_MB.get(fn)
        row = [fn, ", ".join(size.get("layers", [])),
               f"{c['init_ms_p50']}" + (f" (< {goal_ms})" if goal_ms else ""),
               str(c.get("init_ms_min", "–")), str(c["import_ms_p50"]),
               str(c.get("import_cpu_ms_p50", "–"))]
        if before:
            row.append(str(before.get("cold", {}).get(fn, {}).get("import_cpu_ms_p50", "–")))
        row.append(str(r.get("cold_no_bytecode", {}).get(fn, {}).get("init_ms_p50", "–")))
        if before:
            row += [str(before.get("cold", {}).get(fn, {}).get(key, "–"))
                    for key in ("init_ms_p50", "init_ms_min")]
        row += [f"{size['with_layers_zip_mb']}" + (f" (<= {goal_mb})" if goal_mb else ""),
                str(size["with_layers_unzipped_mb"])]
        if before:
            row.append(str(before.get("sizes", {}).get(fn, {}).get("with_layers_zip_mb", "–")))
        rows.append(tuple(row))
    lines += _table(rows)
    lines += ["", "Layers: " + ", ".join(
        f"{k} {v['zip_mb']} MB zipped ({v['unzipped_mb']} MB)" for k, v in r["layers"].items())
        + "."]
    if before:
        lines[-1] += " Before: " + ", ".join(
            f"{k} {v['zip_mb']} MB zipped ({v['unzipped_mb']} MB)"
            for k, v in before.get("layers", {}).items()) + "."
    msg = r.get("message", {})
    si, sp = r.get("stream_instant_llm", {}), r.get("stream_llm_50_tokens_per_s", {})
    written = si.get("tmp_written") or {}
    lines += [
        "",
        f"- `message`, warm (validate, de-duplicate, persist in PostgreSQL, post the ack through "
        f"the management API, async-invoke `stream`; boto3 against a local stand-in for both "
        f"APIs): p50 **{_ms(msg.get('warm_ms'), 'p50')} ms**, p95 "
        f"{_ms(msg.get('warm_ms'), 'p95')} ms, p99 {_ms(msg.get('warm_ms'))} ms over "
        f"{msg.get('warm_ms', {}).get('n')} invocations. First invocation of `connect` in a "
        f"new container (opens Redis and PostgreSQL, checks migrations): "
        f"{msg.get('connect_first_invoke_ms')} ms.",
        f"- `stream`, first invocation in a new container (recall loads jieba's dictionary, "
        f"the engines are built): {si.get('first_invoke_ms')} ms; written to `/tmp`: "
        + (", ".join(f"`{k}` ({v / 1e6:.1f} MB)" for k, v in written.items()) or "nothing")
        + ".",
        f"- `stream`, warm, with an instant LLM ({si.get('reply_tokens')} pieces, 0 ms first "
        f"token, unpaced): p50 {_ms(si.get('warm_ms'), 'p50')} ms: the handler's own cost "
        "(history, prompt, reserve and finish the reply row, post deltas and final).",
        f"- Management-API calls per streamed reply at 50 pieces/s ({sp.get('reply_tokens')} "
        f"pieces, ~2 s): **{sp.get('management_calls_per_reply')}** (delta frames p50 "
        f"{_ms(sp.get('delta_frames_per_reply'), 'p50')} plus the final), with "
        "DELTA_FLUSH_MS=40.",
    ]
    lines += billed_lines(sp, before.get("stream_llm_50_tokens_per_s") or {},
                          str(before.get("revision") or ""))
    firsts = r.get("first_invocations") or {}
    if firsts:
        now, then = firsts.get("as built", {}), firsts.get("before", {})
        lines += [
            f"- First invocations in new containers ({now.get('n')} per build, interleaved with "
            f"the build of `{before.get('revision')}`): `message` init p50 "
            f"{now.get('message_init_ms_p50')} ms (before {then.get('message_init_ms_p50')}), "
            f"then the first `connect` {now.get('connect_first_invoke_ms_p50')} ms (before "
            f"{then.get('connect_first_invoke_ms_p50')}) and the first `message` "
            f"{now.get('message_first_invoke_ms_p50')} ms (before "
            f"{then.get('message_first_invoke_ms_p50')}); init plus both first invocations p50 "
            f"**{now.get('init_and_first_invokes_ms_p50')} ms** (before "
            f"{then.get('init_and_first_invokes_ms_p50')}), minimum "
            f"{now.get('init_and_first_invokes_ms_min')} (before "
            f"{then.get('init_and_first_invokes_ms_min')})."]
    counts = r.get("instructions_m") or {}
    if counts.get("as built"):
        now, then = counts["as built"], counts.get("before") or {}
        lines += [
            "- Instructions executed by the cold import, interpreter start included (valgrind's "
            "callgrind, millions; a busy machine does not change them): " + ", ".join(
                f"`{fn}` {n}" + (f" (before {then[fn]}, {100 * (n - then[fn]) / then[fn]:+.1f} %)"
                                 if then.get(fn) else "")
                for fn, n in now.items() if n is not None) + "."]
    for fn in ("message", "stream"):
        prof = r.get(f"import_profile_{fn}")
        if prof:
            lines += ["", f"What `{fn}` spends its import on (`-X importtime`, cumulative ms, "
                      "as built): " + ", ".join(f"`{k}` {v}" for k, v in prof[:8]) + "."]
    rev = f" --build {r['revision']}" if r.get("revision") not in (None, "HEAD") else ""
    rev += f" --before {before.get('revision')}" if before else ""
    rev += " --instructions" if counts else ""
    rev += f" --repeat {r['repeat']}" if r.get("repeat", 5) != 5 else ""
    load, load_end = r.get("load_avg_at_start"), r.get("load_avg_at_end")
    lines += ["", "Command" + (f" (load average at its start: {load}"
                               + (f", at its end: {load_end}" if load_end else "")
                               + ", on 2 cores; cold starts are CPU-bound and grow with it)"
                               if load else "") + ":", "",
              f"    {PY} -m bench.lambda_figures{rev}",
              f"    {PY} -m bench.report --lambda-only   # this section, from its results", ""]
    if LAMBDA_NOTES.exists():  # how the timings of this host read against the goals, by hand
        lines += [LAMBDA_NOTES.read_text().strip(), ""]
    return lines


def billed_lines(now: dict[str, Any], then: dict[str, Any], rev: str) -> list[str]:
    """What Lambda bills per streamed reply, the model's time apart, as built and before."""
    if not now.get("billed_ms_per_reply"):
        return []

    def one(d: dict[str, Any]) -> str:
        return (f"billed p50 {_ms(d.get('billed_ms_per_reply'), 'p50')} ms, of which the "
                f"model {d.get('model_ms_per_reply')} ms and the function's own work p50 "
                f"{_ms(d.get('own_ms_per_reply'), 'p50')} / p95 "
                f"{_ms(d.get('own_ms_per_reply'), 'p95')} ms, "
                f"{d.get('management_calls_per_reply')} management-API calls")

    text = f"- `stream` per reply at 50 pieces/s ({now.get('reply_tokens')} pieces): {one(now)}"
    if then.get("billed_ms_per_reply"):
        text += f"; the build of `{rev}` in the same run: {one(then)}"
    return [text + "."]


def fuzz_section() -> list[str]:
    lines = ["## Bad input (tests/fuzz)", "",
             "`.venv/bin/python -m pytest tests/fuzz -q` runs a real gateway replica (uvicorn in "
             "a thread, real PostgreSQL and Redis) and, with derandomized Hypothesis (fixed "
             "seeds, so every failure reproduces):", "",
             "- sends malformed JSON, non-objects, unknown actions (any JSON value), wrong types "
             "and bad values for every field of `message` and `sync`: each gets one error frame "
             "that is a client error (never `internal_error`/`temporarily_unavailable`), the "
             "connection still answers `ping`, and nothing is stored;",
             "- sends arbitrary JSON objects: each is answered with a documented frame and every "
             "acknowledged message is in PostgreSQL under its acknowledged sequence number;",
             "- binary frames (invalid UTF-8: `bad_encoding`; valid UTF-8: handled as text), "
             "frames over 32 KB (`frame_too_large`), over 128 KB and invalid UTF-8 text frames "
             "(the server closes that connection with 1009/1007 and serves everyone else);",
             "- floods: 80 messages back to back on one connection are answered by acks or "
             "`rate_limited` (a burst of 30, then 10 frames/s, checked against the elapsed "
             "time), the limited ones go through when resent and all 80 end up stored once; "
             "320 simultaneous handshakes from one address get 429 past the burst of 200 "
             "(50/s refill) while another address is admitted: the limits in "
             "`shared/kefu_core/gateway/limits.py` hold;",
             "- schemathesis on the admin API's own `/openapi.json`, anonymously, as a tenant "
             "administrator (of a tenant it creates) and as the super-admin: no 5xx;",
             "- the bugs these tests found (below) were pinned as strict `xfail`s until fixed; "
             "their tests now guard the fixes.", ""]
    xml = RESULTS / "fuzz.xml"
    if xml.exists():
        import xml.etree.ElementTree as ET

        suite = ET.parse(xml).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        if suite is not None:
            a = suite.attrib
            lines += [f"Last run: {a.get('tests')} tests, {a.get('failures')} failures, "
                      f"{a.get('errors')} errors, {a.get('skipped')} expected failures/skips, "
                      f"{float(a.get('time', 0)):.0f} s.", ""]
    return lines


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return out


def render() -> str:
    summaries = {}
    for name in [*LOAD_RUNS, *FAULT_RUNS]:
        s = _read(RESULTS / name / "summary.json")
        if s:
            summaries[name] = s
    lam = _read(RESULTS / "lambda.json")
    first = next(iter(summaries.values()), None)
    codes = sorted({s.get("code", "?")[:10] for s in summaries.values()})
    parts = [
        "# Benchmarks",
        "",
        "Load, fault and Lambda figures of Kefu, measured on the machine below with the "
        "commands shown. Regenerate this page with `.venv/bin/python -m bench.report` (renders "
        "the latest results in bench/results/) or `.venv/bin/python -m bench.report --run all` "
        "(runs everything first, about 60 minutes). The harness is described in "
        "[bench/load/README.md](../bench/load/README.md).",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; code measured: "
        f"{', '.join(f'`{c}`' for c in codes) or '–'} (each run executes `shared/` and "
        "`layers/` of a committed revision).",
        "",
        *verdict(summaries, lam),
        *machine_section(first),
        *load_section(summaries),
        *fault_section(summaries),
        *lambda_section(lam),
        *fuzz_section(),
    ]
    # Hand-written sections of quality benchmarks (each names its command and figures).
    for section in sorted((ROOT / "bench" / "sections").glob("*.md")):
        parts += [section.read_text().strip(), ""]
    notes = ROOT / "bench" / "load" / "FINDINGS.md"
    if notes.exists():
        parts += [notes.read_text().strip(), ""]
    return "\n".join(parts)


def splice_lambda(page: str, lam: dict[str, Any] | None) -> str:
    """``page`` with its Lambda section (up to the next ``## `` heading) rendered anew."""
    start = page.index("## Lambda figures\n")
    end = page.index("\n## ", start + 1) + 1
    return page[:start] + "\n".join(lambda_section(lam)) + "\n" + page[end:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", choices=["all", "load", "faults", "lambda", "fuzz"], default=None)
    ap.add_argument("--lambda-only", action="store_true",
                    help="rewrite only the Lambda section of the page, from lambda.json (the"
                         " other results need not be on this machine)")
    args = ap.parse_args(argv)
    if args.run:
        run_all(args.run)
    if args.lambda_only:
        DOC.write_text(splice_lambda(DOC.read_text(), _read(RESULTS / "lambda.json")))
        print(f"wrote the Lambda section of {DOC.relative_to(ROOT)}", file=sys.stderr)
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
