"""The README's first command, exactly as written, in a fresh clone: the pipeline runs, and a
second `dvc repro` changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, fresh_clone


def readme_command(name: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- command: {name} -->\s*```bash\n(.+?)\n```", text, re.S)
    assert match, f"README has no '{name}' command block"
    return match.group(1).strip()


def new_user_env() -> dict:
    """The caller's environment without this test run's virtual environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "DVC_NO_ANALYTICS")}
    venv_bin = os.environ.get("VIRTUAL_ENV", "//none") + "/bin"
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def bash(cmd: str, cwd: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", cmd], cwd=cwd, env=new_user_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.readme  # not in the default run (nor in `-m slow`): `python -m pytest -m readme`, which CI runs after the suite
def test_readme_pipeline_command_in_a_fresh_clone(tmp_path):
    clone = fresh_clone(tmp_path / "clone")
    try:
        first = bash(readme_command("pipeline"), clone)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert (clone / "data/synthetic/release/datasets.xlsx").is_file()
        assert (clone / "data/synthetic/release/datasets-PNG.zip").is_file()
        assert (clone / "data/synthetic/faults.csv").is_file()
        # the committed lock file describes exactly what the data stages rebuilt here: byte-identical
        # synthetic release, manifest, shards and folds on this machine too. Trained models are not
        # bitwise portable between CPUs (torch and BLAS pick kernels by instruction set: an AVX-512
        # machine and an AVX2 one differ in the last bits, and two epochs at 32 px amplify that), so
        # every stage that trains or reads a model (train, cv, the landmark classifiers, explain) and
        # compare, which reads their predictions, is exempt, with their git-tracked metrics.
        changed = subprocess.run(
            ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True
        ).stdout.splitlines()
        unexpected = [line for line in changed if not line[3:].startswith(("results/", "dvc.lock"))]
        assert unexpected == [], f"the pipeline changed tracked files: {unexpected}"
        committed = yaml.safe_load(
            subprocess.run(
                ["git", "show", "HEAD:dvc.lock"], cwd=clone, capture_output=True, text=True, check=True
            ).stdout
        )["stages"]
        rebuilt = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
        model_stages = ("train@", "cv@", "cv_landmarks", "landmark_baseline", "explain", "compare")
        data_stages = [name for name in committed if not name.startswith(model_stages)]
        assert {"synth", "ingest", "variant@colored", "folds"} <= set(data_stages)
        assert data_stages and all(rebuilt[name] == committed[name] for name in data_stages)
        status = bash(". .venv/bin/activate && DVC_NO_ANALYTICS=1 dvc status", clone)
        assert status.returncode == 0 and "Data and pipelines are up to date." in status.stdout, status.stdout
        again = bash(". .venv/bin/activate && DVC_NO_ANALYTICS=1 dvc repro", clone)
        assert again.returncode == 0, again.stderr
        assert "Running stage" not in again.stdout, again.stdout
    finally:
        shutil.rmtree(clone / ".venv", ignore_errors=True)
