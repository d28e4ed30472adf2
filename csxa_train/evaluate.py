"""Honest metrics for a 96%-diseased test set: every number beside the majority-class baseline.

The positive class is 1 (spondylosis). Scores are the model's probability of class 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def confusion(labels: np.ndarray, preds: np.ndarray) -> dict[str, int]:
    """tn, fp, fn, tp with 1 (spondylosis) as the positive class."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    return {"tn": int(((labels == 0) & (preds == 0)).sum()), "fp": int(((labels == 0) & (preds == 1)).sum()),
            "fn": int(((labels == 1) & (preds == 0)).sum()), "tp": int(((labels == 1) & (preds == 1)).sum())}


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """ROC points (fpr, tpr, threshold), from the highest threshold down, ties grouped."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (1 + distinct) - tps
    pos, neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    return pd.DataFrame({"fpr": np.r_[0.0, fps / neg], "tpr": np.r_[0.0, tps / pos],
                         "threshold": np.r_[np.inf, s[distinct]]})


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (trapezoids); None when the test set holds one class only."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    roc = roc_curve(labels, scores)
    return float(np.trapezoid(roc.tpr, roc.fpr))


def classification_metrics(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray | None = None) -> dict:
    """Accuracy, precision, sensitivity (recall), specificity, F1 of class 1, balanced accuracy,
    macro F1, AUROC (if scores) and the confusion matrix."""
    c = confusion(labels, preds)
    tn, fp, fn, tp = c["tn"], c["fp"], c["fn"], c["tp"]
    precision, sensitivity = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    specificity, npv = _ratio(tn, tn + fp), _ratio(tn, tn + fn)
    f1 = _ratio(2 * precision * sensitivity, precision + sensitivity)
    f1_neg = _ratio(2 * npv * specificity, npv + specificity)
    return {"n": tn + fp + fn + tp, "accuracy": _ratio(tp + tn, tn + fp + fn + tp), "precision": precision,
            "sensitivity": sensitivity, "specificity": specificity, "f1": f1,
            "balanced_accuracy": (sensitivity + specificity) / 2, "macro_f1": (f1 + f1_neg) / 2,
            "auroc": auroc(labels, scores) if scores is not None else None, "confusion": c}


def evaluate_predictions(predictions: pd.DataFrame, majority_class: int) -> dict:
    """The model's metrics and those of always answering ``majority_class`` (the train split's)."""
    labels = predictions.label.to_numpy()
    model = classification_metrics(labels, predictions.pred.to_numpy(), predictions.score.to_numpy())
    constant = np.full_like(labels, majority_class)
    baseline = classification_metrics(labels, constant, constant.astype(float))
    return {**model, "baseline": {"rule": f"always class {majority_class}", **baseline},
            "test_class_counts": {str(k): int(v) for k, v in pd.Series(labels).value_counts().sort_index().items()}}


def confusion_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per-sample actual/predicted class names, for `dvc plots` confusion templates."""
    names = {0: "asymptomatic", 1: "spondylosis"}
    return pd.DataFrame({"actual": predictions.label.map(names), "predicted": predictions.pred.map(names)})
