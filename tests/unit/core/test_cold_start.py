"""Lambda handlers import with the cyclic garbage collector paused, then freeze what they made."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu_core.cold_start import imports_without_gc

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def test_the_block_runs_without_the_collector_and_its_objects_are_frozen(
        collector_restored: None) -> None:
    # GIVEN the collector on and nothing frozen
    gc.enable()
    gc.unfreeze()
    # WHEN a block creates objects inside imports_without_gc
    with imports_without_gc():
        paused = not gc.isenabled()
        made = [{"n": i} for i in range(1000)]
    # THEN the collector was off inside, is on again, and the objects are frozen
    assert paused and gc.isenabled()
    assert gc.get_freeze_count() >= len(made)


def test_a_failing_import_leaves_the_collector_on(collector_restored: None) -> None:
    # GIVEN the collector on
    gc.enable()
    # WHEN an import in the block fails
    with pytest.raises(ModuleNotFoundError), imports_without_gc():
        import kefu_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    # THEN the error reaches the caller and the collector is on
    assert gc.isenabled()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_handler_leaves_the_collector_on_with_its_imports_frozen(function: str) -> None:
    # GIVEN a fresh process with the function's folder first on its path, as Lambda runs it
    probe = ("import gc, json; import app; "
             "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))")
    # WHEN it imports the handler
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "functions" / function,
                         capture_output=True, text=True, timeout=120, check=True)
    enabled, frozen = json.loads(out.stdout.strip().splitlines()[-1])
    # THEN the collector is on and the objects of the imports are frozen
    assert enabled and frozen > 10_000
