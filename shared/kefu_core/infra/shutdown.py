"""Stopping a process that started services of its own (``kefu run``), on every way out.

By default SIGTERM and SIGHUP kill a Python process outright: no ``finally``, no ``atexit``. A
``kefu run`` stopped that way left its embedded PostgreSQL (detached by ``pg_ctl``) and
redis-server running. uvicorn does not help: it answers SIGTERM and SIGINT with a graceful
shutdown and then raises the same signal again, for the previous handler to act on.

:class:`ServiceStops` is that previous handler. Inside it SIGTERM, SIGHUP and SIGINT raise
:class:`Stopped` in the main thread, so the stops registered on it run (last registered, first
run), as they do after an error or a normal return. A signal while a service is starting is
held until the start is over (an interrupted ``initdb`` would ruin the data directory); a
signal while the stops run only logs: nothing may interrupt them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any, Literal

__all__ = ["ServiceStops", "Stopped"]

logger = logging.getLogger("kefu.shutdown")

HANDLED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(SystemExit):
    """A stop was requested by a signal; exits with status 0."""

    def __init__(self) -> None:
        super().__init__(0)


class ServiceStops:
    """Signals become :class:`Stopped`; the registered stops run on every way out."""

    def __init__(self) -> None:
        self.stops = contextlib.ExitStack()
        self._state: Literal["running", "starting", "stopping"] = "running"
        self._pending: int | None = None
        self._saved: dict[int, Any] = {}

    def callback(self, stop: Callable[[], object], /) -> None:
        """Run ``stop`` on the way out (register it before starting what it stops)."""
        self.stops.callback(stop)

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Hold signals while services start; a stop asked meanwhile happens right after."""
        self._state = "starting"
        try:
            yield
        finally:
            self._state = "running"
        if self._pending is not None:
            raise Stopped()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._state == "stopping":
            logger.info("stopping the services; please wait", extra={"signal": name})
        elif self._state == "starting":
            self._pending = signum
            logger.info("stop requested: stopping once the service has started",
                        extra={"signal": name})
        else:
            raise Stopped()

    def __enter__(self) -> ServiceStops:
        self._saved = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED}
        self.stops.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = "stopping"
        try:
            self.stops.__exit__(exc_type, exc, tb)
        finally:
            for sig, handler in self._saved.items():
                signal.signal(sig, handler)
