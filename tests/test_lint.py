"""The code keeps the house style: `ruff check` (pyflakes, pycodestyle, import order, bugbear,
pyupgrade) and `ruff format --check`, configured in pyproject.toml, pass on the whole repository."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from helpers import REPO


def ruff(*args: str) -> subprocess.CompletedProcess:
    command = [shutil.which("ruff") or sys.executable, *([] if shutil.which("ruff") else ["-m", "ruff"]), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["check", "format"])
def test_ruff_passes(args):
    result = ruff(*args)
    assert result.returncode == 0, (
        f"ruff {' '.join(args)} (run `ruff check --fix .` or `ruff format .`):\n"
        f"{result.stdout[-3000:]}{result.stderr[-2000:]}"
    )
