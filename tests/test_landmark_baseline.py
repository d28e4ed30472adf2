"""The landmark-measurement baseline on a real (small) synthetic release, ingested for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from csxa_data.errors import CsxaError
from csxa_data.ingest.outputs import write_ingest
from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.synthetic.generate import SynthParams, write_synthetic_release
from csxa_train.landmark_baseline import EXPERIMENTS, LandmarkParams, Protocol, read_inputs, run_baseline, split_train

# a third asymptomatic, so both classes reach the validation part and the test split
SYNTH = SynthParams(seed=3, cases=60, size_scale=0.1, asymptomatic_fraction=0.35)
PROTOCOL = Protocol(seed=2024, val_fraction=0.2, threshold="youden", calibration_bins=10)
CONFIG = LandmarkParams(gbt_max_iter=40)
# the columns csxa_train.fit writes for a trained experiment
PREDICTION_COLUMNS = ["key", "number", "label", "score", "pred", "pred_at_threshold"]


@pytest.fixture(scope="module")
def ingest(tmp_path_factory):
    root = tmp_path_factory.mktemp("landmarks")
    write_synthetic_release(root / "synth", SYNTH, workers=2, progress=False)
    write_ingest(run_ingest(root / "synth" / "release", IngestParams(), workers=2, progress=False), root / "ingest")
    return root / "ingest"


@pytest.fixture(scope="module")
def results(ingest, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    details = run_baseline(
        ingest / "manifest.csv",
        ingest / "landmarks.csv",
        out,
        CONFIG,
        PROTOCOL,
        measurements_out=out / "measurements.csv",
    )
    return out, details


def test_predictions_cover_exactly_the_test_cases_in_a_trained_experiments_format(ingest, results):
    out, details = results
    manifest = pd.read_csv(ingest / "manifest.csv", dtype={"stem": str})
    test = manifest[manifest.split == "test"].sort_values("stem")
    for name in EXPERIMENTS:
        predictions = pd.read_csv(out / name / "predictions.csv", dtype={"key": str})
        assert list(predictions.columns) == PREDICTION_COLUMNS
        assert predictions.key.tolist() == test.stem.tolist()
        assert predictions.label.tolist() == test.label.tolist()
        assert predictions.score.between(0, 1).all()
        evaluation = json.loads((out / name / "evaluation.json").read_text())
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert evaluation["n"] == metrics["n"] == len(test)
        assert evaluation["variant"] == "landmarks" and evaluation["majority_class"] == 1
        assert evaluation["train_cases"] + evaluation["validation_cases"] == int((manifest.split == "train").sum())
        assert {"balanced_accuracy", "auroc", "baseline_accuracy", "threshold"} <= set(metrics)
        for extra in ("roc.csv", "confusion.csv", "calibration.csv", "report.png"):
            assert (out / name / extra).is_file()
        # the threshold was chosen on the validation part (both classes there: Youden's rule applied)
        assert evaluation["threshold_note"].startswith("youden on the validation part")
        assert details[name]["auroc"] is not None


def test_compare_reads_the_baseline_like_any_experiment(results):
    from csxa_train.report.table import CompareParams, load_experiments

    out, _ = results
    loaded, reference = load_experiments(
        out,
        {name: {"variant": "landmarks"} for name in EXPERIMENTS},
        "resnet18",
        CompareParams(reference="landmarks_logreg"),
    )
    assert reference == "landmarks_logreg" and [e.name for e in loaded] == list(EXPERIMENTS)
    assert all(e.majority_class == 1 for e in loaded)


def test_no_leakage_test_labels_and_features_do_not_reach_the_fit(ingest, results, tmp_path):
    out, _ = results
    cases = read_inputs(ingest / "manifest.csv", ingest / "landmarks.csv")
    part, validation = split_train(cases, PROTOCOL)
    train = set(cases.stem[cases.split == "train"])
    assert set(part.stem) | set(validation.stem) == train and not set(part.stem) & set(validation.stem)
    assert not train & set(cases.stem[cases.split == "test"])
    # every test case's label flipped and half of them with their landmarks moved: the threshold
    # and the unmoved cases' scores stay exactly as they were, so nothing of the test split
    # reached the fit or the threshold
    manifest = pd.read_csv(ingest / "manifest.csv", dtype={"stem": str})
    test = manifest.split == "test"
    manifest.loc[test, "label"] = 1 - manifest.loc[test, "label"]
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    moved = sorted(manifest.number[test])[::2]
    landmarks = pd.read_csv(ingest / "landmarks.csv")
    landmarks.loc[landmarks.number.isin(moved), "x"] *= 1.1
    landmarks.to_csv(tmp_path / "landmarks.csv", index=False)
    flipped = run_baseline(
        tmp_path / "manifest.csv", tmp_path / "landmarks.csv", tmp_path / "results", CONFIG, PROTOCOL
    )
    for name in EXPERIMENTS:
        assert flipped[name]["threshold"] == json.loads((out / name / "evaluation.json").read_text())["threshold"]
        original = pd.read_csv(out / name / "predictions.csv", dtype={"key": str})
        again = pd.read_csv(tmp_path / "results" / name / "predictions.csv", dtype={"key": str})
        assert again.key.tolist() == original.key.tolist()
        assert (again.label == 1 - original.label).all()  # the test labels did change
        kept = ~again.number.isin(moved)
        assert again.score[kept].tolist() == original.score[kept].tolist()
        assert again.score[~kept].tolist() != original.score[~kept].tolist()  # the moved ones were scored anew


def test_reruns_write_identical_files(ingest, results, tmp_path):
    out, _ = results
    run_baseline(ingest / "manifest.csv", ingest / "landmarks.csv", tmp_path, CONFIG, PROTOCOL)
    for name in EXPERIMENTS:
        for file in ("predictions.csv", "evaluation.json", "metrics.json", "report.png"):
            assert (tmp_path / name / file).read_bytes() == (out / name / file).read_bytes(), (name, file)


def test_measurement_table_has_one_row_per_case(ingest, results):
    out, _ = results
    table = pd.read_csv(out / "measurements.csv")
    manifest = pd.read_csv(ingest / "manifest.csv")
    assert sorted(table.number) == sorted(manifest.number)


def test_a_case_without_landmarks_is_one_clear_line(ingest, tmp_path):
    landmarks = pd.read_csv(ingest / "landmarks.csv")
    gone = int(landmarks.number.iloc[-1])
    landmarks[landmarks.number != gone].to_csv(tmp_path / "landmarks.csv", index=False)
    with pytest.raises(CsxaError, match=f"case {gone} of the manifest has no landmarks"):
        read_inputs(ingest / "manifest.csv", tmp_path / "landmarks.csv")
    part = landmarks[~((landmarks.number == gone) & (landmarks.label == "C4 bottom left"))]
    part.to_csv(tmp_path / "part.csv", index=False)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "landmarks",
            "--manifest",
            str(ingest / "manifest.csv"),
            "--landmarks",
            str(tmp_path / "part.csv"),
            "--results",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"csxa-train: error: {tmp_path / 'part.csv'}: case {gone}: 1 of the 23 landmarks missing: ['C4 bottom left']; "
        "every case needs all 23 for its measurements"
    ]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.parametrize("value", ["2.5", "x", "True", "0", "1e300", "\uff12"])
def test_a_case_number_that_is_not_a_whole_number_is_one_clear_line(ingest, tmp_path, value):
    """landmarks.csv is a DVC output a team may pull: a case number of 2.5 is refused, not read as 2."""
    landmarks = pd.read_csv(ingest / "landmarks.csv", dtype={"number": str})
    landmarks.loc[7, "number"] = value
    landmarks.to_csv(tmp_path / "landmarks.csv", index=False)
    with pytest.raises(CsxaError, match=r"column number: '.+' on line 9 is not a whole number >= 1"):
        read_inputs(ingest / "manifest.csv", tmp_path / "landmarks.csv")


def test_bad_landmarks_settings_are_named():
    with pytest.raises(CsxaError, match=r"unknown key\(s\) \['depth'\] in landmarks"):
        LandmarkParams.from_dict({"depth": 3})
    with pytest.raises(CsxaError, match="landmarks.gbt_learning_rate"):
        LandmarkParams.from_dict({"gbt_learning_rate": 2.0})
    with pytest.raises(CsxaError, match="train.threshold"):
        Protocol.from_train_section({"threshold": "best"})


@pytest.mark.parametrize("which", ["results", "landmarks_gbt"])
def test_a_results_path_that_is_a_file_is_refused_before_anything_is_written(ingest, tmp_path, which):
    """Third audit: RESULTS/landmarks_gbt as a file was a FileExistsError traceback after the
    measurement table and landmarks_logreg/ had been written."""
    results = tmp_path / "results"
    if which == "results":
        results.write_text("x")
    else:
        results.mkdir()
        (results / which).write_text("x")
    with pytest.raises(CsxaError, match="exists and is not a folder"):
        run_baseline(
            ingest / "manifest.csv",
            ingest / "landmarks.csv",
            results,
            CONFIG,
            PROTOCOL,
            measurements_out=tmp_path / "measurements.csv",
        )
    assert not (tmp_path / "measurements.csv").exists() and not (tmp_path / "results" / "landmarks_logreg").exists()
