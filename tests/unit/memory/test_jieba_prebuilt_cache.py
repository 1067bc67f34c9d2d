"""jieba's prefix dictionary prebuilt next to the package (the AnswerLayer build) is read from
there: a cold start writes nothing to the temp directory (Lambda's /opt is read-only), and
dict.txt, which the layer does not ship, is not needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jieba

from kefu_memory._text import PREBUILT_JIEBA_CACHE, words

# What layers/answer/Makefile runs to prebuild the cache (keep the two in step).
BUILD_CACHE = (
    "import logging, os, sys; sys.path.insert(0, sys.argv[1]); import jieba; "
    "jieba.setLogLevel(logging.WARNING); "
    "jieba.dt.cache_file = os.path.join(os.path.dirname(jieba.__file__), sys.argv[2]); "
    "jieba.initialize()"
)

SEGMENT = """
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
from kefu_memory._text import words
import jieba
out = {"words": words("我想查一下订单的物流信息"), "cache_file": jieba.dt.cache_file,
       "jieba_dir": os.path.dirname(jieba.__file__),
       "tmp": sorted(os.listdir(tempfile.gettempdir()))}
print(json.dumps(out, ensure_ascii=False))
"""


def _layer_copy(tmp_path: Path) -> Path:
    """A folder like the AnswerLayer's python/ with jieba only (its data, no optional models)."""
    site = tmp_path / "python"
    shutil.copytree(Path(jieba.__file__).parent, site / "jieba",
                    ignore=shutil.ignore_patterns("lac_small", "posseg", "analyse",
                                                  "__pycache__", "*.cache"))
    return site


def _segment(site: Path, tmp_dir: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-B", "-c", SEGMENT, str(site)], check=True,
                         capture_output=True, text=True, timeout=120,
                         env={"TMPDIR": str(tmp_dir), "PATH": "/usr/bin:/bin"})
    return dict(json.loads(out.stdout.splitlines()[-1]))


def test_prebuilt_cache_is_read_from_the_layer_and_nothing_is_written_to_tmp(
        tmp_path: Path) -> None:
    # GIVEN a layer folder whose jieba has its dictionary cache prebuilt, as the build does
    site = _layer_copy(tmp_path)
    subprocess.run([sys.executable, "-I", "-S", "-c", BUILD_CACHE, str(site),
                    PREBUILT_JIEBA_CACHE], check=True, timeout=300)
    cache = site / "jieba" / PREBUILT_JIEBA_CACHE
    assert cache.is_file()
    (site / "jieba" / "dict.txt").unlink()  # the build ships the cache instead of it
    empty_tmp = tmp_path / "tmp"
    empty_tmp.mkdir()
    # WHEN a fresh process segments Chinese text with that jieba
    result = _segment(site, empty_tmp)
    # THEN it used the prebuilt cache and wrote nothing to the temp directory
    assert result["jieba_dir"] == str(site / "jieba")
    assert result["cache_file"] == str(cache)
    assert result["tmp"] == []
    # AND the words are those of a jieba with its dictionary
    assert result["words"] == words("我想查一下订单的物流信息")


def test_without_a_prebuilt_cache_jieba_builds_its_own_in_tmp(tmp_path: Path) -> None:
    # GIVEN a jieba without the prebuilt cache (a plain pip install)
    site = _layer_copy(tmp_path)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    # WHEN a fresh process segments text THEN jieba builds its usual cache in the temp folder
    result = _segment(site, tmp_dir)
    assert result["cache_file"] is None
    assert result["tmp"] == ["jieba.cache"]
    assert "订单" in result["words"]  # type: ignore[operator]
