"""The code keeps one format and passes the linter configured in pyproject.toml ([tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install -e '.[test]'")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_code_is_formatted():
    result = _ruff("format", "--check", "--diff", ".")
    assert result.returncode == 0, f"run `ruff format .`:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"


def test_linter_passes():
    result = _ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, f"run `ruff check .`:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"
