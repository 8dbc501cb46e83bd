"""Every ``python`` block of README.md, and each block of docs/ marked
``<!-- runs as written -->`` on the line above it, runs as written in a fresh
interpreter (in an empty folder)."""

import glob
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

MARKER = "<!-- runs as written -->"


def _blocks():
    found = []
    for path in [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]:
        text = open(path, encoding="utf-8").read()
        for match in re.finditer(r"```python\n(.*?)```", text, re.DOTALL):
            before = text[:match.start()].rstrip("\n").splitlines()[-1:] or [""]
            if path.endswith("README.md") or before[0].strip() == MARKER:
                line = text[:match.start()].count("\n") + 1
                found.append(pytest.param(match.group(1), id=f"{os.path.relpath(path, ROOT)}:{line}"))
    return found


def test_the_readme_has_python_blocks():
    assert len([b for b in _blocks() if b.id.startswith("README.md")]) >= 2


@pytest.mark.parametrize("code", _blocks())
def test_block_runs_as_written(code, tmp_path):
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
