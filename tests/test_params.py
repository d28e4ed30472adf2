"""Bad values in params.yaml end in one line naming the key, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers import run_cli


def one_line(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "params, expected",
    [
        ("ingest:\n  test_fraction: '0.25'\n", "ingest.test_fraction must be float, not '0.25'"),
        ("ingest:\n  test_fraction: 1.5\n", "ingest.test_fraction must be within (0, 1)"),
        ("ingest:\n  seed: null\n", "ingest.seed must be int, not None"),
        ("ingest:\n  gender_codes: [0, 1]\n", "ingest.gender_codes must be dict"),
        ("release:\n  columns: [Number]\n", "release.columns must be a mapping of settings"),
        ("release:\n  label_codes: {a: zero}\n", "release.label_codes must map the class column's values to 0"),
        ("release:\n  md5: sometimes\n", "release.md5 must be one of"),
    ],
)
def test_ingest_params(tmp_path, params, expected):
    (tmp_path / "params.yaml").write_text(params)
    line = one_line(
        run_cli("ingest", "--params", tmp_path / "params.yaml", "--release", tmp_path, "--out", tmp_path / "o")
    )
    assert expected in line


@pytest.mark.parametrize(
    "params, expected",
    [
        ("variants:\n  v:\n    out_size: '224'\n", "variants.v.out_size must be int, not '224'"),
        ("variants:\n  v: [1, 2]\n", "variants.v must be a mapping of settings"),
        ("variants:\n  v:\n    crop: circle\n", "variants.v.crop must be 'centre' or 'landmarks'"),
        ("variants:\n  v: {}\nbuild:\n  shard_size: 0\n", "build.shard_size and build.min_shards must be at least 1"),
        ("variants:\n  v: {}\nbuild:\n  png_compress_level: 10\n", "build.png_compress_level must be within 0..9"),
    ],
)
def test_build_params(tmp_path, params, expected):
    (tmp_path / "params.yaml").write_text(params)
    line = one_line(
        run_cli(
            "build",
            "--params",
            tmp_path / "params.yaml",
            "--variant",
            "v",
            "--manifest",
            tmp_path / "m.csv",
            "--out",
            tmp_path / "o",
        )
    )
    assert expected in line


@pytest.mark.parametrize(
    "params, expected",
    [
        ("train:\n  epochs: '2'\n", "train.epochs must be int, not '2'"),
        ("train:\n  augment: [1]\n", "train.augment must be a mapping of settings"),
        ("train:\n  lr_step: 0\n", "train.lr_step at least 1"),
        ("train:\n  balance: magic\n", "train.balance must be one of"),
        ("experiments:\n  e1:\n", "no experiment 'e2'"),
    ],
)
def test_train_params(tmp_path, params, expected):
    (tmp_path / "params.yaml").write_text(params)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "fit",
            "--params",
            str(tmp_path / "params.yaml"),
            "--experiment",
            "e2" if "e1" in params else "",
            "--variant",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
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

    from csxa_data.ingest.params import IngestParams
    from csxa_data.release.reader import ReleaseParams
    from csxa_data.shards.sources import SourceParams
    from csxa_data.synthetic.generate import SynthParams
    from csxa_data.variants.spec import BuildParams, VariantSpec
    from csxa_train.label_issues import QualityParams
    from csxa_train.landmark_baseline import LandmarkParams, Protocol
    from csxa_train.params import TrainParams
    from csxa_train.report.table import CompareParams

    from helpers import REPO

    demo = yaml.safe_load((REPO / "params.yaml").read_text())
    paper = yaml.safe_load((REPO / "params.paper.yaml").read_text())
    expected = _keys(demo)
    if "cv" not in demo:  # until the cross-validation branch adds the section to params.yaml
        expected |= {"cv", "cv.folds", "cv.repeats", "cv.seed"}
    assert _keys(paper) == expected
    assert list(paper["experiments"]) == list(demo["experiments"])
    SynthParams.from_dict(paper["synth"])
    QualityParams.from_dict(paper["quality"])
    ReleaseParams.from_dict(paper["release"])
    IngestParams.from_dict(paper["ingest"])
    for name, spec in paper["variants"].items():
        assert VariantSpec.from_dict(name, spec).out_size == 224
    BuildParams.from_dict(paper["build"])
    SourceParams.from_dict(paper["sources"])
    CompareParams.from_dict(paper["compare"])
    LandmarkParams.from_dict(paper["landmarks"])
    Protocol.from_train_section(paper["train"])
    models = set()
    for experiment in paper["experiments"].values():
        settings = {**paper["train"], **(experiment or {})}
        variant = settings.pop("variant")
        assert variant in paper["variants"]
        config = TrainParams.from_dict({**settings, "variant": f"data/variants/{variant}"})
        assert (config.image_size, config.epochs, config.weights) == (224, 30, "imagenet")
        models.add(config.model)
    assert models == {"resnet50", "vgg19"}
    cv = paper["cv"]
    assert all(isinstance(cv[k], int) and not isinstance(cv[k], bool) for k in ("folds", "repeats", "seed"))
    assert cv["folds"] >= 2 and cv["repeats"] >= 1


def test_the_papers_protocol_is_one_command(tmp_path):
    import shutil

    import yaml

    from helpers import REPO

    shutil.copy(REPO / "params.paper.yaml", tmp_path)
    release = tmp_path / "csxa release"
    release.mkdir()
    command = [sys.executable, str(REPO / "tools" / "paper.py"), "--release", str(release), "--dry-run"]
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


# --- the second audit: settings that were tracebacks, hangs or silently wrong ------------------

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdef", "bcdefg")
)  # 9**6 strings once expanded


@pytest.mark.parametrize(
    "params, args, says",
    [
        (
            "variants:\n  ../../escaped: {crop: centre, colour: grey, out_size: 32}\n",
            ("build", "--variant", "../../escaped"),
            "variants: the name '../../escaped' is not a plain name",
        ),
        (
            "ingest:\n  test_fraction: " + "9" * 400 + "\n",
            ("split-salt",),
            "not valid YAML (a whole number of 1329 bits",
        ),
        ("ingest:\n  test_fraction: 1.0e+400\n", ("split-salt",), "ingest.test_fraction must be float, not inf"),
        ("ingest:\n  test_fraction: .inf\n", ("split-salt",), "ingest.test_fraction must be float, not inf"),
        ("unused:\n  x: " + "9" * 5000 + "\n", ("check-release",), "not valid YAML (Exceeds the limit (4300 digits)"),
        ("synth:\n  cases: 10\n  cases: 30\n", ("synth",), "not valid YAML (key 'cases' given twice"),
        (
            "release:\n  label_codes: {asymptomatic: 1, symptomatic: 1}\n",
            ("check-release",),
            "release.label_codes must map the class column's",
        ),
        ("release:\n  columns: {gender: Age}\n", ("check-release",), "release.columns name a sheet column twice"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n" + BOMB + "synth:\n  cases: *g\n",
            ("synth",),
            "synth.cases must be int, not [[",
        ),
        ("", ("check-release",), "holds no settings (empty, or only comments); write {} to mean every default"),
        ("# synth:\n#   cases: 10\n", ("synth",), "holds no settings"),
        ("0\n", ("check-release",), "top level must be a mapping of sections"),
        ("synth: false\n", ("synth",), "section 'synth' must be a mapping"),
        ("release: []\n", ("check-release",), "section 'release' must be a mapping"),
    ],
)
def test_a_hostile_setting_is_one_line_naming_the_file_given(tmp_path, params, args, says):
    """Second audit: a name that became ../../ (written outside), a 400-digit float, .inf, an int
    of 5,000 digits, a key given twice (last won), classes coded alike, a YAML alias bomb whose
    error message expanded it (a MemoryError). Then: an empty or comments-only file, a top level of
    0 and a section of false or [] all meant "every default"."""
    from helpers import run_cli

    path = tmp_path / "other.yaml"
    path.write_text(params)
    extra = {
        "synth": ("--out", tmp_path / "s", "--cases", "5"),
        "split-salt": ("--manifest", tmp_path / "none.csv"),
        "check-release": ("--release", tmp_path),
    }.get(args[0], ())
    if "cases: *g" in params or "cases: 10" in params or params.startswith("synth: false"):
        extra = ("--out", tmp_path / "s")
    result = run_cli(*args, *extra, "--params", path, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"csxa-data: error: {path}: {says}"), lines
    assert len(lines[0]) < 600 and not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (("synth", "--workers", "0"), "argument --workers: 0 is not within 1..256"),
        (("contact-sheet", "--tile", "0"), "argument --tile: 0 is not within 16..2048"),
        (("ingest", "--workers", "-1"), "argument --workers: -1 is not within 1..256"),
    ],
)
def test_out_of_range_command_line_numbers_are_usage_errors(args, says):
    from helpers import run_cli

    result = run_cli(*args)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


def test_train_and_compare_seeds_and_batch_sizes_are_bounded():
    from csxa_data.errors import CsxaError
    from csxa_train.params import TrainParams
    from csxa_train.report.table import CompareParams

    for bad, says in (
        ({"seed": -1}, "train.seed must be within 0..2**32-1"),
        ({"seed": 2**64}, "train.seed must be within 0..2**32-1"),
        ({"eval_batch_size": 10**9}, "at most 65536"),
        ({"workers": 2000}, "train.workers must be within"),
    ):
        with pytest.raises(CsxaError, match=re.escape(says)):
            TrainParams.from_dict({"variant": "v", **bad})
    with pytest.raises(CsxaError, match=re.escape("compare.seed must be within 0..2**32-1")):
        CompareParams.from_dict({"seed": -3})


def test_merge_keys_still_load_and_huge_hex_or_sexagesimal_ints_are_one_line(tmp_path):
    from csxa_data.params import load_section

    from helpers import run_cli

    path = tmp_path / "merge.yaml"
    path.write_text(
        "variants:\n  base: &b {crop: centre, colour: grey, out_size: 32}\n  v2:\n    <<: *b\n    out_size: 64\n"
    )
    assert load_section(path, "variants")["v2"] == {"crop": "centre", "colour": "grey", "out_size": 64}
    for number in ("0x" + "F" * 4000, "1" + ":59" * 3000):
        path.write_text(f"synth:\n  cases: {number}\n")
        result = run_cli("synth", "--params", path, "--out", tmp_path / "s")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
        assert "bits is no setting" in result.stderr and len(result.stderr) < 600
