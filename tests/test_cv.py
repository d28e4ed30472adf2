"""`csxa-data folds` and `csxa-train cv` on a tiny colour variant: every train case scored once per
repeat by the model of the fold that left it out, no test case, the landmark baseline on the same
folds, and the bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from csxa_data.ingest.outputs import read_manifest
from csxa_data.splits import find_fold_salts
from csxa_data.synthetic.generate import SynthParams
from csxa_data.variants.spec import BuildParams, VariantSpec
from csxa_train.cli import main as train_main

from helpers import run_cli, tiny_variant

TINY = SynthParams(seed=5, cases=64, size_scale=0.2, asymptomatic_fraction=0.25)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny colour variant, its manifest, 2 folds x 2 repeats (salts found as `fold-salt` finds them)
    and a params file: smallcnn, 1 epoch."""
    root = tmp_path_factory.mktemp("cv")
    variant = tiny_variant(
        root,
        TINY,
        "colored_cropped",
        VariantSpec(crop="landmarks", colour="stacked", out_size=32),
        BuildParams(shard_size=16, min_shards=4),
    )
    manifest = read_manifest(root / "ingest" / "manifest.csv")
    train = manifest[manifest.split == "train"]
    salts = find_fold_salts(train.number, train.label, 2, 2, start=1)
    params = {
        "train": {
            "model": "smallcnn",
            "weights": "none",
            "epochs": 1,
            "batch_size": 16,
            "eval_batch_size": 16,
            "workers": 0,
            "threshold": "youden",
            "val_fraction": 0.2,
        },
        "experiments": {"tiny": {"variant": "colored_cropped"}},
        "cv": {"folds": 2, "repeats": 2, "seed": salts},
        "landmarks": {"gbt_max_iter": 10},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    folds = run_cli(
        "folds",
        "--params",
        root / "params.yaml",
        "--manifest",
        root / "ingest" / "manifest.csv",
        "--out",
        root / "folds.csv",
    )
    assert folds.returncode == 0, folds.stderr
    assert "train cases in 2 folds x 2 repeat(s), by case" in folds.stdout
    return root, variant, manifest


def run_cv(root: Path, variant: Path, out: Path, folds: Path | None = None) -> int:
    return train_main(
        [
            "cv",
            "--params",
            str(root / "params.yaml"),
            "--experiment",
            "tiny",
            "--variant",
            str(variant),
            "--folds",
            str(folds or root / "folds.csv"),
            "--out",
            str(out),
        ]
    )


@pytest.fixture(scope="module")
def cross_validated(project):
    root, variant, _ = project
    assert run_cv(root, variant, root / "cv" / "tiny") == 0
    return root / "cv" / "tiny"


def test_folds_csv_holds_every_train_case_once_per_repeat_and_no_test_case(project):
    root, _, manifest = project
    folds = pd.read_csv(root / "folds.csv")
    train, test = manifest[manifest.split == "train"], manifest[manifest.split == "test"]
    assert list(folds.columns) == ["number", "label", "repeat", "fold"]
    for r in (0, 1):
        part = folds[folds.repeat == r]
        assert sorted(part.number) == sorted(train.number) and part.number.is_unique
        assert set(part.fold) == {0, 1}
        # stratified: both classes in both folds
        assert (pd.crosstab(part.fold, part.label) > 0).all().all()
    assert not set(folds.number) & set(test.number)
    # two repeats with different salts: different folds
    assert not (folds[folds.repeat == 0].fold.to_numpy() == folds[folds.repeat == 1].fold.to_numpy()).all()


def test_cv_scores_every_train_case_once_per_repeat_in_its_own_fold(project, cross_validated):
    root, _, manifest = project
    oof = pd.read_csv(cross_validated / "oof.csv", dtype={"key": str})
    folds = pd.read_csv(root / "folds.csv")
    assert list(oof.columns) == [
        "key",
        "number",
        "label",
        "repeat",
        "fold",
        "score",
        "threshold",
        "pred",
        "pred_at_threshold",
    ]
    merged = oof.merge(folds, on=["number", "repeat"], suffixes=("", "_table"), validate="one_to_one")
    assert len(merged) == len(folds) == len(oof)  # every case of every repeat, once
    assert (merged.fold == merged.fold_table).all() and (merged.label == merged.label_table).all()
    assert not set(oof.number) & set(manifest.number[manifest.split == "test"])
    assert oof.key.str.fullmatch(r"[0-9]{7}").all()  # one row per case, not per channel order
    assert oof.score.between(0, 1).all()
    assert (oof.pred_at_threshold == (oof.score >= oof.threshold)).all()
    assert oof.groupby(["repeat", "fold"]).threshold.nunique().eq(1).all()  # one threshold per fold
    details = json.loads((cross_validated / "folds.json").read_text())
    assert [(f["repeat"], f["fold"]) for f in details["folds"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    n = len(folds[folds.repeat == 0])
    for fold in details["folds"]:
        # trained on the other fold alone: its train and validation parts are the complement
        assert fold["train_cases"] + fold["validation_cases"] + fold["test_cases"] == n
        assert fold["test_cases"] == int(((folds.repeat == fold["repeat"]) & (folds.fold == fold["fold"])).sum())
        assert 0 <= fold["balanced_accuracy"] <= 1


def test_cv_is_reproducible_byte_for_byte(project, cross_validated):
    root, variant, _ = project
    assert run_cv(root, variant, root / "cv" / "again") == 0
    assert (root / "cv" / "again" / "oof.csv").read_bytes() == (cross_validated / "oof.csv").read_bytes()


def test_landmark_baseline_on_the_same_folds(project, cross_validated):
    root, _, _ = project
    assert (
        train_main(
            [
                "cv-landmarks",
                "--params",
                str(root / "params.yaml"),
                "--manifest",
                str(root / "ingest" / "manifest.csv"),
                "--landmarks",
                str(root / "ingest" / "landmarks.csv"),
                "--folds",
                str(root / "folds.csv"),
                "--results",
                str(root / "cv"),
            ]
        )
        == 0
    )
    network = pd.read_csv(cross_validated / "oof.csv", dtype={"key": str})
    for name in ("landmarks_logreg", "landmarks_gbt"):
        oof = pd.read_csv(root / "cv" / name / "oof.csv", dtype={"key": str})
        for column in ("key", "label", "repeat", "fold"):
            assert oof[column].tolist() == network[column].tolist(), (name, column)


def test_landmark_cv_on_folds_of_other_cases_names_the_folds_file_given(project, tmp_path, capsys):
    """Stop-18 leftover: the error named `folds.csv` whatever --folds said."""
    root, _, _ = project
    folds = pd.read_csv(root / "folds.csv")
    gone = int(folds.number.iloc[0])
    folds[folds.number != gone].to_csv(tmp_path / "other-folds.csv", index=False)
    assert (
        train_main(
            [
                "cv-landmarks",
                "--params",
                str(root / "params.yaml"),
                "--manifest",
                str(root / "ingest" / "manifest.csv"),
                "--landmarks",
                str(root / "ingest" / "landmarks.csv"),
                "--folds",
                str(tmp_path / "other-folds.csv"),
                "--results",
                str(tmp_path / "cv"),
            ]
        )
        == 2
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"csxa-train: error: {tmp_path / 'other-folds.csv'}: the variant's "
        f"train cases and the fold table differ: 1 only in the variant [{gone}]"
    )
    assert not (tmp_path / "cv").exists()


def test_an_output_file_whose_place_holds_a_folder_is_one_line_naming_it(project, tmp_path):
    # the rename of the finished temporary file fails; the line names the output, not the temporary
    root, _, _ = project
    (tmp_path / "folds.csv" / "keep").mkdir(parents=True)
    result = run_cli(
        "folds",
        "--params",
        root / "params.yaml",
        "--manifest",
        root / "ingest" / "manifest.csv",
        "--out",
        tmp_path / "folds.csv",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"csxa-data: error: {tmp_path / 'folds.csv'}: Is a directory"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folds.csv"]  # no temporary file left


def test_more_folds_than_the_minority_class_has_cases_is_one_line(project, tmp_path):
    root, _, manifest = project
    minority = int(manifest[manifest.split == "train"].label.value_counts().min())
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["cv"] = {"folds": minority + 1, "repeats": 1, "seed": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli(
        "folds",
        "--params",
        tmp_path / "params.yaml",
        "--manifest",
        root / "ingest" / "manifest.csv",
        "--out",
        tmp_path / "folds.csv",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: params.yaml: cv.folds {minority + 1} is larger than the {minority} train cases of class 0: "
        f"some fold would have none; use at most {minority} folds"
    ]
    assert not (tmp_path / "folds.csv").exists()


@pytest.mark.parametrize(
    "cv, message",
    [
        ({"folds": 2, "repeats": 2, "seed": [1]}, "cv.seed lists 1 salt(s) for 2 repeat(s); give one per repeat"),
        ({"folds": 2, "repeats": 2, "seed": [3, 3]}, "cv.seed lists a salt twice"),
        ({"folds": 2, "repeats": 0, "seed": 1}, "cv.repeats must be a whole number within 1..100, not 0"),
        ({"folds": 2, "seed": "x"}, "cv.seed must be a whole number or a list of them, not 'x'"),
    ],
)
def test_bad_cv_settings_are_one_line(project, tmp_path, capsys, cv, message):
    from csxa_data.cli import main as data_main

    root, _, _ = project
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"cv": cv}))
    assert (
        data_main(
            [
                "folds",
                "--params",
                str(tmp_path / "params.yaml"),
                "--manifest",
                str(root / "ingest" / "manifest.csv"),
                "--out",
                str(tmp_path / "folds.csv"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "folds.csv").exists()


def test_cv_refuses_a_fold_table_of_other_cases(project, tmp_path, capsys):
    root, variant, _ = project
    folds = pd.read_csv(root / "folds.csv")
    dropped = int(folds.number.iloc[0])
    folds[folds.number != dropped].to_csv(tmp_path / "folds.csv", index=False)
    assert run_cv(root, variant, tmp_path / "out", tmp_path / "folds.csv") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"1 only in the variant [{dropped}]" in err[0]
    assert not (tmp_path / "out").exists()


def test_cv_refuses_a_fold_table_with_a_repeat_copied_as_another(project, tmp_path, capsys):
    """Third audit: repeat 0 copied as repeat 1 passed the contract and doubled the folds the
    t-tests count."""
    root, variant, _ = project
    folds = pd.read_csv(root / "folds.csv")
    first = folds[folds.repeat == 0]
    pd.concat([first, first.assign(repeat=1)]).to_csv(tmp_path / "folds.csv", index=False)
    assert run_cv(root, variant, tmp_path / "out", tmp_path / "folds.csv") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "repeats_and_folds_numbered_from_0_and_repeats_distinct" in err[0], err
    assert not (tmp_path / "out").exists()
