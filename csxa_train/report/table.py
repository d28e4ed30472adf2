"""The Table-1 report: every experiment's test predictions side by side, with intervals, the
majority-class baseline and paired tests against a reference experiment.

Inputs: ``results/EXPERIMENT/predictions.csv`` of each experiment (the same test cases in each)
and, for the baseline's class, the train split's majority class from ``evaluation.json``.
Outputs in OUT: ``table.md`` (for people), ``table.csv`` (every number), ``compare.json`` (a few
numbers per experiment, for ``dvc metrics``) and ``compare.png``.

- Intervals (95% by default): Wilson for the proportions (accuracy, precision, recall,
  specificity); a seeded bootstrap over test cases, stratified by class, for balanced accuracy,
  F1, AUROC and the Brier score.
- Against the reference: the seed paper's pooled two-proportion z-test on accuracy (one-sided,
  "greater", as the paper reports it, and two-sided), the exact McNemar test on the paired
  per-case predictions, and a paired bootstrap interval of the AUROC difference (the same
  resamples for both). Holm's correction is applied across the comparisons, separately to the
  two-sided z-test and to the McNemar p-values.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.csvtext import read_csv_file
from csxa_data.errors import CsxaError
from csxa_data.params import dataclass_from_section, require
from csxa_train import stats
from csxa_train.figures import comparison_figure
from csxa_train.landmark_baseline import EXPERIMENTS, MODEL_NAMES
from csxa_train.metrics import check_labels_and_scores, classification_metrics
from csxa_train.report.cells import is_missing, number_cell, p_cell, percent_cell

OPERATING_POINTS = ("0.5", "chosen")

# The seed paper's Table 1 (Reddy et al.), n = 1,241 test films; p-values as printed.
PAPER_N = 1241
PAPER_TABLE_1 = (
    # enhancement, model, accuracy, precision, F1 (%), p as printed
    ("Original", "ResNet50", 94.19, 93.08, 93.62, None),
    ("Original", "VGG19", 92.74, 92.89, 92.81, None),
    ("Cropped", "ResNet50", 95.48, 92.54, 93.99, 0.0732),
    ("Wide Cropped", "ResNet50", 95.73, 93.09, 94.24, 0.0406),
    ("Colored", "ResNet50", 95.73, 92.55, 94.11, 0.0406),
    ("Colored, Cropped", "ResNet50", 94.76, 92.77, 93.73, 0.269),
    ("Colored, Wide Cropped", "ResNet50", 94.92, 92.52, 93.70, 0.213),
)


@dataclass(frozen=True)
class CompareParams:
    """The ``compare`` section of params.yaml."""

    reference: str | None = None  # an experiment name; null: the first experiment on the `original` variant
    operating_point: str | float = "0.5"  # 0.5 (the paper's) | chosen (each experiment's validation threshold)
    resamples: int = 2000  # bootstrap resamples of the test cases
    seed: int = 2024
    confidence: float = 0.95
    landmarks: bool = False  # add the landmark-measurement baseline's rows (landmark_baseline stage)

    @classmethod
    def from_dict(cls, data: dict | None) -> CompareParams:

        config = dataclass_from_section(cls, data or {}, "compare")
        if not isinstance(config.operating_point, str):  # 0.5 written without quotes
            config = replace(config, operating_point=f"{config.operating_point:g}")
        require(
            str(config.operating_point) in OPERATING_POINTS,
            f"compare.operating_point must be one of {list(OPERATING_POINTS)}, not {config.operating_point!r}",
        )
        require(100 <= config.resamples <= 100000, "compare.resamples must be within 100..100000")
        require(0.5 < config.confidence < 1, "compare.confidence must be within (0.5, 1)")
        require(0 <= config.seed < 2**32, f"compare.seed must be within 0..2**32-1, not {config.seed}")
        return config


@dataclass
class Experiment:
    name: str
    variant: str
    model: str
    frame: pd.DataFrame  # key, label, score, pred (at the operating point), in the reference's key order
    majority_class: int | None
    other: np.ndarray | None = None  # predictions at the other operating point (0.5 or the chosen threshold)
    threshold: float | None = None  # the chosen threshold, from evaluation.json
    chosen_on: dict | None = None  # its validation part's cases by class ("0", "1")


def paper_table_recomputed() -> pd.DataFrame:
    """The paper's Table 1 beside its p-values recomputed by the pooled two-proportion z-test
    (accuracies as counts out of 1,241 against Original ResNet50's), one-sided and two-sided."""
    ref_k = round(PAPER_TABLE_1[0][2] / 100 * PAPER_N)
    rows = []
    for enhancement, model, accuracy, precision, f1, p in PAPER_TABLE_1:
        k = round(accuracy / 100 * PAPER_N)
        reference = (enhancement, model) == PAPER_TABLE_1[0][:2]
        one = two = z = None
        if not reference:
            z, one = stats.two_proportion_ztest(k, PAPER_N, ref_k, PAPER_N, alternative="greater")
            two = stats.two_proportion_ztest(k, PAPER_N, ref_k, PAPER_N, alternative="two-sided")[1]
        rows.append(
            {
                "enhancement": enhancement,
                "model": model,
                "accuracy": accuracy,
                "precision": precision,
                "f1": f1,
                "correct": k,
                "p_paper": p,
                "z": z,
                "p_one_sided": one,
                "p_two_sided": two,
            }
        )
    return pd.DataFrame(rows)


def default_reference(experiments: dict) -> str:
    """The paper's reference: the first experiment on the ``original`` variant (else the first)."""
    for name, spec in experiments.items():
        if (spec or {}).get("variant") == "original":
            return name
    return next(iter(experiments))


def read_scored_csv(
    path: Path,
    operating_point: str,
    *,
    columns: tuple[str, ...] = (),
    unique: tuple[str, ...],
    not_found: str,
    twice: str,
) -> pd.DataFrame:
    """A predictions table (a test split's or out-of-fold), checked: present, readable, with key,
    label, ``columns``, score and the operating point's prediction column, no two rows alike in
    ``unique``; returns it with ``label``, ``score`` and ``pred`` (the operating point's) as checked
    0/1 labels and predictions and scores in [0, 1]."""
    frame = read_csv_file(path, not_found, dtype={"key": str})
    column = "pred" if operating_point == "0.5" else "pred_at_threshold"
    missing = [c for c in ("key", "label", *columns, "score", column) if c not in frame.columns]
    if missing:
        raise CsxaError(f"missing column(s) {missing}", path=path)
    blank = frame.key.isna() | (frame.key.astype(str).str.strip() == "")
    if blank.any():
        raise CsxaError(
            f"row {int(blank.to_numpy().argmax()) + 2} has no key (every prediction names its sample)", path=path
        )
    if frame.duplicated(list(unique)).any():
        raise CsxaError(f"{twice}: {frame.key[frame.duplicated(list(unique))].tolist()[:5]}", path=path)
    try:
        labels, scores = check_labels_and_scores(
            pd.to_numeric(frame.label, errors="coerce").to_numpy(),
            pd.to_numeric(frame.score, errors="coerce").to_numpy(),
            where=str(path),
        )
        preds, _ = check_labels_and_scores(
            pd.to_numeric(frame[column], errors="coerce").to_numpy(), where=f"{path} column {column}"
        )
    except CsxaError as exc:
        raise CsxaError(str(exc)) from None
    _check_predictions_follow_scores(
        frame.assign(score=scores, pred=preds), column, [c for c in columns if c != "key"], path
    )
    return frame.assign(label=labels, score=scores, pred=preds)


def _check_predictions_follow_scores(frame: pd.DataFrame, column: str, groups: list[str], path: Path) -> None:
    """``pred`` must be ``score >= 0.5``; ``pred_at_threshold`` one threshold on the score (per fold
    of ``groups``): a hand-edited prediction column would change every count the table reports. Scores
    are written to 8 decimals, so a score that rounds onto the threshold may fall either side."""
    rounding = 1e-8
    if column == "pred":
        scores = frame.score.to_numpy()
        wrong = (frame.pred.to_numpy() != (scores >= 0.5)) & (np.abs(scores - 0.5) > rounding)
        if wrong.any():
            raise CsxaError(
                f"column pred disagrees with score >= 0.5 in {int(wrong.sum())} row(s) (first: key "
                f"{frame.key[wrong].iloc[0]!r})",
                path=path,
            )
        return
    for _, part in frame.groupby(groups) if groups else [(None, frame)]:
        positive, negative = part.score[part.pred == 1], part.score[part.pred == 0]
        if len(positive) and len(negative) and positive.min() < negative.max() - rounding:
            raise CsxaError(
                f"column {column} is not one threshold on the score: a case scored {negative.max():.4g} "
                f"is predicted 0 and one scored {positive.min():.4g} is predicted 1",
                path=path,
            )


def read_predictions(path: Path, operating_point: str) -> pd.DataFrame:
    """One experiment's predictions, checked: columns, unique keys, 0/1 labels, scores in [0, 1]."""
    frame = read_scored_csv(
        path,
        operating_point,
        unique=("key",),
        twice="case(s) listed twice",
        not_found="predictions not found (has the experiment been trained? dvc repro)",
    )
    return frame[["key", "label", "score", "pred"]]


def align(reference: pd.DataFrame, other: pd.DataFrame, name: str, reference_name: str) -> pd.DataFrame:
    """``other`` in the reference's case order; different cases or labels are refused, named."""
    ref_keys, keys = set(reference.key), set(other.key)
    if ref_keys != keys:
        only_other, only_ref = sorted(keys - ref_keys, key=str), sorted(ref_keys - keys, key=str)
        raise CsxaError(
            f"{name}'s test cases differ from the reference {reference_name}'s: "
            f"{len(only_other)} only in {name} {only_other[:5]}, "
            f"{len(only_ref)} only in {reference_name} {only_ref[:5]}; paired tests need the same cases"
        )
    other = other.set_index("key").loc[reference.key].reset_index()
    differ = other.label.to_numpy() != reference.label.to_numpy()
    if differ.any():
        raise CsxaError(
            f"{name} and {reference_name} disagree on the class of case(s) {reference.key[differ].tolist()[:5]}"
        )
    return other


def with_landmark_baselines(experiments: dict) -> dict:
    """The experiments plus the landmark-measurement baseline's, which compare reads like any other."""

    return {
        **experiments,
        **{name: {"variant": "landmarks", "model": MODEL_NAMES[kind]} for name, kind in EXPERIMENTS.items()},
    }


def reference_first(experiments: dict, config: CompareParams) -> tuple[str, list[str]]:
    """The reference's name (``compare.reference``, or the paper's) and every experiment's, reference first."""
    if not experiments:
        raise CsxaError("no experiments to compare (params.yaml experiments:)")
    reference = config.reference or default_reference(experiments)
    if reference not in experiments:
        raise CsxaError(
            f"compare.reference {reference!r} is not an experiment; known: {sorted(experiments)}", path="params.yaml"
        )
    return reference, [reference] + [n for n in experiments if n != reference]


def load_experiments(
    results: Path, experiments: dict, train_model: str, config: CompareParams
) -> tuple[list[Experiment], str]:
    """Every experiment's predictions aligned to the reference's cases; returns them (reference first)
    and the reference's name."""
    reference, names = reference_first(experiments, config)
    frames = {n: read_predictions(results / n / "predictions.csv", str(config.operating_point)) for n in names}
    other_point = "chosen" if str(config.operating_point) == "0.5" else "0.5"
    loaded = []
    for name in names:
        frame = frames[name] if name == reference else align(frames[reference], frames[name], name, reference)
        other = _other_predictions(results / name / "predictions.csv", other_point, frame)
        spec = experiments[name] or {}
        majority, threshold, chosen_on = None, None, None
        details = results / name / "evaluation.json"
        if os.path.lexists(details) and not details.is_file():
            raise CsxaError(
                "is not a file (a folder, or a link to nothing); fit writes evaluation.json as a file: "
                f"train {name} again (dvc repro)",
                path=details,
            )
        if details.is_file():
            try:
                evaluation = json.loads(details.read_text())
            except (ValueError, RecursionError):
                raise CsxaError("not valid JSON", path=details) from None
            if not isinstance(evaluation, dict):
                raise CsxaError(f"is a JSON {type(evaluation).__name__}, not an object", path=details)
            said = evaluation.get("experiment")
            if isinstance(said, str) and said != name:
                raise CsxaError(
                    f"holds the results of experiment {said!r}, not {name!r}: a copied or linked "
                    f"results folder, or a fit written there under another name? Train {name} into "
                    f"its own folder (dvc repro)",
                    path=details,
                )
            majority = evaluation.get("majority_class")
            if majority is not None and (majority not in (0, 1) or isinstance(majority, bool)):
                raise CsxaError(f"majority_class must be 0 or 1, not {str(majority)[:40]}", path=details)
            threshold, chosen_on = _chosen_threshold(evaluation)
        loaded.append(
            Experiment(
                name,
                str(spec.get("variant", "?")),
                str(spec.get("model", train_model)),
                frame,
                majority,
                other,
                threshold,
                chosen_on,
            )
        )
    return loaded, reference


def _other_predictions(path: Path, operating_point: str, aligned: pd.DataFrame) -> np.ndarray | None:
    """The predictions at the other operating point, in ``aligned``'s key order; None where the file
    has no such column (results written before it existed)."""
    column = "pred" if operating_point == "0.5" else "pred_at_threshold"
    if column not in read_csv_file(path, "predictions not found", dtype={"key": str}).columns:
        return None  # written before the column existed: the section leaves this experiment out
    frame = read_predictions(path, operating_point)
    by_key = frame.set_index("key").pred
    return by_key.reindex(aligned.key).to_numpy() if set(aligned.key) <= set(by_key.index) else None


def _chosen_threshold(evaluation: dict) -> tuple[float | None, dict | None]:
    """The chosen threshold and the validation cases by class it was chosen on, where stated."""
    threshold = evaluation.get("threshold")
    by_class = evaluation.get("validation_by_class")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        threshold = None
    if not isinstance(by_class, dict) or not all(isinstance(v, int) for v in by_class.values()):
        by_class = None
    return threshold, by_class


def _ratio(a, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.maximum(b, 1), 0.0)


# a resample matrix is worked through this many (resample, case) cells at a time, so that the
# temporaries stay a few tens of MB whatever the test set's size
CHUNK_CELLS = 2_000_000
# resamples x cases above this would hold gigabytes of indices: refused (the real test split, 1,241 cases
# x 2,000 resamples, is 2.5 million)
MAX_BOOTSTRAP_CELLS = 200_000_000


def check_bootstrap_size(cases: int, resamples: int, where) -> None:
    """Refuse a bootstrap whose index matrix would not fit in bounded memory."""
    if cases * resamples > MAX_BOOTSTRAP_CELLS:
        raise CsxaError(
            f"{cases:,} predictions x {resamples:,} resamples is over the {MAX_BOOTSTRAP_CELLS:,} "
            "cells a bootstrap may hold; lower compare.resamples",
            path=where,
        )


def row_chunks(index: np.ndarray):
    """Consecutive blocks of rows of ``index`` of about ``CHUNK_CELLS`` cells each."""
    step = max(1, CHUNK_CELLS // max(index.shape[1], 1))
    for start in range(0, len(index), step):
        yield index[start : start + step]


def bootstrap_auroc(labels: np.ndarray, scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The AUROC of every resample (rows of ``index``), a block of rows at a time."""
    parts = [stats.auroc_rows(labels[block].astype(bool), scores[block]) for block in row_chunks(index)]
    return np.concatenate(parts) if parts else np.zeros(0)


def bootstrap_metrics(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray, index: np.ndarray) -> dict:
    """Balanced accuracy, F1, AUROC, Brier, sensitivity, specificity and accuracy of every resample
    (rows of ``index``), a block of rows at a time."""
    parts = [_bootstrap_block(labels, preds, scores, block) for block in row_chunks(index)]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} if parts else {}


def _bootstrap_block(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray, index: np.ndarray) -> dict:
    y, p, s = labels[index].astype(bool), preds[index].astype(bool), scores[index]
    tp, fp = (y & p).sum(1), (~y & p).sum(1)
    fn, tn = (y & ~p).sum(1), (~y & ~p).sum(1)
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    present = ((tp + fn) > 0).astype(int) + ((tn + fp) > 0).astype(int)
    balanced = (sens * ((tp + fn) > 0) + spec * ((tn + fp) > 0)) / np.maximum(present, 1)
    return {
        "balanced_accuracy": balanced,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auroc": stats.auroc_rows(y, s),
        "brier": ((s - y) ** 2).mean(1),
        "sensitivity": sens,
        "specificity": spec,
        "accuracy": (tp + tn) / np.maximum(tp + tn + fp + fn, 1),
    }


def experiment_row(name: str, variant: str, model: str, labels, preds, scores, index, confidence) -> dict:
    """Point estimates (scikit-learn) and intervals (Wilson; stratified bootstrap) of one row."""
    m = classification_metrics(labels, preds, scores)
    c = m["confusion"]
    n = m["n"]
    row = {"experiment": name, "variant": variant, "model": model, "n": n, **c}
    wilson = {
        "accuracy": (c["tp"] + c["tn"], n),
        "precision": (c["tp"], c["tp"] + c["fp"]),
        "sensitivity": (c["tp"], c["tp"] + c["fn"]),
        "specificity": (c["tn"], c["tn"] + c["fp"]),
    }
    for key, (k, total) in wilson.items():
        row[key] = m[key] if total else None
        row[f"{key}_low"], row[f"{key}_high"] = stats.wilson_interval(k, total, confidence)
    boot = bootstrap_metrics(labels, preds, scores, index)
    for key in ("balanced_accuracy", "f1", "auroc", "brier"):
        row[key] = m[key]
        row[f"{key}_low"], row[f"{key}_high"] = stats.bootstrap_interval(boot[key], confidence)
    return row


def compare(experiments: list[Experiment], reference: str, config: CompareParams) -> tuple[pd.DataFrame, dict]:
    """The table (one row per experiment, then the baseline) and the run's facts."""
    ref = experiments[0]
    labels = ref.frame.label.to_numpy()
    check_bootstrap_size(len(labels), config.resamples, f"{ref.name}'s predictions")
    index = stats.stratified_bootstrap_indices(labels, config.resamples, config.seed)
    named = {e.majority_class for e in experiments if e.majority_class is not None}
    if len(named) > 1:
        raise CsxaError(
            "the experiments' evaluation.json name different train majority classes "
            f"({', '.join(f'{e.name}: {e.majority_class}' for e in experiments)}); one train split has one"
        )
    majority = next(iter(named), None)
    majority_source = "the train split's majority class"
    if majority is None:
        majority, majority_source = int(np.bincount(labels, minlength=2).argmax()), "the test split's majority class"
    rows, ref_correct = [], ref.frame.pred.to_numpy() == labels
    ref_boot_auc = bootstrap_auroc(labels, ref.frame.score.to_numpy(), index)
    for e in experiments:
        preds, scores = e.frame.pred.to_numpy(), e.frame.score.to_numpy()
        row = experiment_row(e.name, e.variant, e.model, labels, preds, scores, index, config.confidence)
        row["reference"] = e.name == reference
        if e.name != reference:
            correct = preds == labels
            k, k_ref, n = int(correct.sum()), int(ref_correct.sum()), len(labels)
            row["z"], row["p_one_sided"] = stats.two_proportion_ztest(k, n, k_ref, n, alternative="greater")
            row["p_two_sided"] = stats.two_proportion_ztest(k, n, k_ref, n, alternative="two-sided")[1]
            mc = stats.mcnemar_exact(ref_correct, correct)
            row["mcnemar_only_reference_correct"] = mc["only_reference_correct"]
            row["mcnemar_only_this_correct"] = mc["only_other_correct"]
            row["mcnemar_p"] = mc["p"]
            if row["auroc"] is not None and rows[0]["auroc"] is not None:
                diff = bootstrap_auroc(labels, scores, index) - ref_boot_auc
                row["auroc_difference"] = row["auroc"] - rows[0]["auroc"]
                row["auroc_difference_low"], row["auroc_difference_high"] = stats.bootstrap_interval(
                    diff, config.confidence
                )
        rows.append(row)
    constant = np.full_like(labels, majority)
    baseline = experiment_row(
        f"majority baseline (always class {majority})",
        "-",
        "-",
        labels,
        constant,
        constant.astype(float),
        index,
        config.confidence,
    )
    baseline["reference"] = False
    other_rows = [_other_point_row(e, labels, index, config.confidence) for e in experiments if e.other is not None]
    table = pd.DataFrame(rows + [baseline])
    compared = table.index[table.p_two_sided.notna()] if "p_two_sided" in table else []
    for column in ("p_two_sided", "mcnemar_p"):
        if column in table and len(compared):
            table.loc[compared, f"{column}_holm"] = stats.holm(table.loc[compared, column].to_numpy())
    table["beats_baseline"] = pd.Series(
        [bool(a > baseline["accuracy"]) for a in table.accuracy[:-1]] + [None], dtype=object
    )
    facts = {
        "reference": reference,
        "operating_point": str(config.operating_point),
        "n": int(len(labels)),
        "test_by_class": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))},
        "majority_class": int(majority),
        "majority_source": majority_source,
        "resamples": config.resamples,
        "seed": config.seed,
        "confidence": config.confidence,
        "comparisons": int(len(compared)),
        "other_point": other_rows,
    }
    return table, facts


def _other_point_row(e: Experiment, labels: np.ndarray, index: np.ndarray, confidence: float) -> dict:
    """Sensitivity, specificity and balanced accuracy (with intervals) at the other operating point."""
    scores = e.frame.score.to_numpy()
    row = experiment_row(e.name, e.variant, e.model, labels, e.other.astype(int), scores, index, confidence)
    keep = ("sensitivity", "specificity", "balanced_accuracy")
    out = {"experiment": e.name, "threshold": e.threshold, "chosen_on": e.chosen_on}
    for key in keep:
        out[key], out[f"{key}_low"], out[f"{key}_high"] = row[key], row[f"{key}_low"], row[f"{key}_high"]
    return out


# --- report ------------------------------------------------------------------------------------


def markdown(table: pd.DataFrame, facts: dict) -> str:
    """table.md: the comparison, the tests against the reference, and the paper's Table 1."""
    g = lambda row, key: None if key not in row or is_missing(row[key]) else row[key]  # noqa: E731
    counts = facts["test_by_class"]
    level = round(100 * facts["confidence"])
    lines = [
        "# Comparison of experiments (Table 1)",
        "",
        f"Test split: {facts['n']} cases ({counts.get('0', 0)} asymptomatic, {counts.get('1', 0)} spondylosis). "
        f"Predictions at {'threshold 0.5 (the paper’s)' if facts['operating_point'] == '0.5' else 'each experiment’s validation-chosen threshold'}. "
        f"Brackets: {level}% intervals (Wilson for accuracy, precision, recall and specificity; a stratified "
        f"bootstrap over test cases, {facts['resamples']} resamples, seed {facts['seed']}, for balanced accuracy, "
        f"F1, AUROC and Brier). † : accuracy not above the majority baseline's (always class "
        f"{facts['majority_class']}, {facts['majority_source']}).",
        "",
        "| Experiment | Variant | Model | Accuracy (%) | Precision (%) | Recall = sensitivity (%) | F1 (%) "
        "| Specificity (%) | Balanced accuracy (%) | AUROC | Brier |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        name = row.experiment + (" (reference)" if row.reference is True else "")
        name += " †" if row.beats_baseline is False else ""
        lines.append(
            " | ".join(
                [
                    f"| {name}",
                    row.variant,
                    row.model,
                    percent_cell(g(row, "accuracy"), g(row, "accuracy_low"), g(row, "accuracy_high")),
                    percent_cell(g(row, "precision"), g(row, "precision_low"), g(row, "precision_high")),
                    percent_cell(g(row, "sensitivity"), g(row, "sensitivity_low"), g(row, "sensitivity_high")),
                    percent_cell(g(row, "f1"), g(row, "f1_low"), g(row, "f1_high")),
                    percent_cell(g(row, "specificity"), g(row, "specificity_low"), g(row, "specificity_high")),
                    percent_cell(
                        g(row, "balanced_accuracy"), g(row, "balanced_accuracy_low"), g(row, "balanced_accuracy_high")
                    ),
                    number_cell(g(row, "auroc"), g(row, "auroc_low"), g(row, "auroc_high")),
                    number_cell(g(row, "brier"), g(row, "brier_low"), g(row, "brier_high")) + " |",
                ]
            )
        )
    lines += _other_point_markdown(facts)
    lines += [
        "",
        f"## Against the reference ({facts['reference']})",
        "",
        f"Each experiment against the reference on the same {facts['n']} test cases. z-test: the paper's pooled "
        "two-proportion z-test on accuracy (it treats the two accuracies as independent, which they are not); "
        "one-sided p tests 'this experiment is more accurate than the reference' (as the paper reports it), "
        "two-sided p tests any difference. McNemar: exact test on the cases where exactly one of the two is right "
        "(b = only the reference right, c = only this one right). ΔAUROC: this minus the reference, with a "
        f"paired bootstrap {level}% interval. Holm: Holm's correction across the "
        f"{facts['comparisons']} comparisons, applied separately to the two-sided z-test and to McNemar.",
        "",
        "| Experiment | z | p one-sided (greater) | p two-sided | p two-sided, Holm | McNemar b / c | McNemar p "
        "| McNemar p, Holm | ΔAUROC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        if is_missing(g(row, "p_two_sided")):
            continue
        lines.append(
            f"| {row.experiment} | {row.z:.2f} | {p_cell(row.p_one_sided)} | {p_cell(row.p_two_sided)} | "
            f"{p_cell(g(row, 'p_two_sided_holm'))} | {int(row.mcnemar_only_reference_correct)} / "
            f"{int(row.mcnemar_only_this_correct)} | {p_cell(row.mcnemar_p)} | {p_cell(g(row, 'mcnemar_p_holm'))} | "
            f"{number_cell(g(row, 'auroc_difference'), g(row, 'auroc_difference_low'), g(row, 'auroc_difference_high'))} |"
        )
    lines += ["", paper_markdown()]
    return "\n".join(lines) + "\n"


def _other_point_markdown(facts: dict) -> list[str]:
    """The section at the operating point the main table does not use: each experiment's chosen
    threshold (and the validation cases of each class that chose it), or 0.5."""
    rows = facts.get("other_point") or []
    if not rows:
        return []
    at_chosen = facts["operating_point"] == "0.5"
    lines = [
        "",
        "## At each experiment's chosen threshold" if at_chosen else "## At threshold 0.5 (the paper's)",
        "",
        (
            "The threshold each experiment chose by its rule (train.threshold) on its validation part, cases "
            "held out of training and SMOTE, named by class; then the test cases at that threshold. A threshold "
            "chosen on few asymptomatic cases is itself uncertain: read it with its counts."
            if at_chosen
            else "The same predictions at the paper's threshold 0.5, beside each experiment's chosen one above."
        ),
        "",
        "| Experiment | Threshold | Chosen on (asymptomatic / spondylosis) | Sensitivity (%) | Specificity (%) "
        "| Balanced accuracy (%) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        on = row["chosen_on"]
        counts = f"{on.get('0', 0)} / {on.get('1', 0)}" if on and at_chosen else "-"
        threshold = "-" if row["threshold"] is None else f"{row['threshold']:.3f}"
        cells = [
            percent_cell(row[key], row[f"{key}_low"], row[f"{key}_high"])
            for key in ("sensitivity", "specificity", "balanced_accuracy")
        ]
        lines.append(
            f"| {row['experiment']} | {threshold if at_chosen else '0.5'} | {counts} | " + " | ".join(cells) + " |"
        )
    return lines


def paper_markdown() -> str:
    """The paper's Table 1 beside its p-values recomputed, one- and two-sided."""
    paper = paper_table_recomputed()
    lines = [
        "## The seed paper's Table 1, recomputed",
        "",
        f"As printed (n = {PAPER_N:,} test films), with each p-value recomputed by the pooled two-proportion "
        "z-test of the accuracy (correct counts rounded from the percentages) against Original ResNet50's "
        "94.19%: the paper's p-values are the one-sided ones (alternative 'greater'); the two-sided ones, "
        "which test for any difference, are twice as large and none is below 0.05. The caption's 'paired "
        "t-test across folds' does not reproduce them; the z-test in the text does. Always answering "
        "'spondylosis' would score about 96.3% on that test split, above every accuracy in the table.",
        "",
        "| Image enhancement | Model | Accuracy (%) | Precision (%) | F1 (%) | p (paper) | p one-sided, recomputed "
        "| p two-sided, recomputed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in paper.itertuples():
        lines.append(
            f"| {row.enhancement} | {row.model} | {row.accuracy:.2f} | {row.precision:.2f} | {row.f1:.2f} | "
            f"{'n/a' if is_missing(row.p_paper) else row.p_paper} | "
            f"{'n/a' if is_missing(row.p_one_sided) else f'{row.p_one_sided:.4f}'} | "
            f"{'n/a' if is_missing(row.p_two_sided) else f'{row.p_two_sided:.4f}'} |"
        )
    return "\n".join(lines) + "\n"


def metrics_json(table: pd.DataFrame, facts: dict) -> dict:
    """compare.json: few numbers per experiment, for ``dvc metrics show`` and ``dvc exp show``."""
    out = {
        "reference": facts["reference"],
        "n": facts["n"],
        "baseline_accuracy": float(table.iloc[-1].accuracy),
        "experiments": {},
    }
    for _, row in table.iloc[:-1].iterrows():
        entry = {
            "accuracy": round(float(row.accuracy), 6),
            "balanced_accuracy": round(float(row.balanced_accuracy), 6),
            "auroc": None if is_missing(row.auroc) else round(float(row.auroc), 6),
            "beats_baseline": bool(row.beats_baseline),
        }
        if not is_missing(row.get("mcnemar_p_holm")):
            entry["mcnemar_p_holm"] = round(float(row.mcnemar_p_holm), 6)
        out["experiments"][row.experiment] = entry
    return out


def report_files(table: pd.DataFrame, facts: dict) -> dict:
    """The report's files, name -> a function writing it to a path: table.md, table.csv,
    compare.json and compare.png (for ``csxa_data.atomic.write_files_atomic``)."""

    return {
        "table.md": lambda path: path.write_text(markdown(table, facts)),
        "table.csv": lambda path: table.to_csv(path, index=False, float_format="%.8g"),
        "compare.json": lambda path: path.write_text(json.dumps(metrics_json(table, facts), indent=2) + "\n"),
        "compare.png": lambda path: comparison_figure(table, facts, path),
    }


def compare_results(
    results: str | Path, experiments: dict, train_model: str, config: CompareParams
) -> tuple[pd.DataFrame, dict]:
    """Read and compare every experiment's test predictions; returns the table and facts."""
    loaded, reference = load_experiments(Path(results), experiments, train_model, config)
    return compare(loaded, reference, config)
