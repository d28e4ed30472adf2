"""Cross-validation of one experiment by case, over the train split (``csxa-train cv``).

The fold of every train case comes from ``data/folds.csv`` (``csxa-data folds``: by case, stratified,
stable under adding cases). For fold k of each repeat the experiment trains, exactly as ``fit`` does
(``fit.cases_train_data``: a validation part carved from the training cases by the same rule, the
colour orders, SMOTE; the same epochs, augmentation and seeds), on the cases of the other folds,
chooses its threshold on that validation part and scores fold k's cases. The test split is never
read. Normalisation statistics come from the training cases of the fold, not from ``stats.json``
(which holds fold k's cases too).

One process trains every fold (torch is imported once). Writes into OUT:

- ``oof.csv``: every train case once per repeat, scored by the model that did not see it:
  ``key, number, label, repeat, fold, score, threshold, pred`` (at 0.5) and ``pred_at_threshold``;
- ``folds.json``: per fold the case counts, the chosen threshold and the metrics at 0.5 and at it.

``csxa-train cv-landmarks`` gives the landmark baseline's two classifiers the same folds.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.errors import CsxaError
from csxa_data.ingest.measurements import SCALE_FREE_FEATURES
from csxa_data.release.names import parse_stem
from csxa_train.data import is_colour_variant, load_split, pool_orders
from csxa_train.landmark_baseline import EXPERIMENTS, MODEL_NAMES, fit_and_predict, read_inputs
from csxa_train.loop import run_epoch, score_in_memory, scoring_orders, training_parts
from csxa_train.metrics import choose_threshold, classification_metrics
from csxa_train.models import build_model
from csxa_train.runtime import seed_everything, start_runtime, stop_runtime
from csxa_train.trainset import cases_train_data, one_sample_per_case

OOF_COLUMNS = ("key", "number", "label", "repeat", "fold", "score", "threshold", "pred", "pred_at_threshold")


def case_folds(numbers: np.ndarray, labels: np.ndarray, folds: pd.DataFrame, where: str) -> pd.DataFrame:
    """The fold of each case (rows as ``numbers``) in every repeat: a frame indexed like the cases
    with one column per repeat. The variant's train cases and ``folds.csv`` must be the same cases
    with the same classes (else one error naming the first that differ)."""
    have = set(int(n) for n in numbers)
    listed = set(folds.number[folds.repeat == 0].astype(int))
    if have != listed:
        only_variant, only_folds = sorted(have - listed), sorted(listed - have)
        raise CsxaError(
            f"the variant's train cases and the fold table differ: {len(only_variant)} only in the variant "
            f"{only_variant[:5]}, {len(only_folds)} only in the folds {only_folds[:5]}; rebuild both "
            f"from the same manifest (dvc repro)",
            path=where,
        )
    by_case = folds.pivot(index="number", columns="repeat", values="fold").loc[numbers]
    classes = folds[folds.repeat == 0].set_index("number").label.loc[numbers].to_numpy()
    differ = classes != labels
    if differ.any():
        raise CsxaError(
            f"the fold table and the variant disagree on the class of case(s) "
            f"{np.asarray(numbers)[differ].tolist()[:5]}",
            path=where,
        )
    return by_case.reset_index(drop=True)


def fold_normalisation(images: np.ndarray, colour: bool):
    """Per-channel mean and std (pixel / 255, 1 x 3 x 1 x 1) of the training cases' images, the
    colour orders pooled as ``fit.model_normalisation`` pools them."""
    import torch

    x = images.astype(np.float64) / 255.0
    mean = torch.tensor(x.mean(axis=(0, 2, 3)), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(x.std(axis=(0, 2, 3)), dtype=torch.float32).view(1, 3, 1, 1).clamp_min(1e-6)
    return pool_orders(mean, std, colour)


def train_fold(config, images, labels, stems, colour, runtime):
    """One fold's model trained on the given cases as ``fit`` trains; returns (model, mean, std,
    validation labels, validation scores, counts)."""
    import torch

    seed_everything(config.seed)
    data = cases_train_data(images, labels, stems, colour, config)
    mean, std = (t.to(runtime.device) for t in fold_normalisation(images, colour))
    model = build_model(config.model, config.weights).to(runtime.device)
    if runtime.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    criterion, optimizer, scheduler = training_parts(model, data.labels, config, runtime.device)
    for epoch in range(config.epochs):
        run_epoch(
            model, criterion, optimizer, scheduler, data.images, data.labels, colour, mean, std, config, epoch, runtime
        )
    val_scores = score_in_memory(model, data.val_images, mean, std, config, runtime, scoring_orders(colour, config))
    return model, mean, std, data.val_labels, val_scores, data.counts


def fold_metrics(frame: pd.DataFrame) -> dict:
    """Metrics of one fold's out-of-fold rows at 0.5 and at the fold's threshold."""

    labels, scores = frame.label.to_numpy(), frame.score.to_numpy()
    at_half = classification_metrics(labels, frame.pred.to_numpy(), scores)
    at_threshold = classification_metrics(labels, frame.pred_at_threshold.to_numpy(), scores)
    return {**at_half, "at_threshold": at_threshold}


def write_outputs(out: Path, oof: pd.DataFrame, per_fold: list[dict], extra: dict) -> None:
    """oof.csv and folds.json, written into a temporary folder and renamed into place file by file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.tmp-", dir=out.parent) as tmp:
        oof[list(OOF_COLUMNS)].to_csv(Path(tmp) / "oof.csv", index=False, float_format="%.8f")
        (Path(tmp) / "folds.json").write_text(json.dumps({**extra, "folds": per_fold}, indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for file in sorted(Path(tmp).iterdir()):
            os.replace(file, out / file.name)


def oof_frame(stems, numbers, labels, scores, repeat: int, fold: int, threshold: float) -> pd.DataFrame:
    """One fold's out-of-fold rows, in the columns of ``oof.csv``."""
    scores = np.asarray(scores, dtype=float)
    return pd.DataFrame(
        {
            "key": list(stems),
            "number": np.asarray(numbers, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int64),
            "repeat": repeat,
            "fold": fold,
            "score": scores,
            "threshold": float(threshold),
            "pred": (scores >= 0.5).astype(int),
            "pred_at_threshold": (scores >= threshold).astype(int),
        }
    )


def finish(out: Path, parts: list[pd.DataFrame], per_fold: list[dict], extra: dict) -> pd.DataFrame:
    """Sort the out-of-fold rows (repeat, key), check every case once per repeat, write."""
    oof = pd.concat(parts, ignore_index=True).sort_values(["repeat", "key"], ignore_index=True)
    if oof.duplicated(["repeat", "key"]).any():
        raise CsxaError(f"internal error: a case scored twice in one repeat in {out}")
    write_outputs(out, oof, per_fold, extra)
    return oof


def cross_validate(
    config, folds: pd.DataFrame, out: str | Path, *, title: str, folds_path: str = "folds.csv"
) -> pd.DataFrame:
    """Train and score every fold of every repeat of one experiment; returns the out-of-fold rows."""
    from tqdm import tqdm

    out = Path(out)
    runtime = start_runtime()
    try:
        if runtime.world > 1:
            raise CsxaError("csxa-train cv runs in one process (each fold is small); run it without torchrun")
        colour = is_colour_variant(config.variant)
        images, labels, keys = load_split(config.variant, "train")
        images, labels, stems = one_sample_per_case(images, labels, keys, colour)
        numbers = np.array([parse_stem(s)[0] for s in stems], dtype=np.int64)
        assignment = case_folds(numbers, labels, folds, folds_path)
        k = int(folds.fold.max()) + 1
        orders = scoring_orders(colour, config)
        parts, per_fold = [], []
        jobs = [(r, f) for r in assignment.columns for f in range(k)]
        for r, f in tqdm(jobs, desc=f"cv {title}", unit="fold"):
            held = (assignment[r] == f).to_numpy()
            train_idx = np.flatnonzero(~held)
            model, mean, std, val_labels, val_scores, counts = train_fold(
                config, images[train_idx], labels[train_idx], [stems[i] for i in train_idx], colour, runtime
            )
            threshold, note = choose_threshold(val_labels, val_scores, config.threshold)
            scores = score_in_memory(model, images[held], mean, std, config, runtime, orders)
            part = oof_frame(
                [stems[i] for i in np.flatnonzero(held)], numbers[held], labels[held], scores, int(r), f, threshold
            )
            parts.append(part)
            per_fold.append(
                {
                    "repeat": int(r),
                    "fold": f,
                    "test_cases": int(held.sum()),
                    **counts,
                    "threshold": float(threshold),
                    "threshold_note": note,
                    **fold_metrics(part),
                }
            )
        extra = {
            "experiment": title,
            "model": config.model,
            "variant": str(config.variant),
            "k": k,
            "repeats": int(len(assignment.columns)),
            "cases": int(len(labels)),
            "colour_variant": colour,
            "threshold_rule": str(config.threshold),
        }
        return finish(out, parts, per_fold, extra)
    finally:
        stop_runtime()


def cross_validate_landmarks(
    manifest, landmarks, folds: pd.DataFrame, results: str | Path, config, protocol, folds_path: str = "folds.csv"
) -> dict[str, pd.DataFrame]:
    """The landmark baseline's two classifiers on the same folds (``landmark_baseline.fit_and_predict``
    with fold k as its test cases): ``RESULTS/landmarks_logreg/`` and ``RESULTS/landmarks_gbt/``."""

    cases = read_inputs(manifest, landmarks)
    cases = cases[cases.split == "train"].reset_index(drop=True)
    assignment = case_folds(cases.number.to_numpy(), cases.label.to_numpy(), folds, folds_path)
    k = int(folds.fold.max()) + 1
    out = {}
    for name, kind in EXPERIMENTS.items():
        parts, per_fold = [], []
        for r in assignment.columns:
            for f in range(k):
                held = (assignment[r] == f).to_numpy()
                fold_cases = cases.assign(split=np.where(held, "test", "train"))
                predictions, threshold, note, counts = fit_and_predict(
                    fold_cases, kind, config, protocol, SCALE_FREE_FEATURES
                )
                part = oof_frame(
                    predictions.key, predictions.number, predictions.label, predictions.score, int(r), f, threshold
                )
                parts.append(part)
                per_fold.append(
                    {
                        "repeat": int(r),
                        "fold": f,
                        "test_cases": int(held.sum()),
                        **counts,
                        "threshold": float(threshold),
                        "threshold_note": note,
                        **fold_metrics(part),
                    }
                )
        extra = {
            "experiment": name,
            "model": MODEL_NAMES[kind],
            "variant": "landmarks",
            "repeats": int(len(assignment.columns)),
            "cases": int(len(cases)),
            "colour_variant": False,
            "threshold_rule": str(protocol.threshold),
            "k": k,
        }
        out[name] = finish(Path(results) / name, parts, per_fold, extra)
    return out


def summary_line(name: str, oof: pd.DataFrame) -> str:
    """One line per experiment: the pooled out-of-fold metrics."""

    m = classification_metrics(oof.label.to_numpy(), oof.pred.to_numpy(), oof.score.to_numpy())
    auc = "n/a" if m["auroc"] is None else f"{m['auroc']:.3f}"
    return (
        f"cv {name}: {oof.key.nunique()} cases x {oof.repeat.nunique()} repeat(s) in {oof.fold.nunique()} folds, "
        f"out of fold: balanced accuracy {m['balanced_accuracy']:.3f}, AUROC {auc}, sensitivity "
        f"{m['sensitivity']:.3f}, specificity {m['specificity']:.3f}"
    )
