"""preload_sdk: what the first reply would import is imported before a process serves."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
assert "openai" not in sys.modules
from kefu_llm import preload_sdk
preload_sdk()
print(" ".join(m for m in ("openai", "openai.resources.chat.completions",
                           "anyio._backends._asyncio") if m in sys.modules))
"""


def test_preload_imports_the_sdk_and_its_transport() -> None:
    # GIVEN a process that has not imported the SDK
    # WHEN it preloads it
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True).stdout.split()
    # THEN the SDK, its chat resource and its HTTP backend are loaded
    assert out == ["openai", "openai.resources.chat.completions", "anyio._backends._asyncio"]
