"""A landmark-measurement baseline: do a handful of radiographic measurements classify as well as
the pixels?

From ``landmarks.csv`` (the atlas's 23 points per case) the radiographic parameters of
``csxa_data.measurements`` are computed per case; the scale-free ones (C2-C7 Cobb angle, the five
disc-to-body height ratios, the five slip fractions) feed two scikit-learn classifiers, both
class-balanced (``class_weight="balanced"``):

- ``landmarks_logreg``: standardised features, L2 logistic regression;
- ``landmarks_gbt``: a histogram gradient-boosted tree (no early stopping, seeded).

They train on the ingest manifest's train split (the networks' train cases) less a validation
part drawn exactly as the networks draw theirs (``csxa_train.fit.validation_cases`` with
``train.val_fraction`` and ``train.seed``: the same held-out cases), choose the threshold on that
part (``train.threshold``, ``csxa_train.evaluate.choose_threshold``), and score the test split.
Each writes ``OUT/EXPERIMENT/`` with the files a trained experiment writes
(``csxa_train.fit.write_evaluation``: predictions.csv, metrics.json, evaluation.json, roc.csv,
confusion.csv, calibration.csv, report.png), so ``compare`` reads them like any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.atomic import atomic_path
from csxa_data.csvtext import read_csv_file
from csxa_data.errors import CsxaError
from csxa_data.ingest.measurements import SCALE_FREE_FEATURES, measurement_table
from csxa_data.ingest.outputs import read_manifest
from csxa_data.params import dataclass_from_section, require
from csxa_data.splits import validation_cases
from csxa_train.metrics import check_whole_numbers, choose_threshold
from csxa_train.params import TrainParams
from csxa_train.results import write_evaluation
from csxa_train.trainset import require_both_classes

# experiment name -> classifier kind
EXPERIMENTS = {"landmarks_logreg": "logreg", "landmarks_gbt": "gbt"}
MODEL_NAMES = {"logreg": "logistic_regression", "gbt": "hist_gradient_boosting"}


@dataclass(frozen=True)
class LandmarkParams:
    """The ``landmarks`` section of params.yaml: the two classifiers' settings."""

    logreg_c: float = 1.0  # inverse L2 strength (features standardised on the train part)
    logreg_max_iter: int = 1000
    gbt_max_iter: int = 200  # boosting iterations
    gbt_learning_rate: float = 0.05
    gbt_max_depth: int = 3
    gbt_min_samples_leaf: int = 10

    @classmethod
    def from_dict(cls, data: dict | None) -> LandmarkParams:

        config = dataclass_from_section(cls, data or {}, "landmarks")
        require(
            config.logreg_c > 0 and config.logreg_max_iter >= 1,
            "landmarks.logreg_c must be positive and landmarks.logreg_max_iter at least 1",
        )
        require(
            config.gbt_max_iter >= 1
            and 0 < config.gbt_learning_rate <= 1
            and config.gbt_max_depth >= 1
            and config.gbt_min_samples_leaf >= 1,
            "landmarks.gbt_max_iter, gbt_max_depth and gbt_min_samples_leaf must be at least 1 and "
            "landmarks.gbt_learning_rate within (0, 1]",
        )
        return config


@dataclass(frozen=True)
class Protocol:
    """What the baseline shares with the networks (the ``train`` section): the seed, the
    validation fraction, the threshold rule and the calibration bins."""

    seed: int
    val_fraction: float
    threshold: str | float
    calibration_bins: int

    @classmethod
    def from_train_section(cls, train: dict) -> Protocol:
        """Checked exactly as ``csxa-train fit`` checks them (its TrainParams)."""

        config = TrainParams.from_dict({**(train or {}), "variant": "(landmarks)"})
        return cls(config.seed, config.val_fraction, config.threshold, config.calibration_bins)


def classifier(kind: str, config: LandmarkParams, seed: int):
    """An unfitted, class-balanced scikit-learn classifier: ``logreg`` or ``gbt``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(
                C=config.logreg_c, max_iter=config.logreg_max_iter, class_weight="balanced", random_state=seed
            ),
        )
    if kind == "gbt":
        return HistGradientBoostingClassifier(
            max_iter=config.gbt_max_iter,
            learning_rate=config.gbt_learning_rate,
            max_depth=config.gbt_max_depth,
            min_samples_leaf=config.gbt_min_samples_leaf,
            class_weight="balanced",
            early_stopping=False,
            random_state=seed,
        )
    raise CsxaError(f"unknown landmark classifier {kind!r}; known: {sorted(MODEL_NAMES)}")


def read_inputs(manifest_path: str | Path, landmarks_path: str | Path) -> pd.DataFrame:
    """One row per manifest case: number, stem, label, split and the measurements. Every case of
    the manifest needs its 23 landmarks (a missing case is an error naming it)."""

    manifest = read_manifest(manifest_path)
    landmarks = read_csv_file(landmarks_path, "landmarks table not found (run the ingest stage)")
    if "number" in landmarks.columns:
        landmarks["number"] = check_whole_numbers(landmarks.number, "number", landmarks_path, minimum=1)
        absent = sorted(set(manifest.number) - set(landmarks.number))
        if absent:
            raise CsxaError(
                f"case {absent[0]} of the manifest has no landmarks "
                f"({len(absent)} case(s) without: {absent[:5]}{' ...' if len(absent) > 5 else ''})",
                path=landmarks_path,
            )
        landmarks = landmarks[landmarks.number.isin(manifest.number)]
    measurements = measurement_table(landmarks, source=str(landmarks_path))
    cases = manifest[["number", "stem", "label", "split"]].merge(
        measurements, on="number", how="left", validate="one_to_one"
    )
    return cases.sort_values("stem", ignore_index=True)


def split_train(cases: pd.DataFrame, protocol: Protocol) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train split's cases as (train part, validation part), drawn exactly as the networks'
    (``fit.validation_cases`` over the train cases sorted by stem)."""

    train = cases[cases.split == "train"].sort_values("stem", ignore_index=True)
    require_both_classes(train.label.to_numpy())
    held = validation_cases(train.label.to_numpy(), train.stem.tolist(), protocol.val_fraction, protocol.seed)
    return train[~held].reset_index(drop=True), train[held].reset_index(drop=True)


def _counts(part: pd.DataFrame, validation: pd.DataFrame) -> dict:
    by_class = lambda frame: {str(k): int(v) for k, v in frame.label.value_counts().sort_index().items()}  # noqa: E731
    return {
        "train_cases": int(len(part)),
        "validation_cases": int(len(validation)),
        "train_by_class": by_class(part),
        "validation_by_class": by_class(validation),
        "majority_class": int(np.bincount(part.label.to_numpy(), minlength=2).argmax()),
        "train_samples": int(len(part)),
    }


def fit_and_predict(
    cases: pd.DataFrame, kind: str, config: LandmarkParams, protocol: Protocol, features: tuple[str, ...]
) -> tuple[pd.DataFrame, float, str, dict]:
    """Fit one classifier on the train part, choose the threshold on the validation part, score
    the test split; returns (predictions as ``fit.predict`` writes them, threshold, note, counts)."""

    part, validation = split_train(cases, protocol)
    test = cases[cases.split == "test"].sort_values("stem", ignore_index=True)
    if test.empty:
        raise CsxaError("the manifest has no test cases to score")
    model = classifier(kind, config, protocol.seed)
    model.fit(part[list(features)].to_numpy(float), part.label.to_numpy())
    positive = list(model.classes_).index(1)
    val_scores = (
        model.predict_proba(validation[list(features)].to_numpy(float))[:, positive] if len(validation) else np.zeros(0)
    )
    threshold, note = choose_threshold(validation.label.to_numpy(), val_scores, protocol.threshold)
    scores = model.predict_proba(test[list(features)].to_numpy(float))[:, positive]
    predictions = pd.DataFrame(
        {
            "key": test.stem.astype(str),
            "number": test.number.astype(int),
            "label": test.label.astype(int),
            "score": scores.astype(float),
        }
    )
    predictions["pred"] = (predictions.score >= 0.5).astype(int)
    return predictions, threshold, note, _counts(part, validation)


def run_baseline(
    manifest: str | Path,
    landmarks: str | Path,
    results: str | Path,
    config: LandmarkParams,
    protocol: Protocol,
    *,
    measurements_out: str | Path | None = None,
) -> dict[str, dict]:
    """Both classifiers: ``RESULTS/landmarks_logreg/`` and ``RESULTS/landmarks_gbt/`` (each
    experiment's files replaced together), and the measurement table if asked; returns
    each experiment's evaluation details."""

    cases = read_inputs(manifest, landmarks)
    for target in [Path(results), *(Path(results) / name for name in EXPERIMENTS)]:
        if target.exists() and not target.is_dir():  # found before anything is written
            raise CsxaError(
                "exists and is not a folder; the results are folders of files; nothing was written", path=target
            )
    if measurements_out is not None:
        with atomic_path(measurements_out) as tmp:
            cases.drop(columns=["stem", "label", "split"]).sort_values("number").to_csv(
                tmp, index=False, float_format="%.6f"
            )
    out = {}
    for name, kind in EXPERIMENTS.items():
        predictions, threshold, note, counts = fit_and_predict(cases, kind, config, protocol, SCALE_FREE_FEATURES)
        extra = {
            "experiment": name,
            "variant": "landmarks",
            "model": MODEL_NAMES[kind],
            "balance": "class_weight_balanced",
            "features": list(SCALE_FREE_FEATURES),
            "settings": asdict(config),
            "threshold_rule": str(protocol.threshold),
            "threshold_note": note,
            **counts,
        }
        # all of an experiment's files replaced together; other files there (DVC's .gitignore) stay
        out[name] = write_evaluation(
            Path(results) / name,
            predictions,
            counts["majority_class"],
            name,
            extra,
            threshold,
            protocol.calibration_bins,
        )
    return out


def summary_line(name: str, details: dict) -> str:
    """One line per experiment for the command's output."""
    auc = "n/a" if details["auroc"] is None else f"{details['auroc']:.3f}"
    return (
        f"{name}: balanced accuracy {details['balanced_accuracy']:.3f}, sensitivity {details['sensitivity']:.3f}, "
        f"specificity {details['specificity']:.3f}, AUROC {auc}, accuracy {details['accuracy']:.3f} (majority "
        f"baseline {details['baseline']['accuracy']:.3f}); at threshold {details['threshold']:.3f}: balanced "
        f"accuracy {details['at_threshold']['balanced_accuracy']:.3f}"
    )
