"""Shared fixtures: small synthetic releases written once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from csxa_data.synthetic.generate import SynthParams, write_synthetic_release

os.environ["DVC_NO_ANALYTICS"] = "1"
REPO = Path(__file__).resolve().parents[1]

# small enough for 2 cores, large enough that every fault kind appears
SMALL = SynthParams(seed=7, cases=60, size_scale=0.2)


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory) -> Path:
    """A 60-case synthetic release (OUT with release/, faults.csv, truth.csv)."""
    out = tmp_path_factory.mktemp("synth") / "small"
    write_synthetic_release(out, SMALL, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A 16-case synthetic release, for tests that break things in a copy of it."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    write_synthetic_release(out, SynthParams(seed=11, cases=16, size_scale=0.2), workers=1, progress=False)
    return out


def fresh_clone(target: Path) -> Path:
    """A new git repository holding exactly what a clone of this work tree would."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=target, check=True)
    return target


def unpack_release(release: Path, root: Path) -> Path:
    """The release as the xlsx plus the two folders its zips unpack to (a writable copy)."""
    import zipfile

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(release / "datasets.xlsx", root)
    for name in ("datasets-PNG", "datasets-JSON"):
        with zipfile.ZipFile(release / f"{name}.zip") as archive:
            archive.extractall(root)  # members sit in a folder of the same name
    return root


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``csxa-data ARGS`` as a user would, capturing output."""
    return subprocess.run([sys.executable, "-m", "csxa_data", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def tiny_params(root: Path, experiments: tuple[str, ...] | None = None) -> None:
    """Shrink a project copy's params.yaml for end-to-end tests: 40 cases, 32 px, smallcnn, 1 epoch,
    3 folds; with ``experiments``, only those experiments (every variant is still built)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    if experiments is not None:
        dropped = set(params["experiments"]) - set(experiments)
        params["experiments"] = {name: params["experiments"][name] for name in experiments}
        # compare and explain list each experiment's files (deps, outs) one by one: drop the others'
        def kept(entry) -> bool:
            path = entry if isinstance(entry, str) else next(iter(entry))
            return not any(path.startswith((f"results/{name}/", f"results/cv/{name}/")) for name in dropped)

        pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
        for stage in pipeline["stages"].values():
            for field in ("deps", "outs", "metrics", "plots"):
                if isinstance(stage.get(field), list):
                    stage[field] = [entry for entry in stage[field] if kept(entry)]
        (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    params["synth"].update(cases=40, size_scale=0.2, asymptomatic_fraction=0.25)
    for spec in params["variants"].values():
        spec["out_size"] = 32
        if spec["crop"] == "centre":
            spec["centre_size"] = 100
    params["build"].update(shard_size=10, min_shards=2)
    params["train"].update(model="smallcnn", epochs=1, image_size=32, workers=0)
    params["cv"].update(folds=3, repeats=1, seed=2037)  # `csxa-data fold-salt --start 2024` on this tiny release
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def tiny_variant(root: Path, synth: SynthParams, name: str, spec, build) -> Path:
    """Synthesise a release into ROOT/synth, ingest it into ROOT/ingest and build one variant into
    ROOT/variant (the path returned): the small real data the training and source tests read."""
    from csxa_data.variants.build import build_variant, read_manifest
    from csxa_data.ingest.run import IngestParams, run_ingest, write_ingest

    write_synthetic_release(root / "synth", synth, workers=2, progress=False)
    write_ingest(run_ingest(root / "synth" / "release", IngestParams(), workers=2, progress=False), root / "ingest")
    build_variant(name, spec, read_manifest(root / "ingest" / "manifest.csv"), root / "synth" / "release",
                  root / "variant", build, workers=2, progress=False)
    return root / "variant"
