"""Output paths a user may mistype (issue 10's second audit): an output folder is written whole and
renamed into place, so a command must never replace a folder holding anything it did not write
(the release itself, a home folder, ``.``); it refuses with one line before any work."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from helpers import run_cli


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture()
def release(tiny_synth, tmp_path) -> Path:
    copy = tmp_path / "csxa"
    shutil.copytree(tiny_synth / "release", copy)
    return copy


def assert_refused(result, path: Path, says: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"csxa-data: error: {path}: {says}"]


FOREIGN = (
    "holds 'datasets-JSON.zip', 'datasets-PNG.zip', 'datasets.xlsx', which this command does not write; "
    "the output folder is replaced whole, so it is left alone: give an empty or new folder; nothing was done"
)


def test_ingest_out_set_to_the_release_is_refused_and_the_release_is_kept(release, tmp_path):
    before = digests(release)
    assert_refused(run_cli("ingest", "--release", release, "--out", release, "--quiet"), release, FOREIGN)
    xlsx = release / "datasets.xlsx"
    assert_refused(
        run_cli("ingest", "--release", release, "--out", xlsx, "--quiet"),
        xlsx,
        "exists and is not a folder; the output is a folder written whole in its place, so it is left "
        "alone; nothing was done",
    )
    assert digests(release) == before


def test_an_output_folder_is_replaced_only_when_it_holds_nothing_but_that_commands_files(release, tmp_path):
    untouched = digests(release)
    out = tmp_path / "ingest"
    assert run_cli("ingest", "--release", release, "--out", out, "--quiet").returncode == 0
    first = digests(out)
    assert run_cli("ingest", "--release", release, "--out", out, "--quiet").returncode == 0  # its own: replaced
    assert digests(out) == first
    (out / "notes.txt").write_text("mine")
    assert_refused(
        run_cli("ingest", "--release", release, "--out", out, "--quiet"),
        out,
        "holds 'notes.txt', which this command does not write; the output folder is replaced whole, so "
        "it is left alone: give an empty or new folder; nothing was done",
    )
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()

    params = tmp_path / "params.yaml"
    params.write_text(
        "variants:\n  original: {crop: centre, centre_size: 100, colour: grey, out_size: 32}\n"
        "build: {shard_size: 10, min_shards: 2}\n"
    )
    build = (
        "build",
        "--params",
        params,
        "--variant",
        "original",
        "--manifest",
        out / "manifest.csv",
        "--release",
        release,
        "--quiet",
    )
    assert_refused(run_cli(*build, "--out", release), release, FOREIGN)
    assert_refused(
        run_cli(*build, "--out", out),
        out,  # the ingest folder is not a variant folder
        "holds 'drops.csv', 'duplicates.csv', 'duplicates.png' and 5 more, which this command does not "
        "write; the output folder is replaced whole, so it is left alone: give an empty or new folder; "
        "nothing was done",
    )
    variant = tmp_path / "variant"
    assert run_cli(*build, "--out", variant).returncode == 0
    assert run_cli(*build, "--out", variant).returncode == 0
    assert {p.name for p in variant.iterdir()} >= {"shards.json", "stats.json", "preview.png", "train-000000.tar"}
    assert digests(release) == untouched
    assert digests(out) == first


def test_synth_never_replaces_a_release_it_did_not_write(release, tmp_path):
    parent = tmp_path / "data"
    shutil.copytree(release, parent / "release")  # a real release sits at data/release
    before = digests(parent / "release")
    result = run_cli("synth", "--out", parent, "--cases", "12", "--size-scale", "0.1", "--quiet")
    assert_refused(
        result,
        parent / "release",
        "holds a release that `csxa-data synth` did not write (no faults.csv beside it); synth replaces "
        "its release folder whole, so it is left alone; nothing was done",
    )
    assert digests(parent / "release") == before
    own = tmp_path / "synthetic"
    for _ in range(2):  # its own release is replaced
        assert run_cli("synth", "--out", own, "--cases", "12", "--size-scale", "0.1", "--quiet").returncode == 0
