"""Likely label errors: cases whose sheet class the models' out-of-fold predictions disagree with,
ranked by cleanlab (confident learning) from what cross-validation already wrote.

Each source (a network's or a landmark classifier's ``results/cv/NAME/oof.csv``) scores every train
case from models that never saw it; a case's probability is the mean over repeats and sources.
``cleanlab.rank.get_label_quality_scores`` orders the cases (lowest quality first) and
``cleanlab.filter.find_label_issues`` flags those it counts as likely wrong. Test cases are never
scored out of fold, so a flip in the test split is out of reach: the report says how many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.errors import CsxaError
from csxa_data.params import dataclass_from_section, require

CLASS_NAMES = {0: "asymptomatic", 1: "spondylosis"}


@dataclass(frozen=True)
class QualityParams:
    """The ``quality`` section: which cross-validation results to pool, and how many cases to show."""

    sources: list = field(default_factory=list)  # names under results/cv/ (each with an oof.csv)
    sheet_cases: int = 24

    @classmethod
    def from_dict(cls, data: dict | None) -> QualityParams:
        params = dataclass_from_section(cls, data, "quality")
        require(
            isinstance(params.sources, list)
            and bool(params.sources)
            and all(isinstance(s, str) and s for s in params.sources)
            and len(set(params.sources)) == len(params.sources),
            "quality.sources must be a list naming each cross-validation result to pool once (folders under "
            "results/cv)",
        )
        require(1 <= params.sheet_cases <= 200, "quality.sheet_cases must be within 1..200")
        return params


def pooled_probabilities(cv_dir: str | Path, sources: list[str]) -> pd.DataFrame:
    """One row per case scored out of fold: number, key, given label, p (spondylosis; the mean over
    repeats, then over sources) and how many sources scored it."""
    per_source = []
    for name in sources:
        path = Path(cv_dir) / name / "oof.csv"
        try:
            oof = pd.read_csv(path, dtype={"key": str})
        except FileNotFoundError:
            raise CsxaError("not found: run the cross-validation stages first (`dvc repro cv`)", path=path) from None
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise CsxaError(f"cannot read ({type(exc).__name__}: {str(exc)[:200]})", path=path) from None
        missing = {"key", "number", "label", "score"} - set(oof.columns)
        if missing:
            raise CsxaError(f"not a cross-validation oof.csv: no column(s) {sorted(missing)}", path=path)
        for column in ("number", "label", "score"):
            oof[column] = pd.to_numeric(oof[column], errors="coerce")
        bad = oof[oof[["number", "label", "score"]].isna().any(axis=1) | ~oof.label.isin([0, 1])]
        bad = bad if bad.empty else bad.head(1)
        if not bad.empty or not oof.score.between(0, 1).all():
            where = f"row {int(bad.index[0]) + 2}" if not bad.empty else "a score"
            raise CsxaError(
                f"{where}: number, label (0 or 1) and score (0..1) must be numbers: not a cross-validation oof.csv",
                path=path,
            )
        oof["number"] = oof.number.astype(int)
        scores = oof.groupby(["number", "key", "label"], as_index=False).score.mean()
        if scores.number.duplicated().any():
            raise CsxaError("a case appears with two labels or keys", path=path)
        per_source.append(scores.assign(source=name))
    frame = pd.concat(per_source)
    keys = frame.groupby("number").key.nunique()
    if (keys > 1).any():
        raise CsxaError(
            f"the sources give case(s) {keys[keys > 1].index.tolist()[:5]} different keys: they were not "
            "cross-validated on the same variants' samples",
            path=cv_dir,
        )
    labels = frame.groupby("number").label.nunique()
    if (labels > 1).any():
        raise CsxaError(
            f"the sources disagree on the label of case(s) {labels[labels > 1].index.tolist()[:5]}: "
            "they were not cross-validated on the same manifest",
            path=cv_dir,
        )
    pooled = frame.groupby(["number", "key", "label"], as_index=False).agg(
        p=("score", "mean"), sources=("source", "size")
    )
    return pooled.sort_values("number").reset_index(drop=True)


def rank_label_issues(pooled: pd.DataFrame) -> pd.DataFrame:
    """The cases ordered by cleanlab's label quality (self-confidence: the pooled probability of the
    given class), lowest first, with the suggested class and whether confident learning flags them."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = pooled.label.to_numpy(dtype=int)
    if len(set(labels)) < 2:
        raise CsxaError("every case scored out of fold has the same class: nothing to rank label issues against")
    p = np.clip(pooled.p.to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    pred_probs = np.stack([1 - p, p], axis=1)
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    flagged = find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate")
    ranked = pooled.assign(given=labels, suggested=pred_probs.argmax(axis=1), quality=quality, flagged=flagged)
    ranked = ranked.sort_values(["quality", "number"], kind="stable").reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked[["rank", "number", "key", "given", "suggested", "quality", "p", "flagged", "sources"]]


def injected_flips(release_root: str | Path) -> set[int] | None:
    """The cases whose sheet class ``csxa-data synth`` flipped (its ``faults.csv``), or None for a
    release without one."""
    from csxa_data.release.reader import injected_faults

    rows = injected_faults(release_root, "label_flip")
    numbers = [r["number"] or "" for r in rows] if rows is not None else None
    return None if numbers is None else {int(n) for n in numbers if n.isascii() and n.isdigit()}


def measured(ranked: pd.DataFrame, flips: set[int] | None, manifest: pd.DataFrame) -> dict:
    """Counts, and against the injected flips: precision and recall of the top k (k = the flips among
    the ranked cases), and of cleanlab's flagged set."""
    summary = {"cases_ranked": len(ranked), "flagged": int(ranked.flagged.sum())}
    if flips is None:
        return summary
    kept = set(manifest.number)
    reachable = flips & set(ranked.number)
    k = len(reachable)
    top = set(ranked.number.head(k)) if k else set()
    flagged = set(ranked.number[ranked.flagged])
    summary["truth"] = {
        "injected": len(flips),
        "in_test_split": len(flips & set(manifest.number[manifest.split == "test"])),
        "not_kept": len(flips - kept),
        "rankable": k,
        "k": k,
        "found_in_top_k": len(top & reachable),
        "precision_at_k": len(top & reachable) / k if k else None,
        "recall_at_k": len(top & reachable) / k if k else None,
        "flagged_precision": len(flagged & reachable) / len(flagged) if flagged else None,
        "flagged_recall": len(flagged & reachable) / k if k else None,
    }
    return summary


def label_issue_sheet(ranked: pd.DataFrame, manifest: pd.DataFrame, landmarks: pd.DataFrame, read_png, top: int):
    """The ``top`` lowest-quality cases, each film (positive) with its landmarks and a caption:
    case, given and suggested class, quality. ``read_png(name)`` gives a film's bytes."""
    from PIL import Image

    from csxa_data.release.images import decode_film, is_inverted
    from csxa_data.sheets import mark_points, tile_grid

    names = dict(zip(manifest.number, manifest.png_name))
    points = {n: dict(zip(g.label, zip(g.x, g.y))) for n, g in landmarks.groupby("number")}
    items = []
    for row in ranked.head(top).itertuples():
        try:
            grey, _ = decode_film(read_png(names[row.number])).grey()
            img = mark_points(Image.fromarray(255 - grey if is_inverted(grey) else grey), points.get(row.number, {}))
        except Exception:  # noqa: BLE001 - a film that cannot be shown is a grey tile, not a failed stage
            img = Image.new("L", (160, 160), 64)
        caption = f"#{row.rank} {row.number:04d}: {'AS'[row.given]}->{'AS'[row.suggested]} q {row.quality:.2f}"
        items.append((img, caption))
    key = "sheet -> models (A asymptomatic, S spondylosis), q label quality"
    rows = [
        (f"Likely label errors {i + 1}-{i + len(items[i : i + 6])}: {key}", items[i : i + 6])
        for i in range(0, len(items), 6)
    ]
    return tile_grid(rows or [("No case was scored out of fold", [])], 200)


def grey_and_red(page):
    """The sheet on a palette of 62 greys, the landmarks' red and the page's background: half the bytes
    git keeps for each version, with the dots still red."""
    from PIL import Image

    colours = [(v, v, v) for v in np.linspace(0, 255, 62).round().astype(int).tolist()]
    colours += [(230, 40, 40), (24, 24, 28)]
    palette = Image.new("P", (1, 1))
    palette.putpalette([c for colour in colours for c in colour] + [0] * 3 * (256 - len(colours)))
    return page.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE)


def report(summary: dict, sources: list[str], ranked: pd.DataFrame, flips: set[int] | None, top: int = 10) -> str:
    """``label_issues.md``: what was ranked, from what, how it measures against the truth, and the
    ``top`` cases most likely mislabelled."""
    lines = [
        "# Likely label errors",
        "",
        f"{summary['cases_ranked']} train cases scored out of fold by {len(sources)} sources "
        f"({', '.join(sources)}), probabilities pooled; ranked by cleanlab's label quality "
        f"(self-confidence), {summary['flagged']} flagged by confident learning.",
        "",
    ]
    truth = summary.get("truth")
    if truth:
        k = truth["k"]
        precision = "n/a" if truth["precision_at_k"] is None else f"{truth['precision_at_k']:.2f}"
        flagged = "n/a" if truth["flagged_precision"] is None else f"{truth['flagged_precision']:.2f}"
        flagged_recall = "n/a" if truth["flagged_recall"] is None else f"{truth['flagged_recall']:.2f}"
        lines += [
            f"Against the {truth['injected']} label flips the synthetic release injected: {truth['in_test_split']} "
            f"in the test split and {truth['not_kept']} in dropped cases (never scored out of fold), {k} rankable. "
            f"In the top {k}: {truth['found_in_top_k']} of them (precision and recall at k = {k}: {precision}). "
            f"Flagged set: precision {flagged}, recall {flagged_recall}.",
            "",
        ]
    header = ["rank", "case", "sheet says", "models say", "label quality", "flagged"]
    lines += [f"The {min(top, len(ranked))} cases most likely mislabelled:", ""]
    lines += ["| " + " | ".join(header + (["flipped by synth"] if flips is not None else [])) + " |"]
    lines += ["|" + "---|" * (len(header) + (flips is not None))]
    for row in ranked.head(top).itertuples():
        cells = [row.rank, f"{row.number:04d}", CLASS_NAMES[row.given], CLASS_NAMES[row.suggested]]
        cells += [f"{row.quality:.3f}", "yes" if row.flagged else "no"]
        cells += ["yes" if row.number in flips else "no"] if flips is not None else []
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Every ranked case: `label_issues.csv`; the top ones with their landmarks: `label_issues.png`."]
    return "\n".join(lines) + "\n"


def write_label_issues(
    cv_dir: str | Path,
    manifest_path: str | Path,
    landmarks_path: str | Path,
    release: str | Path,
    out: str | Path,
    params: QualityParams,
) -> dict:
    """Rank, measure and write ``label_issues.csv``, ``label_issues.json``, ``label_issues.md`` and
    ``label_issues.png`` into ``out`` (all or none); returns the summary."""
    import json

    from csxa_data.atomic import write_files_atomic
    from csxa_data.csvtext import read_csv_file
    from csxa_data.ingest.outputs import read_manifest
    from csxa_data.release.reader import PNG_SET, open_file_set

    manifest = read_manifest(manifest_path)
    landmarks = read_csv_file(landmarks_path, "landmarks table not found (run the ingest stage)")
    ranked = rank_label_issues(pooled_probabilities(cv_dir, params.sources))
    unknown = set(ranked.number) - set(manifest.number)
    if unknown:
        raise CsxaError(
            f"case(s) {sorted(unknown)[:5]} scored out of fold are not in the manifest: rerun cross-validation",
            path=manifest_path,
        )
    flips = injected_flips(release)
    summary = measured(ranked, flips, manifest)
    films = open_file_set(Path(release), PNG_SET)
    sheet = label_issue_sheet(ranked, manifest, landmarks, films.read, params.sheet_cases)
    table = ranked.assign(
        given=ranked.given.map(CLASS_NAMES),
        suggested=ranked.suggested.map(CLASS_NAMES),
        quality=ranked.quality.round(6),
        p=ranked.p.round(6),
    )
    write_files_atomic(
        out,
        {
            "label_issues.csv": lambda path: table.to_csv(path, index=False),
            "label_issues.json": lambda path: path.write_text(json.dumps(summary, indent=2) + "\n"),
            "label_issues.md": lambda path: path.write_text(report(summary, params.sources, ranked, flips)),
            "label_issues.png": lambda path: grey_and_red(sheet).save(path, format="PNG"),
        },
    )
    return summary
