"""Bad values in params.yaml end in one line naming the key, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import run_cli


def one_line(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("params, expected", [
    ("ingest:\n  test_fraction: '0.25'\n", "ingest.test_fraction must be float, not '0.25'"),
    ("ingest:\n  test_fraction: 1.5\n", "ingest.test_fraction must be within (0, 1)"),
    ("ingest:\n  seed: null\n", "ingest.seed must be int, not None"),
    ("ingest:\n  gender_codes: [0, 1]\n", "ingest.gender_codes must be dict"),
    ("release:\n  columns: [Number]\n", "release.columns must be a mapping of settings"),
    ("release:\n  label_codes: {a: zero}\n", "release.label_codes must map the class column's values to 0"),
    ("release:\n  md5: sometimes\n", "release.md5 must be one of"),
])
def test_ingest_params(tmp_path, params, expected):
    (tmp_path / "params.yaml").write_text(params)
    line = one_line(run_cli("ingest", "--params", tmp_path / "params.yaml", "--release", tmp_path, "--out", tmp_path / "o"))
    assert expected in line


@pytest.mark.parametrize("params, expected", [
    ("variants:\n  v:\n    out_size: '224'\n", "variants.v.out_size must be int, not '224'"),
    ("variants:\n  v: [1, 2]\n", "variants.v must be a mapping of settings"),
    ("variants:\n  v:\n    crop: circle\n", "variants.v.crop must be 'centre' or 'landmarks'"),
    ("variants:\n  v: {}\nbuild:\n  shard_size: 0\n", "build.shard_size and build.min_shards must be at least 1"),
    ("variants:\n  v: {}\nbuild:\n  png_compress_level: 10\n", "build.png_compress_level must be within 0..9"),
])
def test_build_params(tmp_path, params, expected):
    (tmp_path / "params.yaml").write_text(params)
    line = one_line(run_cli("build", "--params", tmp_path / "params.yaml", "--variant", "v", "--manifest",
                            tmp_path / "m.csv", "--out", tmp_path / "o"))
    assert expected in line


@pytest.mark.parametrize("params, expected", [
    ("train:\n  epochs: '2'\n", "train.epochs must be int, not '2'"),
    ("train:\n  augment: [1]\n", "train.augment must be a mapping of settings"),
    ("train:\n  lr_step: 0\n", "train.lr_step at least 1"),
    ("train:\n  balance: magic\n", "train.balance must be one of"),
    ("experiments:\n  e1:\n", "no experiment 'e2'"),
])
def test_train_params(tmp_path, params, expected):
    (tmp_path / "params.yaml").write_text(params)
    result = subprocess.run([sys.executable, "-m", "csxa_train", "fit", "--params", str(tmp_path / "params.yaml"),
                             "--experiment", "e2" if "e1" in params else "", "--variant", str(tmp_path),
                             "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert expected in one_line(result)


def _keys(value, prefix=""):
    """Every key path of a nested mapping ('train.augment.hflip'), except under experiments' entries."""
    if not isinstance(value, dict) or prefix.startswith("experiments."):
        return set()
    out = set()
    for key, item in value.items():
        out |= {f"{prefix}{key}"} | _keys(item, f"{prefix}{key}.")
    return out


def test_the_papers_params_have_the_demos_keys_and_pass_every_stages_checks():
    import yaml

    from conftest import REPO
    from csxa_data.build import BuildParams, VariantSpec
    from csxa_data.ingest import IngestParams
    from csxa_data.release import ReleaseConfig
    from csxa_data.sources import SourceParams
    from csxa_data.synth import SynthParams
    from csxa_train.compare import CompareConfig
    from csxa_train.fit import TrainConfig
    from csxa_train.landmark_baseline import LandmarkConfig, Protocol

    demo = yaml.safe_load((REPO / "params.yaml").read_text())
    paper = yaml.safe_load((REPO / "params.paper.yaml").read_text())
    expected = _keys(demo)
    if "cv" not in demo:  # until the cross-validation branch adds the section to params.yaml
        expected |= {"cv", "cv.folds", "cv.repeats", "cv.seed"}
    assert _keys(paper) == expected
    assert list(paper["experiments"]) == list(demo["experiments"])
    SynthParams.from_dict(paper["synth"])
    ReleaseConfig.from_dict(paper["release"])
    IngestParams.from_dict(paper["ingest"])
    for name, spec in paper["variants"].items():
        assert VariantSpec.from_dict(name, spec).out_size == 224
    BuildParams.from_dict(paper["build"])
    SourceParams.from_dict(paper["sources"])
    CompareConfig.from_dict(paper["compare"])
    LandmarkConfig.from_dict(paper["landmarks"])
    Protocol.from_train_section(paper["train"])
    models = set()
    for name, experiment in paper["experiments"].items():
        settings = {**paper["train"], **(experiment or {})}
        variant = settings.pop("variant")
        assert variant in paper["variants"]
        config = TrainConfig.from_dict({**settings, "variant": f"data/variants/{variant}"})
        assert (config.image_size, config.epochs, config.weights) == (224, 30, "imagenet")
        models.add(config.model)
    assert models == {"resnet50", "vgg19"}
    cv = paper["cv"]
    assert all(isinstance(cv[k], int) and not isinstance(cv[k], bool) for k in ("folds", "repeats", "seed"))
    assert cv["folds"] >= 2 and cv["repeats"] >= 1


def test_the_papers_protocol_is_one_command(tmp_path):
    import shutil

    import yaml

    from conftest import REPO

    shutil.copy(REPO / "params.paper.yaml", tmp_path)
    release = tmp_path / "csxa release"
    release.mkdir()
    command = [sys.executable, "-m", "csxa_train.paper", "--release", str(release), "--dry-run"]
    missing = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "not a CSXA release folder (no datasets.xlsx)" in one_line(missing)
    assert not (tmp_path / "params.yaml").exists()
    (release / "datasets.xlsx").write_bytes(b"")
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "would run: dvc repro" in result.stdout
    written, paper = (yaml.safe_load((tmp_path / name).read_text()) for name in ("params.yaml", "params.paper.yaml"))
    assert written["ingest"]["release"] == str(release)
    written["ingest"]["release"] = paper["ingest"]["release"]
    assert written == paper
