"""Likely label errors, end to end with the real commands: a synthetic release with 6 flipped sheet
classes, ingest, folds, the landmark classifiers' cross-validation, then `csxa-train label-issues`
(cleanlab) ranks the train cases; the flips that reach cross-validation rank near the top and the
report's precision and recall at k are what the ranking says."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from csxa_data.errors import CsxaError
from csxa_train.label_issues import pooled_probabilities, rank_label_issues


def run(*args, cwd):
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    from csxa_data.synthetic.generate import SynthParams, write_synthetic_release

    from helpers import REPO

    root = tmp_path_factory.mktemp("label-issues")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["quality"]["sources"] = ["landmarks_logreg", "landmarks_gbt"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    synth = SynthParams(seed=3, cases=200, size_scale=0.15, asymptomatic_fraction=0.3, label_flip_rate=0.03)
    write_synthetic_release(root / "synth", synth, workers=2, progress=False)
    common = ("--params", "params.yaml")
    run(
        "csxa-data", "ingest", *common, "--release", "synth/release", "--out", "ingest", "--metrics", "m.json", cwd=root
    )
    run("csxa-data", "folds", *common, "--manifest", "ingest/manifest.csv", "--out", "folds.csv", cwd=root)
    inputs = ("--manifest", "ingest/manifest.csv", "--landmarks", "ingest/landmarks.csv")
    run("csxa-train", "cv-landmarks", *common, *inputs, "--folds", "folds.csv", "--results", "cv", cwd=root)
    said = run(
        "csxa-train",
        "label-issues",
        *common,
        *inputs,
        "--cv",
        "cv",
        "--release",
        "synth/release",
        "--out",
        "quality",
        cwd=root,
    )
    return root, said.stdout


def test_flipped_classes_rank_near_the_top_and_the_report_measures_it(ranked):
    root, said = ranked
    faults = pd.read_csv(root / "synth" / "faults.csv", dtype=str, keep_default_na=False)
    flips = {int(n) for n in faults[faults.fault == "label_flip"].number}
    manifest = pd.read_csv(root / "ingest" / "manifest.csv")
    train = set(manifest.number[manifest.split == "train"])
    table = pd.read_csv(root / "quality" / "label_issues.csv")
    assert set(table.number) == train and list(table["rank"]) == list(range(1, len(train) + 1))
    assert table.quality.is_monotonic_increasing
    disagree = (table.given == "spondylosis") != (table.suggested == "spondylosis")
    assert (disagree == ((table.p >= 0.5) != (table.given == "spondylosis"))).all()
    reachable = flips & train
    ranks = table.set_index("number").loc[sorted(reachable), "rank"]
    assert len(reachable) >= 3 and (ranks <= len(train) / 4).all(), ranks  # a signal, not a lottery

    summary = json.loads((root / "quality" / "label_issues.json").read_text())
    truth = summary["truth"]
    assert truth["injected"] == len(flips) == 6 and truth["k"] == len(reachable)
    assert truth["in_test_split"] == len(flips & set(manifest.number[manifest.split == "test"]))
    top = set(table.number.head(truth["k"]))
    assert truth["precision_at_k"] == truth["recall_at_k"] == len(top & reachable) / len(reachable)
    assert summary["flagged"] == int(table.flagged.sum())
    assert f"{truth['found_in_top_k']} of {truth['k']} rankable in the top {truth['k']}" in said
    report = (root / "quality" / "label_issues.md").read_text()
    assert (
        f"Against the 6 label flips the synthetic release injected: {truth['in_test_split']} in the test split"
        in report
    )
    assert (root / "quality" / "label_issues.png").stat().st_size > 10_000


def test_the_ranking_puts_confident_contradictions_first():
    pooled = pd.DataFrame(
        {
            "number": [1, 2, 3, 4, 5, 6],
            "key": ["0001", "0002", "0003", "0004", "0005", "0006"],
            "label": [1, 1, 0, 0, 1, 0],
            "p": [0.95, 0.02, 0.1, 0.97, 0.6, 0.45],
            "sources": [2] * 6,
        }
    )
    ranked = rank_label_issues(pooled)
    assert list(ranked.number[:2]) == [2, 4]  # sheet says the opposite of what the models are sure of
    assert list(ranked.suggested[:2]) == [0, 1] and ranked.flagged[:2].all()
    assert np.isclose(ranked.quality.iloc[0], 0.02) and not ranked.flagged.iloc[2:].any()
    with pytest.raises(CsxaError, match="same class"):
        rank_label_issues(pooled.assign(label=1))


def test_sources_that_cannot_be_pooled_are_one_message(tmp_path):
    with pytest.raises(CsxaError, match="run the cross-validation stages first") as missing:
        pooled_probabilities(tmp_path, ["nothing"])
    assert "nothing/oof.csv" in str(missing.value) or "nothing" in str(missing.value.path)
    for name, label in (("a", 1), ("b", 0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "oof.csv").write_text(f"key,number,label,score\n0001,1,{label},0.5\n0002,2,0,0.1\n")
    with pytest.raises(CsxaError, match=r"disagree on the label of case\(s\) \[1\]"):
        pooled_probabilities(tmp_path, ["a", "b"])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "oof.csv").write_text("key,number,label,score\n0001,1,1,high\n")
    with pytest.raises(CsxaError, match=r"row 2: number, label \(0 or 1\) and score"):
        pooled_probabilities(tmp_path, ["c"])


def test_the_stage_pools_what_params_names():
    from helpers import REPO

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["label_issues"]
    sources = yaml.safe_load((REPO / "params.yaml").read_text())["quality"]["sources"]
    experiments = yaml.safe_load((REPO / "params.yaml").read_text())["experiments"]
    assert [d for d in stage["deps"] if d.endswith("oof.csv")] == [f"results/cv/{s}/oof.csv" for s in sources]
    assert set(experiments) | {"landmarks_logreg", "landmarks_gbt"} == set(sources)
