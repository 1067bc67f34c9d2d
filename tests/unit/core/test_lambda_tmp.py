"""On Lambda, counting tokens writes nothing to /tmp: the encodings are read from the layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, os, sys
import kefu_core.lambda_runtime  # what every Lambda handler imports first
from kefu_llm import count_tokens
n = count_tokens("退货运费谁出？ Who pays for returns?")
written = [os.path.join(d, f) for d, _, files in os.walk(sys.argv[1]) for f in files]
print(json.dumps({"tokens": n, "written": written}))
"""


def _count_in_fresh_process(tmp: Path, **env: str) -> dict[str, object]:
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp)], check=True, text=True,
                         capture_output=True, timeout=120,
                         env={**base, "TMPDIR": str(tmp), "KEFU_ENV": "development", **env})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_lambda_process_counts_tokens_without_writing_to_tmp(tmp_path: Path) -> None:
    # GIVEN a fresh process with an empty temp folder, as a new Lambda container
    # WHEN it imports the Lambda runtime glue and counts tokens
    result = _count_in_fresh_process(tmp_path)
    # THEN the encoding was read (tokens counted) and nothing was written to the temp folder
    assert isinstance(result["tokens"], int) and result["tokens"] > 5
    assert result["written"] == []


def test_a_cache_folder_chosen_by_the_operator_is_kept(tmp_path: Path) -> None:
    # GIVEN TIKTOKEN_CACHE_DIR set by the operator
    cache = tmp_path / "tiktoken"
    # WHEN tokens are counted
    result = _count_in_fresh_process(tmp_path, TIKTOKEN_CACHE_DIR=str(cache))
    # THEN tiktoken caches there as it was told
    assert result["written"] and all(str(p).startswith(str(cache)) for p in result["written"])
