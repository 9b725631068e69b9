"""The code stays clean under the linter configured in pyproject.toml ([tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is not installed (pip install -e '.[dev]')")
    checked = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "rt_dtgan", "bench", "tests", "tools"], cwd=ROOT, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
