"""Helpers the tests share (fixtures live in conftest.py): the repository, small synthetic-release
settings, a fresh clone, the CLI as a user runs it, a tiny project, a tiny built variant, and the
edits and checks of the bad-input tests."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import openpyxl
import yaml

from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.synthetic.generate import SynthParams, write_synthetic_release

REPO = Path(__file__).resolve().parents[1]


# small enough for 2 cores, large enough that every fault kind appears
SMALL = SynthParams(seed=7, cases=60, size_scale=0.2)


def committed_text(path: str) -> str:
    """``path`` as committed at HEAD: the README's generated tables are checked against the committed
    results, not a workspace that the user's own ``dvc repro`` has just rewritten on another CPU."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=REPO, capture_output=True, text=True, check=True)
    return shown.stdout


def fresh_clone(target: Path) -> Path:
    """A new git repository holding exactly what a clone of this work tree would."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"],
    ):
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
    return subprocess.run(
        [sys.executable, "-m", "csxa_data", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


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
        params["quality"]["sources"] = [name for name in params["quality"]["sources"] if name not in dropped]
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
    from csxa_data.ingest.outputs import read_manifest, write_ingest
    from csxa_data.ingest.params import IngestParams
    from csxa_data.ingest.run import run_ingest
    from csxa_data.variants.build import build_variant

    write_synthetic_release(root / "synth", synth, workers=2, progress=False)
    write_ingest(run_ingest(root / "synth" / "release", IngestParams(), workers=2, progress=False), root / "ingest")
    build_variant(
        name,
        spec,
        read_manifest(root / "ingest" / "manifest.csv"),
        root / "synth" / "release",
        root / "variant",
        build,
        workers=2,
        progress=False,
    )
    return root / "variant"


PARAMS = IngestParams()


def first_stem(root):
    return sorted(p.stem for p in (root / "datasets-PNG").iterdir())[0]


def ingest(root):
    return run_ingest(root, PARAMS, workers=1, progress=False)


def assert_only_case_lost(result, baseline, number, source, rule, text):
    drops = result.drops[result.drops.number == number]
    culprit = drops[drops.source == source]
    assert len(culprit) == 1 and culprit.rule.iloc[0] == rule, drops
    assert text in culprit.reason.iloc[0], culprit.reason.iloc[0]
    # the case's other items are dropped too, pointing at the culprit; nothing else changes
    assert set(drops.source) == {"sheet", "png", "json"}
    assert set(result.manifest.number) == set(baseline.manifest.number) - {number}
    sources = result.validation["sources"]
    assert all(s["in"] == s["kept"] + s["dropped"] for s in sources.values())


def edit_json(root, stem, change):
    path = root / "datasets-JSON" / f"{stem}.json"
    document = json.loads(path.read_text())
    path.write_text(change(document) if callable(change) else change)


def edit_sheet(root, change):
    book = openpyxl.load_workbook(root / "datasets.xlsx")
    change(book["Sheet1"])
    book.save(root / "datasets.xlsx")


def column(sheet, name):
    return next(cell.column for cell in sheet[2] if cell.value == name)


def png_header_only(width: int, height: int, bit_depth: int = 16, colour_type: int = 0) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height``, with one empty IDAT: a few dozen bytes that a
    decoder would try to turn into gigabytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
