"""Built functions in worker processes, behind the Lambda Runtime API.

Each worker is one execution environment: a process started as the python3.12 runtime starts
it (``python -m awslambdaric app.lambda_handler``, the official runtime interface client), with
its own Runtime API endpoint (``AWS_LAMBDA_RUNTIME_API``) served here:

- ``GET  /2018-06-01/runtime/invocation/next`` hands over the next event of the function, with
  ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms``, ``-Invoked-Function-Arn``, ``-Trace-Id``;
- ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``.../error`` end it;
- ``POST /2018-06-01/runtime/init/error`` reports a handler that cannot load.

A worker that exceeds the function's ``Timeout`` or ``MemorySize`` is killed (as Lambda does)
and replaced on demand. A pool keeps up to ``max_workers`` environments per function and starts
another one when an event waits and none is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h11

from kefu_core.local.errors import InvocationError
from kefu_core.local.template import FunctionSpec

__all__ = ["FunctionPool", "Invocation", "Result"]

logger = logging.getLogger("kefu.local")
_PREFIX = "/2018-06-01/runtime/"
_MAX_RESPONSE = 6 * 1024 * 1024  # Lambda's synchronous response limit


@dataclass(frozen=True)
class Result:
    """What an invocation returned: the payload, and the function error type if it failed."""

    payload: bytes
    function_error: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload or b"null")


@dataclass
class Invocation:
    payload: bytes
    future: asyncio.Future[Result]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    enqueued_at: float = field(default_factory=time.monotonic)
    client_context: str | None = None


def _error_result(error_type: str, message: str) -> Result:
    body = {"errorType": error_type, "errorMessage": message}
    return Result(json.dumps(body).encode(), function_error="Unhandled")


class Worker:
    """One execution environment of a function."""

    def __init__(self, pool: FunctionPool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.process: asyncio.subprocess.Process | None = None
        self.current: Invocation | None = None
        self.initialised = False
        self.started_at = 0.0
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self.exited = asyncio.Event()

    @property
    def label(self) -> str:
        return f"{self.pool.spec.logical_id}#{self.number}"

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        env = self.pool.environment(runtime_api=f"127.0.0.1:{port}")
        self.started_at = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            *self.pool.command,
            cwd=str(self.pool.spec.code_dir),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches the runner, which stops the
            # workers itself, in order.
            start_new_session=True,
        )
        self._spawn(self._pump_logs())
        self._spawn(self._watch())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump_logs(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        sink = self.pool.log_sink
        while True:
            try:
                line = await self.process.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a very long line
                continue
            if not line:
                return
            sink(self.pool.spec.logical_id, line.decode("utf-8", "replace").rstrip("\n"))

    async def _watch(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        self._cancel_timer()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        current, self.current = self.current, None
        if current is not None and not current.future.done():
            reason = f"Runtime exited with error: exit status {code}" if code >= 0 else (
                f"Runtime exited with error: signal: {signal.Signals(-code).name.lower()}")
            current.future.set_result(_error_result("Runtime.ExitError", reason))
        self.exited.set()
        self.pool.worker_exited(self, code)

    async def stop(self, *, grace_s: float = 2.0) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.exited.wait(), grace_s)
            except TimeoutError:
                self.kill()
                await self.exited.wait()
        for task in list(self._tasks):
            task.cancel()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def rss_mb(self) -> float | None:
        """Resident memory of the worker (Linux), as Lambda measures "Max Memory Used"."""
        if self.process is None or self.process.returncode is not None:
            return None
        try:
            with open(f"/proc/{self.process.pid}/statm") as statm:
                pages = int(statm.read().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)

    # -- invocations -------------------------------------------------------------------------
    async def _next(self) -> Invocation:
        if not self.initialised:
            self.initialised = True
            logger.debug("%s ready in %.1f s", self.label, time.monotonic() - self.started_at)
        self.pool.idle += 1
        try:
            while True:
                invocation = await self.pool.queue.get()
                if not invocation.future.done():  # a caller may have given up meanwhile
                    break
        finally:
            self.pool.idle -= 1
        self.current = invocation
        self._timer = asyncio.get_running_loop().call_later(
            self.pool.spec.timeout_s, self._timed_out, invocation)
        return invocation

    def _timed_out(self, invocation: Invocation) -> None:
        if self.current is not invocation or invocation.future.done():
            return
        seconds = self.pool.spec.timeout_s
        logger.warning("%s: RequestId %s Task timed out after %.2f seconds", self.label,
                       invocation.request_id, seconds)
        invocation.future.set_result(_error_result(
            "Sandbox.Timedout", f"RequestId: {invocation.request_id} Error: Task timed out "
            f"after {seconds:.2f} seconds"))
        self.current = None
        self.kill()

    def memory_exceeded(self, used_mb: float) -> None:
        invocation, self.current = self.current, None
        logger.warning("%s: memory %.0f MB over its %d MB: killed", self.label, used_mb,
                       self.pool.spec.memory_mb)
        if invocation is not None and not invocation.future.done():
            invocation.future.set_result(_error_result(
                "Runtime.OutOfMemory", "Runtime exited with error: signal: killed"))
        self.kill()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self, request_id: str, result: Result) -> bool:
        invocation = self.current
        if invocation is None or invocation.request_id != request_id:
            return False
        self._cancel_timer()
        self.current = None
        if not invocation.future.done():
            invocation.future.set_result(result)
        self.pool.report(invocation, result)
        return True

    # -- the Runtime API (HTTP/1.1 over h11) -------------------------------------------------
    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                status, headers, payload = await self._route(request, body)
                headers = [*headers, ("content-length", str(len(payload))),
                           ("content-type", "application/json")]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
                writer.write(conn.send(h11.Data(data=payload)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # The worker is gone (or the stack stops): this connection's task ends here, as
            # the top of its own task; asyncio's server would log a cancelled handler.
            return
        finally:
            self._connections.discard(task)
            writer.close()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader
                            ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_RESPONSE + 64 * 1024:
                    raise h11.RemoteProtocolError("body too large")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None, b""

    async def _route(self, request: h11.Request, body: bytes
                     ) -> tuple[int, list[tuple[str, str]], bytes]:
        method = request.method.decode()
        path = request.target.decode().split("?", 1)[0]
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        if not path.startswith(_PREFIX):
            return 404, [], b'{"errorMessage":"not found"}'
        action = path[len(_PREFIX):]
        if method == "GET" and action == "invocation/next":
            invocation = await self._next()
            spec = self.pool.spec
            deadline_ms = int((time.time() + spec.timeout_s) * 1000)
            out = [
                ("lambda-runtime-aws-request-id", invocation.request_id),
                ("lambda-runtime-deadline-ms", str(deadline_ms)),
                ("lambda-runtime-invoked-function-arn", spec.arn),
                ("lambda-runtime-trace-id",
                 f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=0"),
            ]
            if invocation.client_context:
                out.append(("lambda-runtime-client-context", invocation.client_context))
            return 200, out, invocation.payload
        if method == "POST" and action == "init/error":
            logger.error("%s: init error: %s", self.label, body[:2000].decode("utf-8", "replace"))
            self.pool.init_failed(body)
            return 202, [], b'{"status":"OK"}'
        parts = action.split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "invocation":
            request_id, outcome = parts[1], parts[2]
            if outcome == "response":
                if len(body) > _MAX_RESPONSE:
                    result = _error_result("Function.ResponseSizeTooLarge",
                                           "Response payload size exceeded maximum allowed "
                                           "payload size (6291556 bytes).")
                else:
                    result = Result(body)
            elif outcome == "error":
                result = Result(body or b"{}", function_error="Unhandled")
                error_type = headers.get("lambda-runtime-function-error-type", "")
                logger.info("%s: function error %s", self.label, error_type or "(untyped)")
            else:
                return 404, [], b'{"errorMessage":"not found"}'
            if not self._finish(request_id, result):
                return 400, [], b'{"errorMessage":"unknown or finished request id"}'
            return 202, [], b'{"status":"OK"}'
        return 404, [], b'{"errorMessage":"not found"}'


LogSink = Callable[[str, str], None]
FailureHook = Callable[[str, bytes, "Result | None", str, int], Awaitable[None]]


def print_log(function: str, line: str) -> None:
    sys.stderr.write(f"[{function}] {line}\n")
    sys.stderr.flush()


class FunctionPool:
    """The execution environments of one function, and its event queue."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        command: list[str],
        environment: Callable[[FunctionSpec, str], Mapping[str, str]],
        max_workers: int = 2,
        log_sink: LogSink = print_log,
    ) -> None:
        self.spec = spec
        self.command = command
        self._environment = environment
        self.max_workers = max(1, max_workers)
        self.log_sink = log_sink
        self.queue: asyncio.Queue[Invocation] = asyncio.Queue()
        self.workers: set[Worker] = set()
        self.idle = 0
        self._numbers = 0
        self._async_tasks: set[asyncio.Task[Any]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._init_error: bytes | None = None
        self._stopping = False
        # Called with (request id, payload, last result or None, condition, attempts) when an
        # asynchronous invocation fails for good: the OnFailure destination.
        self.on_failure: FailureHook | None = None

    def environment(self, *, runtime_api: str) -> dict[str, str]:
        return dict(self._environment(self.spec, runtime_api))

    @property
    def starting(self) -> int:
        return sum(1 for w in self.workers if not w.initialised)

    async def start(self, *, warm: int = 1) -> None:
        for _ in range(min(warm, self.max_workers)):
            await self._add_worker()
        self._monitor = asyncio.create_task(self._watch_memory())

    async def _add_worker(self) -> None:
        self._numbers += 1
        worker = Worker(self, self._numbers)
        self.workers.add(worker)
        try:
            await worker.start()
        except OSError as exc:
            self.workers.discard(worker)
            raise InvocationError("Runtime.Unknown", f"cannot start a worker: {exc}") from exc

    def _scale(self) -> None:
        if self._stopping:
            return
        waiting = self.queue.qsize()
        if waiting > self.idle + self.starting and len(self.workers) < self.max_workers:
            task = asyncio.create_task(self._add_worker())
            self._async_tasks.add(task)
            task.add_done_callback(self._async_tasks.discard)

    def worker_exited(self, worker: Worker, code: int) -> None:
        self.workers.discard(worker)
        if self._stopping:
            return
        if not worker.initialised:
            # The handler could not load: the event that was waiting for it fails with the
            # init error, as Lambda answers the invocation that caused the cold start.
            message = (self._init_error or b"").decode("utf-8", "replace") or (
                f"Runtime exited during init (exit status {code})")
            self._init_error = None
            with contextlib.suppress(asyncio.QueueEmpty):
                invocation = self.queue.get_nowait()
                if not invocation.future.done():
                    invocation.future.set_result(_error_result("Runtime.InitError", message))
            logger.error("%s could not start: %s", worker.label, message[:500])
        self._scale()

    def init_failed(self, body: bytes) -> None:
        self._init_error = body[:4096]

    def report(self, invocation: Invocation, result: Result) -> None:
        duration_ms = (time.monotonic() - invocation.enqueued_at) * 1000
        logger.debug("REPORT %s RequestId: %s Duration: %.1f ms%s", self.spec.logical_id,
                     invocation.request_id, duration_ms,
                     " (error)" if result.function_error else "")

    async def _watch_memory(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for worker in list(self.workers):
                used = worker.rss_mb()
                if used is not None and used > self.spec.memory_mb:
                    worker.memory_exceeded(used)

    # -- invoking ----------------------------------------------------------------------------
    async def invoke(self, payload: bytes, *, client_context: str | None = None) -> Result:
        """A synchronous (RequestResponse) invocation."""
        if self._stopping:
            raise InvocationError("ServiceException", "the local stack is stopping")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        invocation = Invocation(payload=payload, future=future, client_context=client_context)
        self.queue.put_nowait(invocation)
        self._scale()
        try:
            return await future
        except asyncio.CancelledError:
            # The caller went away: the event is dropped if no worker took it yet.
            future.cancel()
            raise

    def invoke_event(self, payload: bytes) -> str:
        """An asynchronous (Event) invocation: queued, retried on error as configured."""
        request_id = str(uuid.uuid4())
        task = asyncio.create_task(self._run_event(payload, request_id))
        self._async_tasks.add(task)
        task.add_done_callback(self._async_tasks.discard)
        return request_id

    async def _run_event(self, payload: bytes, request_id: str) -> None:
        received = time.monotonic()
        attempts = 1 + self.spec.max_retry_attempts
        result: Result | None = None
        for attempt in range(attempts):
            if time.monotonic() - received > self.spec.max_event_age_s:
                logger.warning("%s: event %s dropped (older than %d s)", self.spec.logical_id,
                               request_id, self.spec.max_event_age_s)
                await self._failed(request_id, payload, result, "EventAgeExceeded", attempt)
                return
            try:
                result = await self.invoke(payload)
            except InvocationError as exc:
                logger.warning("%s: event %s not run: %s", self.spec.logical_id, request_id, exc)
                return
            if result.function_error is None:
                return
            logger.warning("%s: event %s failed (attempt %d of %d)", self.spec.logical_id,
                           request_id, attempt + 1, attempts)
            if attempt + 1 < attempts:
                await asyncio.sleep(1.0)  # Lambda waits a minute, then two; locally a second
        await self._failed(request_id, payload, result, "RetriesExhausted", attempts)

    async def _failed(self, request_id: str, payload: bytes, result: Result | None,
                      condition: str, attempts: int) -> None:
        if self.on_failure is None:
            return
        try:
            await self.on_failure(request_id, payload, result, condition, attempts)
        except Exception:
            logger.exception("%s: event %s: OnFailure destination failed",
                             self.spec.logical_id, request_id)

    async def stop(self) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        for task in list(self._async_tasks):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in list(self.workers)), return_exceptions=True)
        while not self.queue.empty():
            invocation = self.queue.get_nowait()
            if not invocation.future.done():
                invocation.future.set_result(_error_result("ServiceException",
                                                           "the local stack stopped"))
