"""The load harness's probe inside the gateway process (``bench.load.run --probe``).

Loaded as ``sitecustomize`` from this folder (the harness puts it on the gateway's PYTHONPATH
and sets ``KEFU_PROBE`` to a file prefix); inactive without ``KEFU_PROBE``. Every 5 s and at
exit it writes ``<prefix>.<pid>.json`` with:

- the garbage collector's pauses per generation (``gc.callbacks``) once the first visitor
  frame arrived, its thresholds and frozen objects, and the objects in the oldest generation
  at its first full collections;
- from the first visitor frame on, the event loop's lag: a thread schedules a callback every
  10 ms and times its start;
- while the loop is stalled (a callback not run after 30 ms), the main thread's stack every
  5 ms, counted by its innermost frame and by its last eight (biased towards code that lets
  the GIL go: I/O, imports);
- wall-clock durations of the gateway's store calls and of a psycopg pool checkout, the pool's
  own statistics and the call sites of its checkouts.

A measuring tool for the bench only: it changes the timings it measures a little."""

from __future__ import annotations

import os

_OUT = os.environ.get("KEFU_PROBE")
_STORE_CALLS = [
    ("kefu_core.gateway.integration", "FlowIntegration", "message"),
    ("kefu_core.chat.conversations", "ConversationStore", "append"),
    ("kefu_core.chat.conversations", "ConversationStore", "reserve_reply"),
    ("kefu_core.chat.conversations", "ConversationStore", "finish"),
    ("kefu_core.chat.connections", "ConnectionRegistry", "get"),
    ("kefu_core.chat.connections", "ConnectionRegistry", "watchers"),
    ("kefu_core.answers.memory", "MemoryService", "recall"),
    ("kefu_core.answers.memory", "MemoryService", "after_reply"),
    ("psycopg_pool", "AsyncConnectionPool", "getconn"),
]
_HELPERS = ("_rows", "_one", "read_connection", "one", "all", "_fetch")

if _OUT:
    import atexit
    import collections
    import gc
    import importlib
    import json
    import sys
    import threading
    import time
    import traceback
    from typing import Any

    _gc: dict[int, list[float]] = {0: [], 1: [], 2: []}
    _gc_started = [0.0]
    _old_objects: list[int] = []
    _lags: list[float] = []
    _stalls: collections.Counter[str] = collections.Counter()
    _leaves: collections.Counter[str] = collections.Counter()
    _timings: dict[str, list[float]] = collections.defaultdict(list)
    _sites: collections.Counter[str] = collections.Counter()
    _pools: list[Any] = []
    _main = threading.main_thread().ident
    _serving: list[bool] = []  # set at the first visitor frame

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _gc_started[0] = time.perf_counter()
            return
        if not _serving:  # start-up (imports, pools) is not what the visitors wait for
            return
        _gc[info["generation"]].append(round((time.perf_counter() - _gc_started[0]) * 1000, 2))
        if info["generation"] == 2 and len(_old_objects) < 5:
            _old_objects.append(len(gc.get_objects(2)))

    gc.callbacks.append(_on_gc)

    def _where(frame: Any) -> tuple[str, str]:
        stack = traceback.extract_stack(frame)
        leaf = stack[-1]
        last = " < ".join(f"{os.path.basename(f.filename)}:{f.name}:{f.lineno}"
                          for f in reversed(stack[-8:]))
        return f"{leaf.filename.split('site-packages/')[-1]}:{leaf.name}", last

    def _watch(loop: Any) -> None:
        while True:
            ran = threading.Event()
            started = time.perf_counter()
            loop.call_soon_threadsafe(ran.set)
            while not ran.wait(0.005):
                if _serving and time.perf_counter() - started > 0.03:
                    frame = sys._current_frames().get(_main)
                    leaf, last = _where(frame) if frame is not None else ("-", "-")
                    _leaves[leaf] += 1
                    _stalls[last] += 1
            if _serving:
                _lags.append(round((time.perf_counter() - started) * 1000, 2))
            time.sleep(0.01)

    def _pct(values: list[float], p: float) -> float | None:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else None

    def _figures(values: list[float]) -> dict[str, Any]:
        return {"n": len(values), "p50": _pct(values, 0.5), "p95": _pct(values, 0.95),
                "p99": _pct(values, 0.99), "max": max(values, default=None),
                "total": round(sum(values), 1)}

    def _dump() -> None:
        data = {
            "gc_threshold": gc.get_threshold(),
            "gc_frozen": gc.get_freeze_count(),
            "gc_ms": {g: _figures(v) for g, v in _gc.items()},
            "gc_full_ms": _gc[2][:100],
            "gc_full_objects": _old_objects,
            "loop_lag_ms": {**_figures(_lags), "over_50": sum(x > 50 for x in _lags),
                            "over_100": sum(x > 100 for x in _lags)},
            "stall_samples": sum(_stalls.values()),
            "stall_leaves": _leaves.most_common(30),
            "stall_stacks": _stalls.most_common(30),
            "calls_ms": {k: _figures(v) for k, v in list(_timings.items())},
            "pool_stats": [p.get_stats() for p in _pools],
            "pool_checkout_sites": _sites.most_common(30),
        }
        with open(f"{_OUT}.{os.getpid()}.json", "w") as f:
            json.dump(data, f, indent=1)

    def _every_5_s() -> None:
        while True:
            time.sleep(5)
            try:
                _dump()
            except Exception:  # a dict changed size while copied: next time
                pass

    def _timed(cls: Any, name: str) -> None:
        original = getattr(cls, name)
        label = f"{cls.__name__}.{name}"

        async def timed(*args: Any, **kwargs: Any) -> Any:
            if not _serving:
                _serving.append(True)
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                _timings[label].append((time.perf_counter() - started) * 1000)

        setattr(cls, name, timed)

    def _checkout_site() -> str:
        frame = sys._getframe(2)
        while frame is not None:
            path, code = frame.f_code.co_filename, frame.f_code.co_name
            if any(p in path for p in ("kefu_core", "kefu_memory", "kefu_llm")) \
                    and "infra/db" not in path and code not in _HELPERS:
                return f"{'/'.join(path.split('/')[-2:])}:{code}"
            frame = frame.f_back
        return "?"

    def _instrument() -> None:
        import psycopg_pool

        pool_class = psycopg_pool.AsyncConnectionPool
        init, getconn = pool_class.__init__, pool_class.getconn

        def counted_init(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            _pools.append(self)

        async def counted_getconn(self: Any, *args: Any, **kwargs: Any) -> Any:
            _sites[_checkout_site()] += 1
            return await getconn(self, *args, **kwargs)

        pool_class.__init__ = counted_init
        pool_class.getconn = counted_getconn
        for module, cls, name in _STORE_CALLS:
            _timed(getattr(importlib.import_module(module), cls), name)

    import uvicorn.server

    _serve = uvicorn.server.Server.serve

    async def _probed_serve(self: Any, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        threading.Thread(target=_watch, args=(loop,), daemon=True).start()
        threading.Thread(target=_every_5_s, daemon=True).start()
        return await _serve(self, *args, **kwargs)

    uvicorn.server.Server.serve = _probed_serve  # type: ignore[method-assign]
    atexit.register(_dump)
    _instrument()
