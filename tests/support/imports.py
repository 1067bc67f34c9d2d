"""Which modules a fresh interpreter has loaded after running some code (cold-start checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence


def loaded_after(code: str, modules: Sequence[str]) -> dict[str, bool]:
    """Run ``code`` in a new interpreter; for each of ``modules``, whether it was imported."""
    report = f"print(json.dumps({{m: m in sys.modules for m in {tuple(modules)!r}}}))"
    out = subprocess.run([sys.executable, "-c", f"import json, sys\n{code}\n{report}\n"],
                         capture_output=True, text=True, check=True, timeout=120)
    return dict(json.loads(out.stdout.splitlines()[-1]))
