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
