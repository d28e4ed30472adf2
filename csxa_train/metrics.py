"""Honest metrics for a 96%-diseased test set: every number beside the majority-class baseline.

The positive class is 1 (spondylosis). Scores are the model's probability of class 1. The counting
is scikit-learn's (``sklearn.metrics``); this module checks the inputs, names the numbers, chooses
operating points and measures calibration.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from csxa_data.errors import CsxaError

THRESHOLD_RULES = ("a number in (0, 1) such as 0.5", "youden", "sensitivity@X such as sensitivity@0.95")


def check_labels_and_scores(labels, scores=None, *, where: str = "predictions") -> tuple[np.ndarray, np.ndarray | None]:
    """Labels as 0/1 ints and scores as probabilities in [0, 1]; anything else is a clear error."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise CsxaError(f"{where}: no labels to evaluate")
    if labels.dtype == bool or not np.isin(labels, (0, 1)).all():
        odd = sorted({str(v) for v in labels[~np.isin(labels, (0, 1))]} or {"booleans"})[:5]
        raise CsxaError(f"{where}: labels must be 0 (asymptomatic) or 1 (spondylosis); found {odd}")
    labels = labels.astype(np.int64)
    if scores is None:
        return labels, None
    scores = np.asarray(scores, dtype=float)
    if scores.shape != labels.shape:
        raise CsxaError(f"{where}: {len(scores)} scores for {len(labels)} labels")
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    if bad.any():
        raise CsxaError(
            f"{where}: {int(bad.sum())} score(s) are NaN or outside [0, 1] "
            f"(first at row {int(np.flatnonzero(bad)[0])}: {scores[bad][0]!r})"
        )
    return labels, scores


def check_whole_numbers(column, name: str, path, minimum: int = 0, maximum: int = 10**9) -> np.ndarray:
    """A CSV column of whole numbers within ``minimum``..``maximum`` (a case number, a repeat, a
    fold) as int64; anything else (text, a boolean, a blank, 1.5, 1e300) is one error naming the
    file, the column and the first bad line, never truncated (1.5 is not 1) or overflowed."""
    import pandas as pd

    column = pd.Series(column)
    # through text, so that a boolean column is not taken for 1 and 0
    values = pd.to_numeric(column.astype(str), errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & (values >= minimum) & (values <= maximum) & (values == np.floor(values)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CsxaError(
            f"column {name}: {str(column.iloc[row])[:20]!r} on line {row + 2} is not a whole number "
            f">= {minimum} (and at most {maximum:,})",
            path=path,
        )
    return values.astype(np.int64)


def confusion(labels: np.ndarray, preds: np.ndarray) -> dict[str, int]:
    """tn, fp, fn, tp with 1 (spondylosis) as the positive class."""
    from sklearn.metrics import confusion_matrix

    tn, fp, fn, tp = confusion_matrix(labels, preds, labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """ROC points (fpr, tpr, threshold) from scikit-learn, from the highest threshold down; the
    first point's threshold (infinite in scikit-learn) is written as 1.0. Empty rates (one class)
    are 0."""
    import warnings

    from sklearn.metrics import roc_curve as sk_roc_curve

    with warnings.catch_warnings():  # one class only: scikit-learn warns and returns NaN rates
        warnings.simplefilter("ignore")
        fpr, tpr, thresholds = sk_roc_curve(labels, scores, drop_intermediate=False)
    return pd.DataFrame(
        {"fpr": np.nan_to_num(fpr), "tpr": np.nan_to_num(tpr), "threshold": np.minimum(thresholds, 1.0)}
    )


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve; None (undefined) when the labels hold one class only."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def classification_metrics(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray | None = None) -> dict:
    """Accuracy, precision, sensitivity (recall), specificity, F1 of class 1, balanced accuracy
    (scikit-learn's: the mean recall of the classes present), macro F1, AUROC and Brier score (if
    scores) and the confusion matrix. A ratio with an empty denominator is 0."""
    import warnings

    from sklearn import metrics as sk

    labels, scores = check_labels_and_scores(labels, scores)
    preds = np.asarray(preds).astype(np.int64)
    with warnings.catch_warnings():  # one class in the test set: balanced accuracy warns, by design
        warnings.simplefilter("ignore")
        balanced = float(sk.balanced_accuracy_score(labels, preds))
    kw = {"labels": [0, 1], "zero_division": 0}
    return {
        "n": int(len(labels)),
        "accuracy": float(sk.accuracy_score(labels, preds)),
        "precision": float(sk.precision_score(labels, preds, **kw)),
        "sensitivity": float(sk.recall_score(labels, preds, **kw)),
        "specificity": float(sk.recall_score(labels, preds, pos_label=0, **kw)),
        "f1": float(sk.f1_score(labels, preds, **kw)),
        "balanced_accuracy": balanced,
        "macro_f1": float(sk.f1_score(labels, preds, average="macro", **kw)),
        "auroc": auroc(labels, scores) if scores is not None else None,
        "brier": float(sk.brier_score_loss(labels, scores, pos_label=1)) if scores is not None else None,
        "confusion": confusion(labels, preds),
    }


def choose_threshold(labels: np.ndarray, scores: np.ndarray, rule) -> tuple[float, str]:
    """The decision threshold that ``rule`` picks on (validation) labels and scores, and how:
    a fixed number such as ``0.5``; ``youden`` (the ROC point maximising sensitivity + specificity
    - 1); ``sensitivity@X`` (the highest threshold whose sensitivity is at least X). With one class,
    or no validation cases, a rule cannot be applied: 0.5 is used and the note says so."""
    kind, value = parse_threshold_rule(rule)
    if kind == "fixed":
        return value, f"fixed at {value:g}"
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return (
            0.5,
            f"{rule} needs both classes in the validation part; it holds {len(np.unique(labels))}, so 0.5 is used",
        )
    labels, scores = check_labels_and_scores(labels, scores, where="validation scores")
    roc = roc_curve(labels, scores)
    if kind == "youden":
        best = int(np.argmax(roc.tpr - roc.fpr))
    else:  # thresholds fall along the curve: the first point reaching the target is the highest threshold
        best = int(np.flatnonzero(roc.tpr.to_numpy() >= value)[0])
    return float(roc.threshold[best]), (
        f"{rule} on the validation part: sensitivity {roc.tpr[best]:.3f}, specificity {1 - roc.fpr[best]:.3f}"
    )


def parse_threshold_rule(rule) -> tuple[str, float | None]:
    """``("fixed", t)`` for a number within (0, 1), ``("youden", None)``, or ``("sensitivity", X)``
    for ``sensitivity@X``; anything else is an error naming ``train.threshold``."""
    if isinstance(rule, (int, float)) and not isinstance(rule, bool) and 0 < rule < 1:
        return "fixed", float(rule)
    text = str(rule)
    if re.fullmatch(r"0?\.[0-9]+", text, re.ASCII) and 0 < float(text) < 1:
        return "fixed", float(text)
    if text == "youden":
        return "youden", None
    match = re.fullmatch(r"sensitivity@(0?\.[0-9]+|1(\.0*)?)", text, re.ASCII)
    if match and 0 < float(match.group(1)) <= 1:
        return "sensitivity", float(match.group(1))
    raise CsxaError(f"train.threshold must be one of {list(THRESHOLD_RULES)}, not {rule!r}", path="params.yaml")


def calibration_table(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: equal-width score bins with their count, mean score and fraction
    of spondylosis (empty bins kept with NaN means, so every file has the same rows)."""
    labels, scores = check_labels_and_scores(labels, scores)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1], right=False), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    score_sum = np.bincount(which, weights=scores, minlength=bins)
    positive = np.bincount(which, weights=labels, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "bin": np.arange(bins),
                "lower": edges[:-1],
                "upper": edges[1:],
                "count": count,
                "mean_score": np.where(count > 0, score_sum / np.maximum(count, 1), np.nan),
                "fraction_positive": np.where(count > 0, positive / np.maximum(count, 1), np.nan),
            }
        )


def expected_calibration_error(table: pd.DataFrame) -> float:
    """ECE: the count-weighted mean gap between mean score and observed frequency over the bins."""
    used = table[table["count"] > 0]
    return float((used["count"] * (used.mean_score - used.fraction_positive).abs()).sum() / used["count"].sum())


def evaluate_predictions(
    predictions: pd.DataFrame, majority_class: int, threshold: float = 0.5, calibration_bins: int = 10
) -> dict:
    """Everything about one experiment's test predictions: metrics at 0.5 (``pred``) and at the
    chosen ``threshold``, calibration, and the metrics of always answering ``majority_class``
    (the train split's majority)."""
    labels, scores = check_labels_and_scores(predictions.label.to_numpy(), predictions.score.to_numpy())
    model = classification_metrics(labels, (scores >= 0.5).astype(int), scores)
    at_threshold = classification_metrics(labels, (scores >= threshold).astype(int), scores)
    constant = np.full_like(labels, majority_class)
    baseline = classification_metrics(labels, constant, constant.astype(float))
    calibration = calibration_table(labels, scores, calibration_bins)
    return {
        **model,
        "ece": expected_calibration_error(calibration),
        "threshold": float(threshold),
        "at_threshold": at_threshold,
        "baseline": {"rule": f"always class {majority_class}", **baseline},
        "test_class_counts": {str(k): int(v) for k, v in pd.Series(labels).value_counts().sort_index().items()},
    }


def headline_metrics(details: dict) -> dict:
    """The few flat numbers ``metrics.json`` keeps for ``dvc exp show`` / ``dvc metrics diff``."""
    t = details["at_threshold"]
    return {
        "n": details["n"],
        "accuracy": details["accuracy"],
        "balanced_accuracy": details["balanced_accuracy"],
        "sensitivity": details["sensitivity"],
        "specificity": details["specificity"],
        "auroc": details["auroc"],
        "brier": details["brier"],
        "ece": details["ece"],
        "baseline_accuracy": details["baseline"]["accuracy"],
        "threshold": details["threshold"],
        "balanced_accuracy_at_threshold": t["balanced_accuracy"],
        "sensitivity_at_threshold": t["sensitivity"],
        "specificity_at_threshold": t["specificity"],
    }


def confusion_rows(predictions: pd.DataFrame, column: str = "pred") -> pd.DataFrame:
    """Per-sample actual/predicted class names, for `dvc plots` confusion templates."""
    names = {0: "asymptomatic", 1: "spondylosis"}
    return pd.DataFrame({"actual": predictions.label.map(names), "predicted": predictions[column].map(names)})
