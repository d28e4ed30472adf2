"""The cross-validation report (``csxa-train compare --cv results/cv``): every experiment's
out-of-fold predictions over the train split, fold by fold and pooled.

Inputs: ``CV/EXPERIMENT/oof.csv`` of each experiment (``csxa-train cv``; the same cases in the same
folds in each). Outputs in OUT: ``cv_table.md`` (for people), ``cv_table.csv`` (one row per
experiment, every number), ``cv_folds.csv`` (one row per experiment and fold), ``cv.json`` (a few
numbers, for ``dvc metrics``) and ``cv.png`` (per-fold dots).

- Per fold: balanced accuracy, AUROC, sensitivity, specificity and accuracy of the fold's cases,
  then their mean and SD (ddof 1) across the folds (and repeats).
- Pooled: the same metrics over all out-of-fold predictions at once, with a stratified bootstrap
  interval over cases (a resampled case brings its rows of every repeat). Pooled scores come from
  different models (one per fold), so the pooled AUROC mixes their scales; the per-fold AUROC does not.
- Against the reference, per metric, on the per-fold differences: the paired t-test across folds
  as the paper's caption names it (uncorrected: too liberal, the folds share training cases), and
  Nadeau and Bengio's corrected resampled t-test with n_test / n_train from the folds' sizes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.errors import CsxaError
from csxa_train import stats
from csxa_train.figures import figure_font
from csxa_train.metrics import check_whole_numbers, classification_metrics
from csxa_train.report.table import (
    CompareParams,
    bootstrap_metrics,
    check_bootstrap_size,
    is_missing,
    number_cell,
    p_cell,
    percent_cell,
    read_scored_csv,
    reference_first,
)
from schemas.folds import fold_layout_problem

# (key, label, shown as a percentage)
METRICS = (
    ("balanced_accuracy", "Balanced accuracy (%)", True),
    ("auroc", "AUROC", False),
    ("sensitivity", "Sensitivity (%)", True),
    ("specificity", "Specificity (%)", True),
    ("accuracy", "Accuracy (%)", True),
)
TESTED = (("balanced_accuracy", "balanced accuracy"), ("auroc", "AUROC"))


@dataclass
class CvExperiment:
    name: str
    variant: str
    model: str
    frame: pd.DataFrame  # key, label, repeat, fold, score, pred (at the operating point); sorted by repeat, key


def read_oof(path: Path, operating_point: str) -> pd.DataFrame:
    """One experiment's out-of-fold predictions, checked: columns, one row per case and repeat, 0/1
    labels, scores in [0, 1], whole-number repeats and folds."""
    frame = read_scored_csv(
        path,
        operating_point,
        columns=("repeat", "fold"),
        unique=("repeat", "key"),
        twice="case(s) listed twice in one repeat",
        not_found="out-of-fold predictions not found (has the experiment been cross-validated? dvc repro)",
    )
    out = pd.DataFrame(
        {
            "key": frame.key,
            "label": frame.label,
            "repeat": check_whole_numbers(frame.repeat, "repeat", path),
            "fold": check_whole_numbers(frame.fold, "fold", path),
            "score": frame.score,
            "pred": frame.pred,
        }
    )
    per_repeat = out.groupby("repeat").key.apply(lambda k: tuple(sorted(k)))
    if per_repeat.nunique() != 1:
        raise CsxaError("the repeats hold different cases", path=path)

    problem = fold_layout_problem(out)
    if problem:
        raise CsxaError(f"{problem}: not the folds of data/folds.csv (cross-validate again: dvc repro)", path=path)
    for (r, k), part in out.groupby(["repeat", "fold"], sort=True):
        missing = sorted({0, 1} - set(part.label.tolist()))
        if missing:
            which = "asymptomatic (0)" if missing == [0] else "spondylotic (1)"
            raise CsxaError(
                f"fold {int(k)} of repeat {int(r)} holds no {which} case, so its specificity, balanced accuracy "
                "and AUROC are undefined and the folds cannot be compared: stratify the folds "
                "(`csxa-data fold-salt`, then cv.seed) or use fewer folds",
                path=path,
            )
    return out.sort_values(["repeat", "key"], ignore_index=True)


def load_cv(cv_dir: Path, experiments: dict, train_model: str, config: CompareParams) -> tuple[list[CvExperiment], str]:
    """Every experiment's out-of-fold rows, checked to be the reference's cases, classes and folds."""
    reference, names = reference_first(experiments, config)
    loaded = []
    for name in names:
        frame = read_oof(cv_dir / name / "oof.csv", str(config.operating_point))
        if loaded:
            ref = loaded[0].frame
            for column, what in (("key", "cases"), ("label", "classes"), ("fold", "folds")):
                if not np.array_equal(frame[column].to_numpy(), ref[column].to_numpy()) or len(frame) != len(ref):
                    raise CsxaError(
                        f"{name}'s out-of-fold {what} differ from the reference {reference}'s "
                        f"(cross-validate every experiment on the same data/folds.csv: dvc repro)",
                        path=cv_dir / name / "oof.csv",
                    )
        spec = experiments[name] or {}
        loaded.append(CvExperiment(name, str(spec.get("variant", "?")), str(spec.get("model", train_model)), frame))
    return loaded, reference


def _metrics(labels, preds, scores) -> dict:

    m = classification_metrics(labels, preds, scores)
    return {key: (math.nan if m[key] is None else m[key]) for key, _, _ in METRICS}


def per_fold(experiments: list[CvExperiment]) -> pd.DataFrame:
    """One row per experiment, repeat and fold: the fold's case count and metrics."""
    rows = []
    for e in experiments:
        for (r, k), part in e.frame.groupby(["repeat", "fold"], sort=True):
            rows.append(
                {
                    "experiment": e.name,
                    "repeat": int(r),
                    "fold": int(k),
                    "n": int(len(part)),
                    **_metrics(part.label.to_numpy(), part.pred.to_numpy(), part.score.to_numpy()),
                }
            )
    return pd.DataFrame(rows)


def pooled_index(frame: pd.DataFrame, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap row indices of the out-of-fold rows (sorted by repeat, key): cases drawn with
    replacement within each class, each drawn case bringing its row of every repeat."""
    repeats = frame.repeat.nunique()
    n = len(frame) // repeats
    cases = stats.stratified_bootstrap_indices(frame.label.to_numpy()[:n], resamples, seed)
    return np.concatenate([cases + r * n for r in range(repeats)], axis=1)


def summarise(
    experiments: list[CvExperiment], folds: pd.DataFrame, reference: str, config: CompareParams
) -> tuple[pd.DataFrame, dict]:
    """One row per experiment: per-fold mean and SD, pooled metrics with intervals, and against the
    reference the uncorrected and the corrected t-test on each tested metric; and the facts."""
    ref = experiments[0].frame
    labels = ref.label.to_numpy()
    check_bootstrap_size(len(labels), config.resamples, f"{experiments[0].name}'s out-of-fold predictions")
    index = pooled_index(ref, config.resamples, config.seed)
    sizes = folds[folds.experiment == reference].n.to_numpy(dtype=float)
    total = len(ref) / ref.repeat.nunique()
    n_test, n_train = float(sizes.mean()), float(total - sizes.mean())
    ref_folds = folds[folds.experiment == reference].reset_index(drop=True)
    rows = []
    for e in experiments:
        mine = folds[folds.experiment == e.name].reset_index(drop=True)
        row = {
            "experiment": e.name,
            "variant": e.variant,
            "model": e.model,
            "reference": e.name == reference,
            "folds": int(len(mine)),
        }
        for key, _, _ in METRICS:
            row[f"{key}_mean"] = float(mine[key].mean())
            row[f"{key}_sd"] = float(mine[key].std(ddof=1)) if len(mine) > 1 else math.nan
        preds, scores = e.frame.pred.to_numpy(), e.frame.score.to_numpy()
        pooled = _metrics(labels, preds, scores)
        boot = bootstrap_metrics(labels, preds, scores, index)
        for key, _, _ in METRICS:
            row[f"{key}_pooled"] = pooled[key]
            row[f"{key}_pooled_low"], row[f"{key}_pooled_high"] = stats.bootstrap_interval(boot[key], config.confidence)
        if e.name != reference:
            for key, _ in TESTED:
                d = (mine[key] - ref_folds[key]).to_numpy()
                row[f"{key}_difference"] = float(d.mean())
                row[f"{key}_difference_sd"] = float(d.std(ddof=1))
                if np.isfinite(d).all() and len(d) >= 2:
                    row[f"{key}_t_uncorrected"], row[f"{key}_p_uncorrected"] = stats.paired_ttest_folds(d)
                    row[f"{key}_t_corrected"], row[f"{key}_p_corrected"] = stats.corrected_resampled_ttest(
                        d, n_train=n_train, n_test=n_test
                    )
        rows.append(row)
    counts = np.bincount(labels[: int(total)], minlength=2)
    facts = {
        "reference": reference,
        "operating_point": str(config.operating_point),
        "n": int(total),
        "by_class": {"0": int(counts[0]), "1": int(counts[1])},
        "folds": int(ref.fold.max()) + 1,
        "repeats": int(ref.repeat.nunique()),
        "differences": int(len(ref_folds)),
        "n_test": n_test,
        "n_train": n_train,
        "resamples": config.resamples,
        "seed": config.seed,
        "confidence": config.confidence,
    }
    return pd.DataFrame(rows), facts


def _cell(value, sd, percent: bool) -> str:
    if is_missing(value):
        return "n/a"
    scale, digits = (100, 1) if percent else (1, 3)
    return f"{scale * value:.{digits}f}" + ("" if is_missing(sd) else f" ± {scale * sd:.{digits}f}")


def _t(value) -> str:
    return "-" if is_missing(value) else f"{value:.2f}"


def markdown(table: pd.DataFrame, folds: pd.DataFrame, facts: dict) -> str:
    """cv_table.md: per-fold mean and SD, pooled with intervals, per-fold values, the two t-tests."""
    g = lambda row, key: None if key not in row or is_missing(row[key]) else row[key]  # noqa: E731
    level = round(100 * facts["confidence"])
    j, ratio = facts["differences"], facts["n_test"] / facts["n_train"]
    header = "| Experiment | Variant | Model | " + " | ".join(label for _, label, _ in METRICS) + " |"
    rule = "|---|---|---|" + "---|" * len(METRICS)
    lines = [
        "# Cross-validation by case (train split)",
        "",
        f"{facts['n']} train cases ({facts['by_class']['0']} asymptomatic, {facts['by_class']['1']} spondylosis) in "
        f"{facts['folds']} folds × {facts['repeats']} repeat(s), by case (`data/folds.csv`); the test split is not "
        f"used. Every experiment is trained on each fold's complement and scores the fold's cases. Predictions at "
        f"{'threshold 0.5' if facts['operating_point'] == '0.5' else 'each fold’s validation-chosen threshold'}.",
        "",
        f"## Per fold: mean ± SD across the {j} folds",
        "",
        header,
        rule,
    ]
    for _, row in table.iterrows():
        name = row.experiment + (" (reference)" if row.reference is True else "")
        lines.append(
            f"| {name} | {row.variant} | {row.model} | "
            + " | ".join(_cell(row[f"{key}_mean"], row[f"{key}_sd"], pct) for key, _, pct in METRICS)
            + " |"
        )
    lines += [
        "",
        "## Pooled out-of-fold predictions",
        "",
        f"All {facts['n']} cases' out-of-fold predictions at once; brackets: {level}% intervals, a stratified "
        f"bootstrap over cases ({facts['resamples']} resamples, seed {facts['seed']}). The pooled AUROC mixes "
        "scores of different models (one per fold).",
        "",
        header,
        rule,
    ]
    for _, row in table.iterrows():
        cells = []
        for key, _, pct in METRICS:
            fmt = percent_cell if pct else number_cell
            cells.append(fmt(g(row, f"{key}_pooled"), g(row, f"{key}_pooled_low"), g(row, f"{key}_pooled_high")))
        lines.append(f"| {row.experiment} | {row.variant} | {row.model} | " + " | ".join(cells) + " |")
    labels = [
        f"r{r} f{k}" if facts["repeats"] > 1 else f"fold {k}"
        for r, k in folds[folds.experiment == facts["reference"]][["repeat", "fold"]].itertuples(index=False)
    ]
    lines += [
        "",
        "## Balanced accuracy (%) and AUROC of each fold",
        "",
        "| Experiment | "
        + " | ".join(f"{c} BA" for c in labels)
        + " | "
        + " | ".join(f"{c} AUROC" for c in labels)
        + " |",
        "|---|" + "---|" * (2 * len(labels)),
    ]
    for name in table.experiment:
        mine = folds[folds.experiment == name]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{100 * v:.1f}" for v in mine.balanced_accuracy)
            + " | "
            + " | ".join("n/a" if is_missing(v) else f"{v:.3f}" for v in mine.auroc)
            + " |"
        )
    lines += [
        "",
        f"## Against the reference ({facts['reference']}): t-tests across the {j} folds",
        "",
        f"On the {j} per-fold differences d (this experiment minus the reference, same folds), {j - 1} degrees of "
        "freedom, two-sided. **Uncorrected**: the paired t-test across folds that the seed paper's caption names, "
        "t = mean(d) / sqrt(var(d) / J); the folds share training cases, so the differences are correlated and "
        "this test finds differences too often. **Corrected**: Nadeau and Bengio's corrected resampled t-test "
        f"(2003), t = mean(d) / sqrt((1/J + n_test/n_train) var(d)), here n_test/n_train = "
        f"{facts['n_test']:.1f}/{facts['n_train']:.1f} = {ratio:.3f}; read this one.",
        "",
        "| Experiment | Metric | Mean difference ± SD | t, uncorrected (paper's) | p, uncorrected (paper's) "
        "| t, corrected (Nadeau-Bengio) | p, corrected (Nadeau-Bengio) |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        if row.reference is True:
            continue
        for key, label in TESTED:
            pct = key != "auroc"
            lines.append(
                f"| {row.experiment} | {label} | {_cell(g(row, f'{key}_difference'), g(row, f'{key}_difference_sd'), pct)} | "
                f"{_t(g(row, f'{key}_t_uncorrected'))} | {p_cell(g(row, f'{key}_p_uncorrected'))} | "
                f"{_t(g(row, f'{key}_t_corrected'))} | {p_cell(g(row, f'{key}_p_corrected'))} |"
            )
    return "\n".join(lines) + "\n"


def metrics_json(table: pd.DataFrame, facts: dict) -> dict:
    """cv.json: per experiment the per-fold mean and SD and the pooled value of balanced accuracy and
    AUROC, and the two p-values of balanced accuracy against the reference."""

    def r(v):
        return None if is_missing(v) else round(float(v), 6)

    out = {
        "reference": facts["reference"],
        "n": facts["n"],
        "folds": facts["folds"],
        "repeats": facts["repeats"],
        "experiments": {},
    }
    for _, row in table.iterrows():
        entry = {f"{key}_{part}": r(row[f"{key}_{part}"]) for key, _ in TESTED for part in ("mean", "sd", "pooled")}
        if row.reference is not True:
            entry |= {
                "balanced_accuracy_p_uncorrected": r(row.get("balanced_accuracy_p_uncorrected")),
                "balanced_accuracy_p_corrected": r(row.get("balanced_accuracy_p_corrected")),
            }
        out["experiments"][row.experiment] = entry
    return out


def folds_figure(folds: pd.DataFrame, table: pd.DataFrame, facts: dict, out) -> None:
    """cv.png: per experiment, each fold's balanced accuracy and AUROC as dots and their mean as a bar."""
    from PIL import Image, ImageDraw

    names = list(table.experiment)
    label_width, panel, gap, row_h, top = 250, 300, 30, 26, 60
    width, height = label_width + 2 * (panel + gap), top + row_h * len(names) + 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = figure_font(16), figure_font(12)
    draw.text(
        (10, 8),
        f"{facts['folds']} folds x {facts['repeats']} repeat(s), {facts['n']} train cases: each fold a "
        f"dot, the mean a bar; blue: reference {facts['reference']}",
        fill="black",
        font=font,
    )
    y_end = top + len(names) * row_h + 10
    for i, name in enumerate(names):
        draw.text((10, top + 12 + i * row_h - 7), name, fill="black", font=small)
    for j, (key, title) in enumerate(TESTED):
        x0 = label_width + j * (panel + gap)
        draw.text((x0, top - 22), title, fill="black", font=font)
        draw.rectangle([x0, top, x0 + panel, y_end], outline=(120, 120, 120))
        for tick in (0.0, 0.5, 1.0):
            draw.line([x0 + tick * panel, y_end, x0 + tick * panel, y_end + 4], fill="black")
            draw.text((x0 + tick * panel - 8, y_end + 6), f"{tick:g}", fill="black", font=small)
        for i, name in enumerate(names):
            y = top + 12 + i * row_h
            colour = (20, 20, 180) if name == facts["reference"] else (30, 30, 30)
            values = folds[folds.experiment == name][key].to_numpy(dtype=float)
            for v in values[np.isfinite(values)]:
                draw.ellipse([x0 + v * panel - 3, y - 3, x0 + v * panel + 3, y + 3], outline=colour)
            if np.isfinite(values).any():
                m = float(np.nanmean(values))
                draw.line([x0 + m * panel, y - 8, x0 + m * panel, y + 8], fill=(200, 40, 40), width=2)
    img.save(out, format="PNG")


def report_files(table: pd.DataFrame, folds: pd.DataFrame, facts: dict) -> dict:
    """The report's files, name -> a function writing it to a path: cv_table.md, cv_table.csv,
    cv_folds.csv, cv.json and cv.png (for ``csxa_data.atomic.write_files_atomic``)."""
    return {
        "cv_table.md": lambda path: path.write_text(markdown(table, folds, facts)),
        "cv_table.csv": lambda path: table.to_csv(path, index=False, float_format="%.8g"),
        "cv_folds.csv": lambda path: folds.to_csv(path, index=False, float_format="%.8g"),
        "cv.json": lambda path: path.write_text(
            json.dumps({**metrics_json(table, facts), "facts": facts}, indent=2) + "\n"
        ),
        "cv.png": lambda path: folds_figure(folds, table, facts, path),
    }


def cv_results(
    cv_dir: str | Path, experiments: dict, train_model: str, config: CompareParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read and summarise every experiment's out-of-fold predictions; returns the table, the
    per-fold rows and the facts."""
    loaded, reference = load_cv(Path(cv_dir), experiments, train_model, config)
    folds = per_fold(loaded)
    table, facts = summarise(loaded, folds, reference, config)
    return table, folds, facts
