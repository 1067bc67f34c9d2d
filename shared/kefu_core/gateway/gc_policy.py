"""The garbage collector's settings for a serving gateway process (``kefu run``).

With CPython's defaults (a young collection every 700 net allocations, an older one every 10
of those) every object a reply keeps for its 2-3 seconds outlives two collections and lands
in the oldest generation; the oldest generation, which also holds every connection's state,
is then collected whenever it grew by a quarter: one full pass over hundreds of thousands of
objects, 100-800 ms during which the event loop serves no one (measured at 2,000 connections
with 400 chatting: it was the gateway's acknowledgement tail). Rarer young collections let
a reply's objects die by reference counting before they are promoted, and freezing what
exists once the replica is ready (modules, settings, pools: alive for the whole process)
keeps it out of every later full pass. Reference cycles are still collected.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_for_serving"]

YOUNG_THRESHOLD = 50_000  # net container allocations between young collections (CPython: 700)
MIDDLE_THRESHOLD = 20  # young collections between middle ones (CPython: 10)
OLD_THRESHOLD = 10  # middle collections between full ones, when the old one grew by 25%


def tune_for_serving() -> None:
    """Collect what start-up left behind, move the survivors out of the collector's sight,
    and space the young collections out. Call once, when the process is ready to serve."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
