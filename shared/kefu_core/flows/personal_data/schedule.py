"""When retention runs: a scheduled Lambda on AWS, a periodic task in the self-hosted gateway.

Every gateway replica wakes up every minute or so and tries to claim the current period with
one ``SET NX EX`` in Redis; the replica that gets it runs retention, the others see the key and
sleep. The key lives for the interval (and at least the run's budget plus a margin), so runs
never overlap and a replica that dies mid-run costs one period at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from redis.exceptions import RedisError

from kefu_core.deps import Deps
from kefu_core.flows.personal_data.retention import RetentionReport, run_retention
from kefu_core.infra.errors import StoreError

__all__ = ["RetentionScheduler", "claim_run", "retention_flow"]

logger = logging.getLogger("kefu.retention")

POLL_S = 60.0
MARGIN_S = 60


async def claim_run(deps: Deps, *, interval_s: int) -> bool:
    """True when this process may run retention now (nobody did within ``interval_s``)."""
    ttl = max(interval_s, int(deps.settings.retention_run_budget_s) + MARGIN_S)
    key = f"{deps.settings.redis_prefix}retention:claim"
    try:
        return bool(await deps.redis.set(key, uuid.uuid4().hex, nx=True, ex=ttl))
    except RedisError as exc:
        raise StoreError("cannot claim the retention run") from exc


class RetentionScheduler:
    """The gateway's periodic task (``RETENTION_INTERVAL_S``; 0 switches it off)."""

    def __init__(self, deps: Deps, *, poll_s: float = POLL_S) -> None:
        self._deps = deps
        self._interval = deps.settings.retention_interval_s
        self._poll = min(poll_s, float(self._interval)) if self._interval else poll_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="kefu-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def tick(self) -> RetentionReport | None:
        """Run once if this replica claims the period; the report, or None."""
        if not await claim_run(self._deps, interval_s=self._interval):
            return None
        return await run_retention(self._deps)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self.tick()
            except StoreError:
                logger.warning("retention run failed; the next period retries", exc_info=True)


async def retention_flow(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """The scheduled RetentionFunction: one run (a duplicate delivery of the schedule finds
    the period claimed and does nothing)."""
    if not await claim_run(deps, interval_s=0):
        return {"ran": False}
    report = await run_retention(deps)
    return {"ran": True, "complete": report.complete, **report.totals()}
