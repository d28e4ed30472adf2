"""The evaluation files of a run (predictions, ROC, confusion, calibration, metrics, details and the
report picture), written together."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from csxa_data.atomic import write_files_atomic
from csxa_train.figures import evaluation_figure
from csxa_train.metrics import calibration_table, confusion_rows, evaluate_predictions, headline_metrics, roc_curve

EVALUATION_FILES = (
    "predictions.csv",
    "roc.csv",
    "confusion.csv",
    "calibration.csv",
    "metrics.json",
    "evaluation.json",
    "report.png",
)


def evaluation_files(
    predictions: pd.DataFrame,
    majority_class: int,
    title: str,
    extra: dict,
    threshold: float = 0.5,
    calibration_bins: int = 10,
) -> tuple[dict, dict]:
    """The evaluation details, and a writer for each of ``EVALUATION_FILES``: metrics.json
    (headline), evaluation.json (details), predictions.csv, roc.csv, confusion.csv, calibration.csv
    and report.png."""

    details = {**evaluate_predictions(predictions, majority_class, threshold, calibration_bins), **extra}
    predictions = predictions.assign(pred_at_threshold=(predictions.score >= threshold).astype(int))
    roc = roc_curve(predictions.label.to_numpy(), predictions.score.to_numpy())
    calibration = calibration_table(predictions.label.to_numpy(), predictions.score.to_numpy(), calibration_bins)
    writers = {
        "predictions.csv": lambda path: predictions.to_csv(path, index=False, float_format="%.8f"),
        "roc.csv": lambda path: roc.to_csv(path, index=False, float_format="%.6f"),
        "confusion.csv": lambda path: confusion_rows(predictions).to_csv(path, index=False),
        "calibration.csv": lambda path: calibration.to_csv(path, index=False, float_format="%.6f"),
        "metrics.json": lambda path: path.write_text(json.dumps(headline_metrics(details), indent=2) + "\n"),
        "evaluation.json": lambda path: path.write_text(json.dumps(details, indent=2) + "\n"),
        "report.png": lambda path: evaluation_figure(details, roc, calibration, title, path),
    }
    return details, writers


def write_evaluation(
    out: Path,
    predictions: pd.DataFrame,
    majority_class: int,
    title: str,
    extra: dict,
    threshold: float = 0.5,
    calibration_bins: int = 10,
) -> dict:
    """The ``EVALUATION_FILES`` written into ``out`` together (see ``write_files_atomic``: a run
    failing or killed while it writes them leaves the old ones; only a kill within the final
    renames, microseconds, could mix them); returns the details."""
    details, writers = evaluation_files(predictions, majority_class, title, extra, threshold, calibration_bins)
    write_files_atomic(out, writers)
    return details
