"""`csxa-train compare`: the Table-1 report from predictions files, checked against direct computations."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from csxa_train import stats
from csxa_train.cli import main

N_NEG, N_POS = 20, 80


def write_experiment(
    results: Path, name: str, scores: np.ndarray, labels: np.ndarray, keys: list[str], majority: int = 1
) -> None:
    folder = results / name
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "key": keys,
            "number": range(1, len(keys) + 1),
            "label": labels,
            "score": scores,
            "pred": (scores >= 0.5).astype(int),
            "pred_at_threshold": (scores >= 0.3).astype(int),
        }
    ).to_csv(folder / "predictions.csv", index=False)
    (folder / "evaluation.json").write_text(
        json.dumps({"majority_class": majority, "threshold": 0.3, "validation_by_class": {"0": 13, "1": 57}})
    )


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(N_NEG, int), np.ones(N_POS, int)]
    keys = [f"{i:07d}" for i in range(1, len(labels) + 1)]
    results = tmp_path / "results"
    reference = np.clip(0.55 + 0.25 * (labels - 0.5) + rng.normal(0, 0.2, len(labels)), 0, 1)
    better = np.clip(0.5 + 0.6 * (labels - 0.5) + rng.normal(0, 0.15, len(labels)), 0, 1)
    write_experiment(results, "orig", reference, labels, keys)
    write_experiment(results, "better", better, labels, keys)
    write_experiment(results, "always_sick", np.full(len(labels), 0.9), labels, keys)
    params = {
        "train": {"model": "resnet18"},
        "experiments": {
            "orig": {"variant": "original"},
            "better": {"variant": "cropped", "model": "vggsmall"},
            "always_sick": {"variant": "colored"},
        },
        "compare": {"reference": None, "operating_point": "0.5", "resamples": 300, "seed": 1, "confidence": 0.95},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path, labels, {"orig": reference, "better": better}


def run(project_dir: Path, *extra: str) -> int:
    return main(
        [
            "compare",
            "--params",
            str(project_dir / "params.yaml"),
            "--results",
            str(project_dir / "results"),
            "--out",
            str(project_dir / "out"),
            *extra,
        ]
    )


def test_compare_writes_the_table_with_intervals_baseline_and_paired_tests(project, capsys):
    from sklearn.metrics import roc_auc_score

    root, labels, scores = project
    assert run(root) == 0
    assert "1 not above the majority baseline" in capsys.readouterr().out
    for name in ("table.md", "table.csv", "compare.json", "compare.png"):
        assert (root / "out" / name).is_file(), name
    table = pd.read_csv(root / "out" / "table.csv")
    assert table.experiment.tolist()[:3] == ["orig", "better", "always_sick"]  # the reference first
    assert table.experiment.iloc[-1] == "majority baseline (always class 1)"
    baseline = table.iloc[-1]
    assert baseline.accuracy == pytest.approx(N_POS / (N_NEG + N_POS)) and baseline.specificity == 0
    sick = table.set_index("experiment").loc["always_sick"]
    assert not sick.beats_baseline and sick.accuracy == baseline.accuracy
    better = table.set_index("experiment").loc["better"]
    orig = table.set_index("experiment").loc["orig"]
    correct = {name: (s >= 0.5).astype(int) == labels for name, s in scores.items()}
    # Wilson interval of the accuracy, the paper's z-test, exact McNemar and the AUROC difference
    assert (better.accuracy_low, better.accuracy_high) == pytest.approx(
        stats.wilson_interval(correct["better"].sum(), 100)
    )
    z, p = stats.two_proportion_ztest(correct["better"].sum(), 100, correct["orig"].sum(), 100, alternative="greater")
    assert (better.z, better.p_one_sided) == pytest.approx((z, p), abs=1e-6)
    mc = stats.mcnemar_exact(correct["orig"], correct["better"])
    assert better.mcnemar_p == pytest.approx(mc["p"], abs=1e-6)
    assert better.mcnemar_only_this_correct == mc["only_other_correct"]
    assert better.auroc == pytest.approx(roc_auc_score(labels, scores["better"]), abs=1e-6)
    assert better.auroc_difference == pytest.approx(
        roc_auc_score(labels, scores["better"]) - roc_auc_score(labels, scores["orig"]), abs=1e-6
    )
    assert better.auroc_difference_low <= better.auroc_difference <= better.auroc_difference_high
    assert orig.balanced_accuracy_low <= orig.balanced_accuracy <= orig.balanced_accuracy_high
    holm = stats.holm([table.set_index("experiment").loc[n].mcnemar_p for n in ("better", "always_sick")])
    assert better.mcnemar_p_holm == pytest.approx(holm[0], abs=1e-6)
    assert np.isnan(orig.mcnemar_p)  # the reference is not tested against itself
    metrics = json.loads((root / "out" / "compare.json").read_text())
    assert metrics["reference"] == "orig" and metrics["experiments"]["always_sick"]["beats_baseline"] is False
    md = (root / "out" / "table.md").read_text()
    assert "always_sick †" in md and "Holm" in md and "| orig (reference) | original | resnet18 |" in md
    for printed in ("0.0732", "0.0406", "0.269", "0.213"):  # the paper's Table 1 beside the recomputed values
        assert printed in md
    assert "| Cropped | ResNet50 | 95.48 | 92.54 | 93.99 | 0.0732 | 0.0732 | 0.1465 |" in md
    # beside the paper's 0.5: each experiment at its chosen threshold, with the cases that chose it
    chosen = md.split("## At each experiment's chosen threshold", 1)[1].split("## Against", 1)[0]
    at = (scores["better"] >= 0.3).astype(int)
    sensitivity = 100 * at[labels == 1].mean()
    assert f"| better | 0.300 | 13 / 57 | {sensitivity:.1f} [" in chosen


def test_compare_is_reproducible_byte_for_byte(project):
    root, _, _ = project
    assert run(root) == 0
    first = {p.name: p.read_bytes() for p in (root / "out").iterdir()}
    assert run(root) == 0
    assert first == {p.name: p.read_bytes() for p in (root / "out").iterdir()}


def test_reference_and_operating_point_can_be_chosen(project):
    root, _, _ = project
    assert run(root, "--reference", "better", "--operating-point", "chosen") == 0
    table = pd.read_csv(root / "out" / "table.csv")
    assert table.experiment.iloc[0] == "better" and bool(table.reference.iloc[0])
    md = (root / "out" / "table.md").read_text()
    assert "validation-chosen threshold" in md and "## At threshold 0.5 (the paper's)" in md
    assert run(root, "--reference", "nope") == 2


def test_compare_refuses_predictions_of_other_cases_naming_them(project, capsys):
    root, _, _ = project
    path = root / "results" / "better" / "predictions.csv"
    frame = pd.read_csv(path, dtype={"key": str})
    frame.loc[3, "key"] = "0999999"
    frame.to_csv(path, index=False)
    assert run(root) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("csxa-train: error: better's test cases differ from the reference orig's")
    assert "0999999" in err and "0000004" in err


@pytest.mark.parametrize(
    "column,value,message",
    [("score", "nan", "NaN or outside"), ("score", "1.5", "NaN or outside"), ("label", "2", "labels must be 0")],
)
def test_compare_refuses_bad_scores_and_labels(project, capsys, column, value, message):
    root, _, _ = project
    path = root / "results" / "always_sick" / "predictions.csv"
    frame = pd.read_csv(path, dtype={"key": str, column: str})
    frame.loc[5, column] = value
    frame.to_csv(path, index=False)
    assert run(root) == 2
    err = capsys.readouterr().err
    assert message in err and "always_sick" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "operating_point, column, message",
    [
        ("0.5", "pred", "column pred disagrees with score >= 0.5 in "),
        ("chosen", "pred_at_threshold", "column pred_at_threshold is not one threshold on the score"),
    ],
)
def test_compare_refuses_predictions_that_do_not_follow_the_scores(project, capsys, operating_point, column, message):
    """Second audit: every score under 0.5 with pred flipped to 1 reported 100% sensitivity."""
    root, _, _ = project
    path = root / "results" / "better" / "predictions.csv"
    frame = pd.read_csv(path, dtype={"key": str})
    low = frame.score.idxmin()
    frame.loc[low, column] = 1 - frame.loc[low, column]
    frame.to_csv(path, index=False)
    assert run(root, "--operating-point", operating_point) == 2
    err = capsys.readouterr().err
    assert message in err and "better/predictions.csv" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "evaluation.json: is a JSON list, not an object"),
        ("[" * 100_000, "evaluation.json: not valid JSON"),
        (
            '{"experiment": "orig", "majority_class": 1}',
            "holds the results of experiment 'orig', not 'better': a copied or "
            "linked results folder, or a fit written there under another name?",
        ),
        ('{"experiment": "better", "majority_class": 1}', None),
        ('{"majority_class": "x"}', "majority_class must be 0 or 1, not x"),
        ('{"majority_class": 7}', "majority_class must be 0 or 1, not 7"),
        ('{"majority_class": 0}', "the experiments' evaluation.json name different train majority classes"),
        ('{"accuracy": 0.5}', None),  # `csxa-train evaluate` writes no majority class: another experiment's is used
    ],
)
def test_compare_refuses_a_hand_edited_evaluation_json(project, capsys, content, message):
    root, _, _ = project
    (root / "results" / "better" / "evaluation.json").write_text(content)
    assert run(root) == (0 if message is None else 2)
    err = capsys.readouterr().err
    assert (message is None or message in err) and "Traceback" not in err


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_an_evaluation_json_that_is_not_a_file_is_refused(project, capsys, kind):
    """Stop-18 leftover: a folder (or a link to nothing) at evaluation.json was passed over as if the
    file were absent, and the experiment's majority class silently taken from another one."""
    root, _, _ = project
    details = root / "results" / "better" / "evaluation.json"
    details.unlink()
    details.mkdir() if kind == "folder" else details.symlink_to(root / "nowhere.json")
    assert run(root) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"csxa-train: error: {details}: is not a file (a folder, or a link to nothing); fit writes "
        "evaluation.json as a file: train better again (dvc repro)"
    ], err
    assert not (root / "out").exists()


def test_a_prediction_without_a_key_is_one_line(project, capsys):
    """Third audit: a blank key beside an unknown one was a TypeError sorting the differences."""
    root, _, _ = project
    path = root / "results" / "better" / "predictions.csv"
    frame = pd.read_csv(path, dtype={"key": str})
    frame.loc[0, "key"], frame.loc[1, "key"] = None, "9999999"
    frame.to_csv(path, index=False)
    assert run(root) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"csxa-train: error: {path}: row 2 has no key (every prediction names its sample)"], err


def test_missing_predictions_name_the_file(project, capsys):
    root, _, _ = project
    (root / "results" / "better" / "predictions.csv").unlink()
    assert run(root) == 2
    assert "better/predictions.csv" in capsys.readouterr().err


def test_the_compare_stage_depends_on_every_experiments_predictions():
    from helpers import REPO

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["compare"]
    experiments = yaml.safe_load((REPO / "params.yaml").read_text())["experiments"]
    deps = {d for d in stage["deps"] if d.endswith("predictions.csv")}
    landmarks = {"landmarks_logreg", "landmarks_gbt"}
    assert deps == {f"results/{name}/predictions.csv" for name in [*experiments, *landmarks]}
    paper = yaml.safe_load((REPO / "params.paper.yaml").read_text())["experiments"]
    assert list(paper) == list(experiments)


def test_readme_shows_the_papers_table_recomputed_and_the_demos_comparison():
    from csxa_train.report.table import paper_markdown

    from helpers import committed_text

    readme = committed_text("docs/comparison.md") + committed_text("docs/results.md")
    paper_rows = [line for line in paper_markdown().splitlines() if line.startswith("| ")]
    assert len(paper_rows) == 8 and all(row in readme for row in paper_rows)  # the header and seven rows
    demo = committed_text("results/compare/table.md")
    demo_rows = [line for line in demo.splitlines() if line.startswith("| ")]
    assert demo_rows and all(row in readme for row in demo_rows), "README's demo table differs from results/compare"
    assert "results/compare/compare.png" in readme


def test_compare_adds_the_landmark_baselines_rows_when_asked(project):
    root, labels, scores = project
    keys = [f"{i:07d}" for i in range(1, len(labels) + 1)]
    for name in ("landmarks_logreg", "landmarks_gbt"):
        write_experiment(root / "results", name, scores["better"][::-1].copy(), labels, keys)
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert run(root) == 0
    table = pd.read_csv(root / "out" / "table.csv")
    assert "landmarks_logreg" not in set(table.experiment)
    params["compare"]["landmarks"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run(root) == 0
    table = pd.read_csv(root / "out" / "table.csv")
    rows = table[table.experiment.isin(["landmarks_logreg", "landmarks_gbt"])]
    assert len(rows) == 2 and set(rows.variant) == {"landmarks"}


# --- cross-validation (compare --cv) -----------------------------------------------------------


def write_oof(cv: Path, name: str, labels: np.ndarray, folds: np.ndarray, scores: np.ndarray) -> None:
    folder = cv / name
    folder.mkdir(parents=True)
    keys = [f"{i:07d}" for i in range(1, len(labels) + 1)]
    pd.DataFrame(
        {
            "key": keys,
            "number": range(1, len(keys) + 1),
            "label": labels,
            "repeat": 0,
            "fold": folds,
            "score": scores,
            "threshold": 0.4,
            "pred": (scores >= 0.5).astype(int),
            "pred_at_threshold": (scores >= 0.4).astype(int),
        }
    ).to_csv(folder / "oof.csv", index=False)


@pytest.fixture
def cv_project(project):
    """Out-of-fold predictions of the three experiments: 100 cases in 4 folds of 25 (5 + 20 each)."""
    root, labels, _ = project
    rng = np.random.default_rng(1)
    folds = np.r_[np.arange(N_NEG) % 4, np.arange(N_POS) % 4]
    scores = {
        "orig": np.clip(0.55 + 0.25 * (labels - 0.5) + rng.normal(0, 0.2, len(labels)), 0, 1),
        "better": np.clip(0.5 + 0.5 * (labels - 0.5) + rng.normal(0, 0.2, len(labels)), 0, 1),
        "always_sick": np.full(len(labels), 0.9),
    }
    for name, s in scores.items():
        write_oof(root / "cv", name, labels, folds, s)
    return root, labels, folds, scores


def test_compare_cv_gives_per_fold_pooled_and_both_ttests(cv_project, capsys):
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    root, labels, folds, scores = cv_project
    assert run(root, "--cv", str(root / "cv")) == 0
    assert "cross-validation of 3 experiments, 4 folds x 1 repeat(s) over 100 train cases" in capsys.readouterr().out
    for name in ("cv_table.md", "cv_table.csv", "cv_folds.csv", "cv.json", "cv.png"):
        assert (root / "out" / name).is_file(), name
    per_fold = pd.read_csv(root / "out" / "cv_folds.csv")
    table = pd.read_csv(root / "out" / "cv_table.csv").set_index("experiment")
    ba = {
        name: np.array(
            [balanced_accuracy_score(labels[folds == k], (s[folds == k] >= 0.5).astype(int)) for k in range(4)]
        )
        for name, s in scores.items()
    }
    better = per_fold[per_fold.experiment == "better"]
    assert better.balanced_accuracy.to_numpy() == pytest.approx(ba["better"])
    assert better.auroc.to_numpy() == pytest.approx(
        [roc_auc_score(labels[folds == k], scores["better"][folds == k]) for k in range(4)]
    )
    assert table.loc["better", "balanced_accuracy_mean"] == pytest.approx(ba["better"].mean())
    assert table.loc["better", "balanced_accuracy_sd"] == pytest.approx(ba["better"].std(ddof=1))
    assert table.loc["better", "auroc_pooled"] == pytest.approx(roc_auc_score(labels, scores["better"]))
    assert (
        table.loc["better", "auroc_pooled_low"]
        < table.loc["better", "auroc_pooled"]
        < table.loc["better", "auroc_pooled_high"]
    )
    # the t-tests on the per-fold differences: 4 folds of 25 cases, n_test / n_train = 25 / 75
    d = ba["better"] - ba["orig"]
    t0 = d.mean() / np.sqrt(d.var(ddof=1) / 4)
    assert table.loc["better", "balanced_accuracy_t_uncorrected"] == pytest.approx(t0)
    assert table.loc["better", "balanced_accuracy_t_corrected"] == pytest.approx(
        d.mean() / np.sqrt((1 / 4 + 25 / 75) * d.var(ddof=1))
    )
    assert table.loc["better", "balanced_accuracy_p_corrected"] > table.loc["better", "balanced_accuracy_p_uncorrected"]
    md = (root / "out" / "cv_table.md").read_text()
    assert "t, uncorrected (paper's)" in md and "p, corrected (Nadeau-Bengio)" in md
    assert "n_test/n_train = 25.0/75.0 = 0.333" in md
    # Table 1 is untouched by --cv
    before = (root / "out" / "table.md").read_bytes()
    assert run(root) == 0 and (root / "out" / "table.md").read_bytes() == before


def test_compare_replaces_both_reports_or_neither(cv_project, capsys):
    """Stop-18 leftover: table.md was renamed into place before the cross-validation files were
    written, so a write failing there left a new table beside an old cv_table. Now every file is
    written first and renamed only when all are (a writer failing part-way: test_fault_injection.py::
    test_files_written_together_are_all_replaced_or_none); a folder in a file's place, which would
    fail a rename after others, is refused before any write, as here."""
    root, _, _, _ = cv_project
    out = root / "out"
    assert run(root, "--cv", str(root / "cv")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("seed: 1", "seed: 2"))
    (out / "cv.png").unlink()
    (out / "cv.png").mkdir()  # the last file cannot be put in place
    (out / "cv.png" / "x").write_text("x")
    capsys.readouterr()
    assert run(root, "--cv", str(root / "cv")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"csxa-train: error: {out / 'cv.png'}: is a folder where this command writes a file; nothing was replaced"
    ]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == {
        name: data for name, data in before.items() if name != "cv.png"
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporary files left
    shutil.rmtree(out / "cv.png")
    assert run(root, "--cv", str(root / "cv")) == 0
    assert (out / "table.md").read_bytes() != before["table.md"]  # a new seed: new intervals in both


def test_an_output_the_system_refuses_is_one_line_not_a_traceback(project, capsys):
    # /proc takes no new folders: a real OSError from the file system, at the first write
    root, _, _ = project
    assert (
        main(
            [
                "compare",
                "--params",
                str(root / "params.yaml"),
                "--results",
                str(root / "results"),
                "--out",
                "/proc/csxa-report",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("csxa-train: error: /proc/csxa-report: "), err


def test_compare_cv_refuses_experiments_on_other_folds(cv_project, capsys):
    root, labels, folds, scores = cv_project
    oof = pd.read_csv(root / "cv" / "better" / "oof.csv", dtype={"key": str})
    oof.loc[0, "fold"] = (oof.loc[0, "fold"] + 1) % 4
    oof.to_csv(root / "cv" / "better" / "oof.csv", index=False)
    assert run(root, "--cv", str(root / "cv")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "better's out-of-fold folds differ from the reference orig's" in err[0]


@pytest.mark.parametrize(
    "column,value",
    [
        ("repeat", "x"),
        ("repeat", ""),
        ("fold", "1.5"),
        ("fold", "-1"),
        ("fold", "True"),
        ("fold", "1e300"),
        ("repeat", "\u0661"),
    ],
)
def test_compare_cv_refuses_a_repeat_or_fold_that_is_not_a_whole_number(cv_project, capsys, column, value):
    """oof.csv is a DVC output a team may pull: a repeat or fold that is not a whole number >= 0 is one
    line naming the file and the column, not a traceback or a fold silently truncated (1.5 -> 1)."""
    root, *_ = cv_project
    path = root / "cv" / "better" / "oof.csv"
    oof = pd.read_csv(path, dtype={"key": str, column: str})
    oof.loc[3, column] = value
    oof.to_csv(path, index=False)
    assert run(root, "--cv", str(root / "cv")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and f"column {column}" in err[0], err


@pytest.mark.parametrize(
    "tamper, says",
    [
        (lambda o: pd.concat([o, o.assign(repeat=1)]), "two repeats split the cases into the same folds"),
        (lambda o: o[o.fold != 1], "a repeat's folds are [0, 2, 3], not 0..k-1"),
        (lambda o: o.assign(fold=o.fold.replace(2, 7)), "a repeat's folds are [0, 1, 3, 7], not 0..k-1"),
        (lambda o: o.assign(fold=0), "a repeat's folds are [0], not 0..k-1 with k at least 2"),
        (lambda o: o.assign(repeat=1), "the repeats are [1], not 0..0"),
        # fourth audit: a fold without an asymptomatic case gave specificity 0, averaged in, and fed
        # sensitivity as balanced accuracy into the t-tests
        (
            lambda o: o.assign(fold=np.where((o.label == 0) & (o.fold == 2), 3, o.fold)),
            "fold 2 of repeat 0 holds no asymptomatic (0) case, so its specificity, balanced accuracy and AUROC "
            "are undefined",
        ),
    ],
)
def test_compare_cv_refuses_folds_or_repeats_that_are_not_a_cross_validations(cv_project, capsys, tamper, says):
    """Third audit: a repeat copied as another doubled the differences the t-tests count (p from
    0.007 to 2.5e-05); a missing or renumbered fold was counted and described wrongly; one fold
    was a ZeroDivisionError. Every experiment's oof.csv tampered alike, so they agree."""
    root, *_ = cv_project
    for name in ("orig", "better", "always_sick"):
        path = root / "cv" / name / "oof.csv"
        tamper(pd.read_csv(path, dtype={"key": str})).to_csv(path, index=False)
    assert run(root, "--cv", str(root / "cv")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(root / "cv" / "orig" / "oof.csv") in err[0] and says in err[0], err


def test_compare_with_cv_writes_nothing_when_an_oof_file_is_missing(cv_project, capsys):
    """Third audit: table.md and its siblings were replaced before a missing oof.csv stopped the
    run, so table.md and cv_table.md named different references."""
    root, *_ = cv_project
    (root / "cv" / "better" / "oof.csv").unlink()
    assert not (root / "out").exists()
    assert run(root, "--cv", str(root / "cv")) == 2
    assert "better/oof.csv: out-of-fold predictions not found" in capsys.readouterr().err
    assert not (root / "out").exists()


def test_the_compare_stage_reads_every_experiments_cross_validation():
    from helpers import REPO

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    experiments = yaml.safe_load((REPO / "params.yaml").read_text())["experiments"]
    deps = {d for d in stages["compare"]["deps"] if d.endswith("oof.csv")}
    assert deps == {f"results/cv/{name}/oof.csv" for name in [*experiments, "landmarks_logreg", "landmarks_gbt"]}
    assert "--cv results/cv" in stages["compare"]["cmd"]


def test_the_readme_blocks_are_refreshed_from_the_reports(tmp_path):
    from csxa_data.errors import CsxaError
    from tools.readme_blocks import refresh_block

    (tmp_path / "table.md").write_text(
        "# Title\n\nText.\n\n## Part\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Tail\n\nnot shown\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- t: begin -->\nstale\n<!-- t: end -->\nafter\n")
    refresh_block(readme, "t", tmp_path / "table.md", stop_at="## Tail")
    assert readme.read_text() == (
        "before\n<!-- t: begin -->\nText.\n\n#### Part\n\n| a | b |\n|---|---|\n| 1 | 2 |\n<!-- t: end -->\nafter\n"
    )
    with pytest.raises(CsxaError, match="report not found"):
        refresh_block(readme, "t", tmp_path / "missing.md")
    readme.write_text("no block\n")
    with pytest.raises(CsxaError, match="no <!-- t: begin -->"):
        refresh_block(readme, "t", tmp_path / "table.md")


def test_readme_blocks_refuse_what_would_wipe_or_leave_stale_tables(tmp_path):
    """Third audit: a report holding only its title wiped the README's table, a second copy of a
    block stayed stale, markers out of order or a README that is not UTF-8 were tracebacks, and a
    failure at the second block left the first rewritten."""
    from csxa_data.errors import CsxaError
    from tools.readme_blocks import refresh_blocks

    good, bare = tmp_path / "good.md", tmp_path / "bare.md"
    good.write_text("# T\n\n| a |\n|---|\n| 1 |\n")
    bare.write_text("# T\n")
    readme = tmp_path / "README.md"
    two = "<!-- a: begin -->\nold a\n<!-- a: end -->\n<!-- b: begin -->\nold b\n<!-- b: end -->\n"
    cases = [
        (two, {"a": (bare, None)}, "bare.md: holds no table for the README's a block"),
        (
            two + "<!-- a: begin -->\nstale\n<!-- a: end -->\n",
            {"a": (good, None)},
            "must each occur once, in that order (found 2 and 2)",
        ),
        ("<!-- a: end -->\n<!-- a: begin -->\n", {"a": (good, None)}, "(found 1 and 1)"),
        (two, {"a": (good, None), "b": (tmp_path / "missing.md", None)}, "missing.md: report not found"),
    ]
    for text, blocks, says in cases:
        readme.write_text(text)
        with pytest.raises(CsxaError, match=re.escape(says)):
            refresh_blocks(readme, blocks)
        assert readme.read_text() == text  # all or nothing
    readme.write_bytes(b"\xff\xfe")
    with pytest.raises(CsxaError, match="README is not UTF-8 text"):
        refresh_blocks(readme, {"a": (good, None)})
    with pytest.raises(CsxaError, match="README not found"):
        refresh_blocks(tmp_path / "none.md", {"a": (good, None)})


def test_the_readme_holds_every_block_current():
    from tools.readme_blocks import BLOCKS, readme_block

    from helpers import committed_text

    readme = committed_text("docs/results.md")
    for name, (report, stop_at) in BLOCKS.items():
        block = readme_block(committed_text(report), stop_at)
        assert f"<!-- {name}: begin -->\n{block}<!-- {name}: end -->" in readme, (
            f"README block {name} is stale: python tools/readme_blocks.py"
        )


def test_compare_out_that_is_a_file_is_one_line_before_any_work(project, capsys):
    root, _, _ = project
    (root / "out").write_text("a file")
    assert run(root) == 2
    err = capsys.readouterr().err
    assert f"{root / 'out'}: exists and is not a folder" in err and "Traceback" not in err


def test_the_bootstrap_works_in_bounded_blocks_with_the_same_numbers(monkeypatch):
    """Third audit: the bootstrap held every resample x case at once (5.0 GB for 40,000 predictions);
    it works through blocks of rows now, to the same numbers, and refuses an index matrix that
    could not fit."""
    from csxa_data.errors import CsxaError
    from csxa_train import stats
    from csxa_train.report import table as C

    rng = np.random.default_rng(3)
    labels = (rng.random(300) < 0.8).astype(int)
    scores = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.2, 300), 0, 1)
    index = stats.stratified_bootstrap_indices(labels, 500, 7)
    whole = C.bootstrap_metrics(labels, (scores >= 0.5).astype(int), scores, index)
    monkeypatch.setattr(C, "CHUNK_CELLS", 1000)  # 3 rows a block
    assert len(list(C.row_chunks(index))) == 167
    blocks = C.bootstrap_metrics(labels, (scores >= 0.5).astype(int), scores, index)
    for key, values in whole.items():
        np.testing.assert_array_equal(values, blocks[key], err_msg=key)
    np.testing.assert_array_equal(C.bootstrap_auroc(labels, scores, index), whole["auroc"])
    with pytest.raises(CsxaError, match="2,000,000 predictions x 2,000 resamples is over the 200,000,000"):
        C.check_bootstrap_size(2_000_000, 2000, "x")
