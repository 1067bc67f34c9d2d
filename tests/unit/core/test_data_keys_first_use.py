"""Data keys from the environment are derived on first use: building the dependencies of a
function that ships no cryptography (connect, disconnect, message) does not need it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import asyncio, json, sys
sys.modules["cryptography"] = None  # as in a function without the AnswerLayer
from kefu_core.security.datakeys import DataKeys
out = {}
for keys in ([], ["k" * 40]):
    data_keys = DataKeys(keys=keys, secret_id=None, production=False)  # WHEN built
    try:
        asyncio.run(data_keys.seal("secret", context="t"))  # AND first used
        out[str(len(keys))] = "sealed"
    except ModuleNotFoundError as exc:
        out[str(len(keys))] = f"missing {(exc.name or '').split('.')[0]}"
print(json.dumps(out))
"""


def test_data_keys_are_built_without_cryptography_and_derived_on_first_use() -> None:
    # GIVEN a process where cryptography cannot be imported, with no key or one key configured
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, text=True,
                         capture_output=True, timeout=120, env={**env, "KEFU_ENV": "development"})
    # THEN building them worked, and only using them needed cryptography
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "0": "missing cryptography", "1": "missing cryptography"}
