"""What ingest writes and how it is read back: the six outputs, the validation report, and the
manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.atomic import atomic_path
from csxa_data.csvtext import read_csv_file, safe_table
from csxa_data.errors import CsxaError, conform
from csxa_data.ingest.duplicates import duplicates_sentences
from schemas import Manifest

OUTPUTS = (
    "manifest.csv",
    "landmarks.csv",
    "repairs.csv",
    "drops.csv",
    "validation.json",
    "validation.md",
    "duplicates.csv",
    "duplicates.png",
)


def validation_report(validation: dict) -> str:
    """The validation counts as a short Markdown report for people."""
    lines = [
        "# Ingest report",
        "",
        f"Release: `{validation['release']}`",
        "",
        "| source | in | kept | dropped |",
        "|---|---:|---:|---:|",
    ]
    for source, c in validation["sources"].items():
        lines.append(f"| {source} | {c['in']} | {c['kept']} | {c['dropped']} |")
    lines += ["", "Drops by rule:", ""]
    for source, rules in validation["drops_by_rule"].items():
        for rule, n in rules.items():
            lines.append(f"- {source} `{rule}`: {n}")
    lines += ["", "Repairs by rule:", ""]
    lines += [f"- `{rule}`: {n}" for rule, n in validation["repairs_by_rule"].items()] or ["- none"]
    kept = validation["kept"]
    lines += [
        "",
        f"Kept {kept['cases']} cases; by class (0 = asymptomatic, 1 = spondylosis): {kept['by_class']}; "
        f"by split and class: {kept['by_split_and_class']}; inverted films: {kept['inverted']}; "
        f"PNG modes: {kept['modes']}.",
        "",
    ]
    for entry in validation["md5"]:
        lines.append(f"md5 {entry['file']}: {entry['status']}")
    lines += [
        "",
        *duplicates_sentences(validation.get("near_duplicates")),
        "",
        "Pairs: `duplicates.csv`, `duplicates.png`.",
    ]
    return "\n".join(lines) + "\n"


def write_ingest(result: IngestResult, out: str | Path) -> Path:
    """Write the outputs into ``out`` through a temporary folder renamed into place. Text that
    came from the release is neutralised where a spreadsheet would run it as a formula."""
    out = Path(out)
    with atomic_path(out, directory=True, owns=OUTPUTS) as tmp:
        safe_table(result.manifest).to_csv(tmp / "manifest.csv", index=False)
        safe_table(result.landmarks).to_csv(tmp / "landmarks.csv", index=False, float_format="%.4f")
        safe_table(result.repairs).to_csv(tmp / "repairs.csv", index=False)
        safe_table(result.drops).to_csv(tmp / "drops.csv", index=False)
        (tmp / "validation.json").write_text(json.dumps(result.validation, indent=2, default=_json_default) + "\n")
        (tmp / "validation.md").write_text(validation_report(result.validation))
        safe_table(result.duplicates).to_csv(tmp / "duplicates.csv", index=False)
        if result.duplicate_sheet is not None:
            result.duplicate_sheet.save(tmp / "duplicates.png", format="PNG")
    return out


def write_failure(failure: NothingKept, out: str | Path) -> Path:
    """When nothing survived: write ``drops.csv``, ``repairs.csv`` and a ``validation.md`` saying so
    into ``out`` (replacing any earlier outputs, so no stale manifest is left beside them)."""
    out = Path(out)
    with atomic_path(out, directory=True, owns=OUTPUTS) as tmp:
        safe_table(failure.repairs).to_csv(tmp / "repairs.csv", index=False)
        safe_table(failure.drops).to_csv(tmp / "drops.csv", index=False)
        counts = failure.drops.groupby(["source", "rule"]).size()
        lines = ["# Ingest report: FAILED", "", f"{failure}", "", "| source | rule | items |", "|---|---|---:|"]
        lines += [f"| {source} | `{rule}` | {n} |" for (source, rule), n in counts.items()]
        (tmp / "validation.md").write_text("\n".join(lines) + "\n")
    return out


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _is_counts(value, depth: int = 1) -> bool:
    """A mapping of names to whole numbers (``depth`` 2: of names to such mappings)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return False
    if depth > 1:
        return all(_is_counts(v, depth - 1) for v in value.values())
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values())


def validation_problem(validation) -> str | None:
    """Why a ``validation.json`` read back is not ingest's report (the parts a dataset card and the
    build's reconciliation read), or None."""
    if not isinstance(validation, dict):
        return f"is a JSON {type(validation).__name__}, not ingest's report (an object)"
    md5 = validation.get("md5")
    kept = validation.get("kept")
    checks = {
        "release": isinstance(validation.get("release"), str),
        "synthetic": isinstance(validation.get("synthetic", False), bool),
        "md5": isinstance(md5, list)
        and all(
            isinstance(e, dict) and isinstance(e.get("file"), str) and isinstance(e.get("status"), str) for e in md5
        ),
        "sources": _is_counts(validation.get("sources"), 2),
        "drops_by_rule": _is_counts(validation.get("drops_by_rule"), 2),
        "repairs_by_rule": _is_counts(validation.get("repairs_by_rule")),
        "kept": isinstance(kept, dict)
        and _is_counts({"cases": kept.get("cases")})
        and _is_counts(kept.get("by_split_and_class")),
    }
    wrong = [key for key, ok in checks.items() if not ok]
    if wrong:
        return f"{wrong[0]!r} is missing or not as ingest writes it, so this is not ingest's report"
    return None


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The ingest manifest, checked against its contract."""

    frame = read_csv_file(path, "not found; run `csxa-data ingest` (or `dvc repro ingest`) first", dtype={"stem": str})
    if frame.empty:
        raise CsxaError("holds no cases (a header only); ingest writes one row per kept case", path=path)
    return conform(Manifest, frame, path)


@dataclass
class IngestResult:
    """What ingest decided: the tables it writes and the counts that reconcile them."""

    manifest: pd.DataFrame
    landmarks: pd.DataFrame
    repairs: pd.DataFrame
    drops: pd.DataFrame
    validation: dict
    duplicates: pd.DataFrame  # near-duplicate film pairs (duplicates.csv)
    duplicate_sheet: object = None  # a PIL image of the pairs (duplicates.png)


class NothingKept(CsxaError):
    """No case survived validation; carries the drops and repairs so that they can still be written."""

    def __init__(self, release_root: Path, repairs: list[dict], drops: list[dict]):
        self.repairs = pd.DataFrame(repairs, columns=["number", "field", "old", "new", "rule"])
        self.drops = pd.DataFrame(drops, columns=["source", "key", "number", "rule", "reason"])
        self.drops["number"] = self.drops.number.astype(float)
        self.top_reasons = top_reasons(self.drops)
        super().__init__(
            f"no case survived validation; top reasons: {self.top_reasons} (every drop is in "
            "drops.csv beside validation.md)",
            path=release_root,
        )


def top_reasons(drops: pd.DataFrame, n: int = 5) -> str:
    """The most frequent drop rules of the culprits (not the items dropped along), with counts."""
    own = drops[~drops.rule.str.endswith("_dropped")]
    counts = own.groupby(["source", "rule"]).size().sort_values(ascending=False, kind="stable")
    text = ", ".join(f"{source} {rule} x{count}" for (source, rule), count in counts.head(n).items())
    return text + (f", and {len(counts) - n} more rules" if len(counts) > n else "") if text else "none"
