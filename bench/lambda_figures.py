"""Lambda figures from the `sam build` output, measured the way Lambda runs the code.

    .venv/bin/python -m bench.lambda_figures [--build REV] [--repeat 5] [--out FILE]

For each function a fresh ``python3.12 -B -S -I`` process gets exactly Lambda's layout on its
path: the function folder, then ``.aws-sam/build/<Layer>/python`` of the layers the built
template gives that function (bench/lambda_layout.py), then only what the python3.12 runtime
ships (boto3 and its dependencies). ``-B`` plays Lambda's read-only /var/task and /opt: the
``.pyc`` files compiled by the build are read, none is written; ``TMPDIR`` is a fresh folder per
process, and what a function writes there (jieba's dictionary cache, before it was prebuilt in
the layer) is reported. Measured:

- cold start: ``import app`` time inside the process (wall and CPU: on a busy machine the CPU
  time is the steadier figure), and "init": from spawning the process to the handler being
  importable (what Lambda reports as Init Duration, interpreter included), as built, and with
  the build's bytecode removed (what SAM's python builder ships);
- ``--before REV``: the same cold starts and sizes for the build of an earlier revision;
- the first invocation of ``connect``/``message`` (it builds the Redis and PostgreSQL clients);
  with ``--before``, ``--first`` new containers per build (interleaved) each run ``connect``'s
  and ``message``'s first invocation after ``message``'s init, so a saving at init that only
  moved work to the first invocation shows as such (init plus first invocation, per build);
- warm handler time of ``message`` (validate, de-duplicate, persist, acknowledge through the
  management API, async-invoke ``stream``) and of ``stream`` with an instant LLM (the fake at 0 ms
  first token and unpaced tokens), i.e. the handler's own overhead, the LLM excluded;
- management-API calls per streamed reply (deltas batched every DELTA_FLUSH_MS) with the fake
  LLM at a realistic 50 tokens/s, and per reply the billed milliseconds (duration rounded up)
  beside the model's own time (the fake's pacing) and the difference, the function's own work;
- the first ``stream`` invocation in a new container (recall loads jieba's dictionary);
- zipped size of each function plus its layers (deflate, as ``sam deploy`` uploads them);
- ``--instructions``: the instructions executed by the cold import of ``connect`` and
  ``message`` (valgrind's callgrind), as built and before: a count a busy, shared machine
  does not change, where timings on it vary by a factor of several.

The API Gateway management API and Lambda's invoke API are played by a local HTTP sink that
boto3 reaches through ``WEBSOCKET_MANAGEMENT_URL`` and ``AWS_ENDPOINT_URL_LAMBDA``; Redis,
PostgreSQL and the fake LLM are the harness's own (bench/load/services.py).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.lambda_layout import function_layouts
from bench.load.services import (
    ROOT,
    TOKEN_SECRET,
    FakeLLM,
    Postgres,
    Redis,
    engines_json,
    free_port,
)

BUILD = ROOT / ".aws-sam" / "build"  # replaced by --build with a build of a committed revision
FUNCTIONS = {
    "connect": "ConnectFunction",
    "disconnect": "DisconnectFunction",
    "message": "MessageFunction",
    "agent": "AgentFunction",
    "stream": "StreamFunction",
    "admin": "AdminFunction",
}
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
PYTHON = str(Path(sys.executable).parent / "python3.12")


# -- the sink that plays API Gateway's management API and Lambda's invoke API ----------------


class Sink:
    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.invokes: list[dict[str, Any]] = []
        self.port = free_port()

        async def post(request: Request) -> Response:
            self.posts[request.path_params["cid"]] += 1
            await request.body()
            return Response(status_code=200)

        async def get(request: Request) -> Response:
            return JSONResponse({"connectedAt": "2026-01-01T00:00:00Z",
                                 "identity": {"sourceIp": "127.0.0.1", "userAgent": ""}})

        async def invoke(request: Request) -> Response:
            self.invokes.append(json.loads(await request.body()))
            return Response(status_code=202)

        app = Starlette(routes=[
            Route("/@connections/{cid}", post, methods=["POST"]),
            Route("/@connections/{cid}", get, methods=["GET"]),
            Route("/2015-03-31/functions/{fn}/invocations", invoke, methods=["POST"]),
        ])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Sink:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- the process Lambda would run ------------------------------------------------------------

CHILD = r'''
import json, sys, time
t_start = time.perf_counter()
build, fn_dir, runtime, mode, *layers = sys.argv[1:]
sys.path[:0] = [fn_dir, *layers, runtime]
t0, c0 = time.perf_counter(), time.process_time()
import app
import_ms = (time.perf_counter() - t0) * 1000
out = {"import_ms": import_ms, "import_cpu_ms": (time.process_time() - c0) * 1000,
       "since_start_ms": (time.perf_counter() - t_start) * 1000}
print("READY", flush=True)


def load(name):
    import importlib.util
    path = f"{build}/{params['dirs'][name]}/app.py"
    spec = importlib.util.spec_from_file_location(f"{name}_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def message_event(i, prefix):
    ev = json.loads(json.dumps(params["message_event"]))
    text = params["texts"][i % len(params["texts"])]
    ev["body"] = json.dumps({"action": "message", "client_msg_id": f"{prefix}-{i}",
                             "text": text}, ensure_ascii=False)
    return ev


class Ctx:
    function_name = "kefu-bench"
    memory_limit_in_mb = 512
    aws_request_id = "req"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:kefu-bench"

    def get_remaining_time_in_millis(self):
        return 30000


if mode != "cold":
    params = json.loads(sys.stdin.readline())
    ctx = Ctx()
    connect = load("connect")
    event = params["connect_event"]
    t0 = time.perf_counter()
    r = connect(event, ctx)
    out["connect_first_ms"] = (time.perf_counter() - t0) * 1000
    assert r["statusCode"] == 200, r
    handler = app.lambda_handler
    times = []
    if mode == "message":
        for i in range(params["n"]):
            ev = message_event(i, "lf")
            t0 = time.perf_counter()
            handler(ev, ctx)
            times.append((time.perf_counter() - t0) * 1000)
    elif mode == "stream":
        from kefu_core.lambda_runtime import get_deps, run
        deps = run(get_deps(event))
        rec = run(deps.connections.get(event["requestContext"]["connectionId"]))
        send = load("message")
        for i in range(params["n"]):
            send(message_event(i, "ls"), ctx)
            if rec.conversation_id is None:  # created by the first message
                rec = run(deps.connections.get(event["requestContext"]["connectionId"]))
            conv = run(deps.conversations.get(tenant_id=rec.tenant_id,
                                              conversation_id=rec.conversation_id))
            payload = {"kind": "stream", "tenant_id": rec.tenant_id,
                       "conversation_id": rec.conversation_id, "reply_to_seq": conv.last_seq,
                       "connection_id": rec.connection_id, "domain_name": "bench",
                       "stage": "prod"}
            t0 = time.perf_counter()
            res = handler(payload, ctx)
            times.append((time.perf_counter() - t0) * 1000)
            out.setdefault("stream_results", []).append(res)
    out["times_ms"] = times
print("RESULT " + json.dumps(out), flush=True)
'''


def runtime_dir() -> str:
    """A folder with only what the python3.12 Lambda runtime provides besides the stdlib."""
    site = Path(sysconfig.get_paths()["purelib"])
    folder = Path(tempfile.mkdtemp(prefix="lambda-runtime-"))
    for name in RUNTIME_MODULES:
        if (site / name).exists():
            (folder / name).symlink_to(site / name)
    return str(folder)


def layout(fn: str, build: Path) -> list[str]:
    """The function folder and its layers' ``python/`` folders, from the built template."""
    code, layers = function_layouts(build)[FUNCTIONS[fn]]
    return [str(code), *map(str, layers)]


def child(fn: str, mode: str, env: dict[str, str], runtime: str,
          params: dict[str, Any] | None = None, timeout: float = 300,
          build: Path | None = None) -> dict[str, Any]:
    build = build or BUILD
    code, *layers = layout(fn, build)
    tmp = tempfile.mkdtemp(prefix="lambda-tmp-")  # the container's fresh /tmp
    started = time.perf_counter()
    # -B: a Lambda's /opt and /var/task are read-only: .pyc files are read, never written
    proc = subprocess.Popen(
        [PYTHON, "-B", "-S", "-I", "-c", CHILD, str(build), code, runtime, mode, *layers],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "TMPDIR": tmp}, cwd=str(build),
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready_ms = None
        lines = []
        for line in proc.stdout:
            if line.startswith("READY"):
                ready_ms = (time.perf_counter() - started) * 1000
                if mode == "cold":
                    proc.stdin.close()
                else:
                    proc.stdin.write(json.dumps(params, ensure_ascii=False) + "\n")
                    proc.stdin.flush()
            elif line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                result["init_ms"] = ready_ms
                proc.wait(timeout)
                result["tmp_written"] = {
                    str(f.relative_to(tmp)): f.stat().st_size
                    for f in Path(tmp).rglob("*") if f.is_file()}
                return result
            else:
                lines.append(line)
        proc.wait(timeout)
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"{fn} ({mode}) failed: {''.join(lines)[-2000:]}{err[-3000:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def import_profile(fn: str, env: dict[str, str], runtime: str, build: Path) -> list[Any]:
    """Top-level packages by cumulative import time (``-X importtime``), as built."""
    code, *layers = layout(fn, build)
    proc = subprocess.run(
        [PYTHON, "-B", "-S", "-I", "-X", "importtime", "-c", CHILD, str(build), code, runtime,
         "cold", *layers],
        env=env, cwd=str(build), capture_output=True, text=True, timeout=120)
    top: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if not cumulative.isdigit():
            continue
        if name == name.lstrip():  # top level (no indent): a package imported by the handler
            top[name] = top.get(name, 0) + int(cumulative)
    return [(name, round(us / 1000, 1)) for name, us in
            sorted(top.items(), key=lambda kv: -kv[1])[:12]]


def instructions(fn: str, env: dict[str, str], runtime: str, build: Path) -> float | None:
    """Millions of instructions executed by a cold import of ``fn`` (callgrind), interpreter
    start included; None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    code, *layers = layout(fn, build)
    with tempfile.TemporaryDirectory(prefix="lambda-tmp-") as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out",
             "--cache-sim=no", PYTHON, "-B", "-S", "-I", "-c", CHILD, str(build), code, runtime,
             "cold", *layers],
            env={**env, "TMPDIR": tmp}, cwd=str(build), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=1800)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or not found:
        raise RuntimeError(f"callgrind of {fn} failed: {proc.stderr[-2000:]}")
    return round(int(found.group(1)) / 1e6, 1)


def baseline_ms(runtime: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-S", "-I", "-c", "pass"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def zipped(path: Path) -> tuple[int, int]:
    """(zipped bytes, unzipped bytes) of a folder, deflated as sam deploy uploads it."""
    buf = io.BytesIO()
    raw = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for file in sorted(path.rglob("*")):
            if file.is_file() and not file.is_symlink():
                zf.write(file, file.relative_to(path))
                raw += file.stat().st_size
    return buf.tell(), raw


def dist(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    s = sorted(values)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))], 1)

    return {"n": len(s), "p50": q(50), "p95": q(95), "p99": q(99), "max": round(s[-1], 1)}


def sam_build(rev: str) -> Path:
    """``sam build`` of the committed revision ``rev`` (git archive), so a concurrent edit of
    the work tree cannot leak into the figures. Layers are installed from PyPI (cached)."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    src = Path("/tmp/kefu-bench/sam-src") / sha[:12]
    out = Path("/tmp/kefu-bench/sam-build") / sha[:12]
    if not (out / "template.yaml").is_file():
        src.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
        subprocess.run([str(ROOT / ".kefu" / "sam-venv" / "bin" / "sam"), "build",
                        "--template-file", "template.yaml", "--build-dir", str(out),
                        "--cache-dir", "/tmp/kefu-bench/sam-cache", "--cached", "--parallel"],
                       cwd=src, env=env, check=True, stdout=subprocess.DEVNULL)
    return out


def sizes_of(build: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per function: zipped/unzipped with its own layers; per layer: zipped/unzipped)."""
    layer_sizes: dict[Path, tuple[int, int]] = {}
    sizes = {}
    layouts = function_layouts(build)
    for fn, folder in FUNCTIONS.items():
        if folder not in layouts:  # a build of a revision before this function existed
            continue
        code_dir, layers = layouts[folder]
        code = zipped(code_dir)
        for layer in layers:
            if layer not in layer_sizes:
                layer_sizes[layer] = zipped(layer.parent)
        sizes[fn] = {
            "function_zip_kb": round(code[0] / 1024, 1),
            "layers": [layer.parent.name for layer in layers],
            "with_layers_zip_mb": round(
                (code[0] + sum(layer_sizes[la][0] for la in layers)) / 2**20, 1),
            "with_layers_unzipped_mb": round(
                (code[1] + sum(layer_sizes[la][1] for la in layers)) / 2**20, 1),
        }
    layers_out = {layer.parent.name: {"zip_mb": round(z / 2**20, 1),
                                      "unzipped_mb": round(u / 2**20, 1)}
                  for layer, (z, u) in layer_sizes.items()}
    return sizes, layers_out


def cold_starts(builds: dict[str, Path], env: dict[str, str], runtime: str,
                repeat: int) -> dict[str, dict[str, Any]]:
    """Cold starts of every function of every build, interleaved round by round so that a
    busy machine weighs on each build alike."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {fn: [] for fn in FUNCTIONS} for label in builds}
    present = {label: function_layouts(build) for label, build in builds.items()}
    for _ in range(repeat):
        for fn in FUNCTIONS:
            for label, build in builds.items():
                if FUNCTIONS[fn] in present[label]:
                    runs[label][fn].append(child(fn, "cold", env, runtime, build=build))
    out: dict[str, dict[str, Any]] = {}
    for label, per_fn in runs.items():
        out[label] = {}
        for fn, rs in per_fn.items():
            if not rs:
                continue
            out[label][fn] = {
                "import_ms_p50": round(statistics.median(r["import_ms"] for r in rs), 1),
                # CPU time of the import: what a busy machine inflates least
                "import_cpu_ms_p50": round(statistics.median(r["import_cpu_ms"] for r in rs), 1),
                "init_ms_p50": round(statistics.median(r["init_ms"] for r in rs), 1),
                "init_ms_min": round(min(r["init_ms"] for r in rs), 1),
                "init_ms_max": round(max(r["init_ms"] for r in rs), 1)}
            print(f"cold {fn} ({label}): {out[label][fn]}", flush=True)
    return out


def first_invocations(builds: dict[str, Path], env: dict[str, str], runtime: str,
                      params: Any, rounds: int) -> dict[str, dict[str, Any]]:
    """Per build, over ``rounds`` new containers (interleaved): ``message``'s init, then the
    first invocation of ``connect`` and of ``message`` in that container, and their sum."""
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in builds}
    for _ in range(rounds):
        for label, build in builds.items():
            runs[label].append(child("message", "message", env, runtime, params(1), build=build))
    out: dict[str, dict[str, Any]] = {}
    for label, rs in runs.items():
        out[label] = {
            "n": len(rs),
            "message_init_ms_p50": round(statistics.median(r["init_ms"] for r in rs), 1),
            "connect_first_invoke_ms_p50": round(
                statistics.median(r["connect_first_ms"] for r in rs), 1),
            "message_first_invoke_ms_p50": round(
                statistics.median(r["times_ms"][0] for r in rs), 1),
            "init_and_first_invokes_ms_p50": round(statistics.median(
                r["init_ms"] + r["connect_first_ms"] + r["times_ms"][0] for r in rs), 1),
            "init_and_first_invokes_ms_min": round(min(
                r["init_ms"] + r["connect_first_ms"] + r["times_ms"][0] for r in rs), 1)}
        print(f"first invocations ({label}): {out[label]}", flush=True)
    return out


def stream_figures(llm: FakeLLM, env: dict[str, str], runtime: str, p: dict[str, Any],
                   streams: int, sink: Sink, build: Path) -> dict[str, Any]:
    """``streams`` replies by one ``stream`` container of ``build``: billed milliseconds per
    reply beside the model's own time, and management-API calls per reply."""
    sink.posts.clear()
    st = child("stream", "stream", env, runtime, p, build=build)
    posts = sink.posts[p["connection_id"]]
    acks = streams  # the message handler's ack, one per message
    frames = [r.get("frames") for r in st["stream_results"]]
    # Lambda bills each invocation's duration rounded up to the millisecond; the model's own
    # time is the fake's pacing (first token at 0 ms, then its tokens at tokens_per_s): what is
    # left is the function's own work per reply.
    model_ms = llm.reply_tokens / llm.tokens_per_s * 1000 if llm.tokens_per_s > 0 else 0.0
    billed = [float(math.ceil(t)) for t in st["times_ms"][1:]]
    return {
        "billed_ms_per_reply": dist(billed),
        "model_ms_per_reply": round(model_ms, 1),
        "own_ms_per_reply": dist([b - model_ms for b in billed]),
        "first_invoke_ms": round(st["times_ms"][0], 1),
        "warm_ms": dist(st["times_ms"][1:]),
        "tmp_written": st["tmp_written"],
        "statuses": dict(Counter(": ".join(filter(None, (r.get("status"), r.get("reason"))))
                                 for r in st["stream_results"])),
        "management_calls_per_reply": round((posts - acks) / streams, 1),
        "delta_frames_per_reply": dist([float(f) for f in frames if f is not None]),
        "reply_tokens": llm.reply_tokens,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="HEAD", help="sam build this git revision (default HEAD);"
                    " 'existing' uses .aws-sam/build as it is")
    ap.add_argument("--repeat", type=int, default=5, help="cold starts per function")
    ap.add_argument("--warm", type=int, default=200, help="warm message invocations")
    ap.add_argument("--streams", type=int, default=30, help="stream invocations")
    ap.add_argument("--before", default=None,
                    help="also measure cold starts and sizes of this earlier revision's build")
    ap.add_argument("--instructions", action="store_true",
                    help="count the instructions of connect's and message's cold import"
                         " (valgrind), as built and, with --before, before")
    ap.add_argument("--first", type=int, default=7,
                    help="with --before: new containers per build whose first invocations of"
                         " connect and message are timed")
    ap.add_argument("--stream-only", action="store_true",
                    help="only the stream replies (billed ms, management-API calls), as built"
                         " and --before; write them with --out to a file of their own")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lambda.json"))
    args = ap.parse_args(argv)
    global BUILD
    if args.build != "existing":
        BUILD = sam_build(args.build)
    built_at = time.strftime("%Y-%m-%d %H:%M UTC",
                             time.gmtime((BUILD / "template.yaml").stat().st_mtime))
    runtime = runtime_dir()
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "KEFU_ENV": "development",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench", "POWERTOOLS_LOG_LEVEL": "WARNING",
                "LOG_LEVEL": "WARNING", "TOKEN_SECRETS": TOKEN_SECRET}
    result: dict[str, Any] = {"build": str(BUILD), "revision": args.build, "built_at": built_at,
                              "method": "python3.12 -B -S -I, layers from the built template,"
                                        " fresh TMPDIR per process",
                              "repeat": args.repeat,
                              "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}

    result["sizes"], result["layers"] = sizes_of(BUILD)
    # cold starts (imports only: no service needed)
    result["interpreter_start_ms"] = round(baseline_ms(runtime, args.repeat), 1)
    # The same build without its bytecode: what SAM's python builder ships.
    bare = Path(tempfile.mkdtemp(prefix="sam-no-pyc-")) / "build"
    shutil.copytree(BUILD, bare, symlinks=True)
    for cache in list(bare.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    builds = {"as built": BUILD, "without bytecode": bare}
    if args.before:
        before = sam_build(args.before)
        builds["before"] = before
        sizes, layers = sizes_of(before)
        result["before"] = {"revision": args.before, "sizes": sizes, "layers": layers}
    if not args.stream_only:
        cold = cold_starts(builds, base_env, runtime, args.repeat)
        result["cold"], result["cold_no_bytecode"] = cold["as built"], cold["without bytecode"]
        if args.before:
            result["before"]["cold"] = cold["before"]
    shutil.rmtree(bare.parent, ignore_errors=True)
    for fn in ("message", "stream") if not args.stream_only else ():
        result[f"import_profile_{fn}"] = import_profile(fn, base_env, runtime, BUILD)
    if args.instructions and not args.stream_only:
        counted = {"as built": BUILD, **({"before": builds["before"]} if args.before else {})}
        result["instructions_m"] = {
            label: {fn: instructions(fn, base_env, runtime, build)
                    for fn in ("connect", "message")} for label, build in counted.items()}
        print(f"instructions (millions): {result['instructions_m']}", flush=True)

    # warm: real Redis, PostgreSQL, the fake LLM; the sink for AWS APIs
    pg = Postgres(data_dir=Path("/tmp/kefu-bench/pg-lambda"), database="kefu_lambda")
    redis = Redis()
    instant = FakeLLM(first_token_ms="0", tokens_per_s=0, reply_tokens=60)
    paced = FakeLLM(first_token_ms="0", tokens_per_s=50, reply_tokens=100)
    try:
        dsn, redis_url = pg.start(), redis.start()
        instant.start()
        paced.start()
        texts = ["你好，我的订单什么时候发货？", "可以改一下收货地址吗？", "退货运费谁出？"]
        with Sink() as sink:
            def env_for(llm: FakeLLM) -> dict[str, str]:
                return {**base_env, "DATABASE_URL": dsn, "REDIS_URL": redis_url,
                        "REDIS_PREFIX": f"kefu-lambda:{uuid.uuid4().hex[:6]}:",
                        "WEBSOCKET_MANAGEMENT_URL": sink.url,
                        "AWS_ENDPOINT_URL_LAMBDA": sink.url,
                        "STREAM_FUNCTION_NAME": "kefu-bench-stream",
                        "ENGINES": engines_json(llm.base_url), "CACHE_TTL_S": "0",
                        "TENANT_RPM": "0", "TENANT_TPM": "0", "OFFLINE_LAST_RESORT": "true"}

            def params(n: int) -> dict[str, Any]:
                from kefu_core.security.tokens import issue_token

                cid = f"L{uuid.uuid4().hex[:14]}="
                token = issue_token(secrets=[TOKEN_SECRET], tenant_id="bench",
                                    subject=f"v-{uuid.uuid4().hex}", role="visitor", ttl_s=3600)
                connect_event = json.loads((ROOT / "events" / "connect.json").read_text()
                                           .replace("REPLACE_WITH_TOKEN", token))
                connect_event["requestContext"]["connectionId"] = cid
                message_event = json.loads((ROOT / "events" / "message.json").read_text())
                message_event["requestContext"]["connectionId"] = cid
                return {"connect_event": connect_event, "message_event": message_event,
                        "n": n, "texts": texts, "connection_id": cid, "dirs": FUNCTIONS}

            p = params(args.warm if not args.stream_only else 1)
            msg = child("message", "message", env_for(instant), runtime, p)
            times = msg["times_ms"]
            result["message"] = {
                "connect_first_invoke_ms": round(msg["connect_first_ms"], 1),
                "first_invoke_ms": round(times[0], 1),
                "tmp_written": msg["tmp_written"],
                "warm_ms": dist(times[1:]),
                "management_posts": sink.posts[p["connection_id"]],
                "stream_invokes": len(sink.invokes),
            }
            print(f"message: {result['message']}", flush=True)
            if args.before and not args.stream_only:
                result["first_invocations"] = first_invocations(
                    {"as built": BUILD, "before": builds["before"]}, env_for(instant), runtime,
                    params, args.first)
            stream_builds = {"as built": BUILD, **({"before": builds["before"]}
                                                   if args.before else {})}
            for name, llm in (("instant_llm", instant), ("llm_50_tokens_per_s", paced)):
                for label, build in stream_builds.items():
                    figures = stream_figures(llm, env_for(llm), runtime, params(args.streams),
                                             args.streams, sink, build)
                    (result if label == "as built" else result["before"])[f"stream_{name}"] = \
                        figures
                    print(f"stream {name} ({label}): {figures}", flush=True)
    finally:
        for service in (instant, paced, redis):
            service.stop()
        pg.stop()
    result["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
