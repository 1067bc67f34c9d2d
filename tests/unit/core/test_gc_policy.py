"""The serving process's garbage-collector settings (kefu_core.gateway.gc_policy)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json
from kefu_core.gateway.gc_policy import YOUNG_THRESHOLD, tune_for_serving
start_up_state = [object() for _ in range(1000)]  # alive for the whole process
tune_for_serving()
class Cycle:
    pass
a, b = Cycle(), Cycle()
a.other, b.other = b, a
del a, b
print(json.dumps({"threshold": gc.get_threshold(), "young": YOUNG_THRESHOLD,
                  "frozen": gc.get_freeze_count(), "collected": gc.collect()}))
"""


def test_a_serving_process_freezes_start_up_state_and_still_collects_cycles() -> None:
    # GIVEN a fresh process with its start-up objects
    # WHEN it is tuned for serving
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True).stdout
    state = json.loads(out)
    # THEN young collections are spaced out, what existed is frozen out of the collector's
    # sight, and a reference cycle made afterwards is still collected
    assert state["threshold"][0] == state["young"] > 700
    assert state["frozen"] >= 1000
    assert state["collected"] >= 2
