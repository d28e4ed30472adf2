"""Ingest: validate the release against the contracts in ``schemas/``, repair what the seed paper
repaired, drop what cannot be used (each with its rule), reconcile the counts and split by case.

Every sheet row, PNG and JSON ends up exactly once in ``manifest.csv`` (kept) or ``drops.csv``;
every value changed is a row of ``repairs.csv``. Ingest refuses to finish if the counts do not
reconcile. Each PNG is decoded once, in worker processes.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from csxa_data.errors import CsxaError
from csxa_data.ingest.duplicates import (
    apply_policy,
    duplicate_sheet,
    duplicates_summary,
    duplicates_table,
    injected_duplicates,
    near_duplicate_pairs,
)
from csxa_data.ingest.examine import examine_all
from csxa_data.ingest.outputs import IngestResult, NothingKept
from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.reconcile import check_contracts, reconcile
from csxa_data.ingest.sheet import SHEET_MEASURES, cell_text, sheet_numbers, sheet_problems, type_sheet
from csxa_data.params import worker_count
from csxa_data.release.names import parse_stem, stem_problem
from csxa_data.release.reader import JSON_SET, PNG_SET, XLSX_NAME, FileSet, ReleaseParams, open_release
from csxa_data.splits import split_cases


class Ledger:
    """Drops and repairs as they are decided, one row each."""

    def __init__(self):
        self.drops: list[dict] = []
        self.repairs: list[dict] = []

    def drop(self, source: str, key: str, number, rule: str, reason: str) -> None:
        self.drops.append({"source": source, "key": key, "number": number, "rule": rule, "reason": reason})

    def repair(self, number: int, field_name: str, old, new, rule: str) -> None:
        self.repairs.append(
            {"number": int(number), "field": field_name, "old": cell_text(old), "new": cell_text(new), "rule": rule}
        )


# --- the files ---------------------------------------------------------------------------------


def usable_files(files: FileSet, suffix: str, source: str, ledger: Ledger) -> dict[int, str]:
    """Case number -> file name for the set's well-named files; every other file is dropped."""
    by_number: dict[int, list[str]] = {}
    for key, rule, reason in files.skipped:
        parsed = parse_stem(PurePosixPath(key.split(" (copy ")[0]).stem) if rule == "duplicate_case_file" else None
        ledger.drop(source, key, parsed[0] if parsed else np.nan, rule, reason)
    for member in files:
        if not member.name.lower().endswith(suffix):
            ledger.drop(
                source, member.name, np.nan, f"not_{suffix[1:]}", f"{member.location}: not a {suffix} file name"
            )
            continue
        problem = stem_problem(member.stem)
        if problem:
            number = parse_stem(member.stem)[0] if parse_stem(member.stem) else np.nan
            ledger.drop(source, member.name, number, "bad_file_name", f"{member.location}: {problem}")
            continue
        by_number.setdefault(parse_stem(member.stem)[0], []).append(member.name)
    usable = {}
    for number, names in by_number.items():
        if len(names) > 1:
            for name in names:
                ledger.drop(
                    source,
                    name,
                    number,
                    "duplicate_case_file",
                    f"{files.set_name}: case {number:04d} has several files {names}; the join is ambiguous",
                )
        else:
            usable[number] = names[0]
    return usable


# --- the whole release -------------------------------------------------------------------------


def run_ingest(
    release_root: str | Path,
    params: IngestParams,
    config: ReleaseParams | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> IngestResult:
    """Validate, repair, reconcile and split a release; nothing is written."""
    config = config or ReleaseParams()
    release = open_release(release_root, config)
    ledger = Ledger()
    raw = release.columns
    measures = {extra: sheet_numbers(raw[extra]) for extra in SHEET_MEASURES if extra in raw.columns}
    typed = type_sheet(raw, config, params)
    problems = sheet_problems(typed, raw)

    # sheet rows that cannot be joined or classified
    rows: dict[int, int] = {}  # case number -> row index
    dropped_rows: dict[int, str] = {}  # case number -> rule, for rows that were valid enough to name one
    for index, row in typed.iterrows():
        issue = problems.get(index, {})
        key, number = f"row {int(row.excel_row)}", row.number
        if "number" in issue:
            rule = "sheet_number_duplicated" if "appears in rows" in issue["number"] else "sheet_number_invalid"
            ledger.drop(
                "sheet",
                key,
                number if rule == "sheet_number_duplicated" else np.nan,
                rule,
                f"{XLSX_NAME}: {key}: Number {issue['number']}",
            )
            if rule == "sheet_number_duplicated":
                dropped_rows[int(number)] = rule
        elif "label" in issue:
            ledger.drop(
                "sheet",
                key,
                number,
                "sheet_label_invalid",
                f"{XLSX_NAME}: {key}: class {issue['label']} (release.label_codes: {sorted(config.label_codes)})",
            )
            dropped_rows[int(number)] = "sheet_label_invalid"
        else:
            rows[int(number)] = index

    pngs = usable_files(release.pngs, ".png", "png", ledger)
    jsons = usable_files(release.jsons, ".json", "json", ledger)

    jobs = []
    for number in sorted(set(rows) | set(pngs) | set(jsons)):
        row, png, jsn = rows.get(number), pngs.get(number), jsons.get(number)
        missing = [what for what, have in (("sheet row", row), ("PNG", png), ("JSON", jsn)) if have is None]
        if missing and row is None and png is None and jsn is None:
            continue
        if not missing and png[:-4] != jsn[:-5]:
            reason = f"case {number:04d}: PNG {png} and JSON {jsn} have different stems"
            _drop_case(ledger, typed, number, row, png, jsn, "png_json_stem_mismatch", reason)
            continue
        if missing:
            rule = "no_image" if png is None else ("no_sheet_row" if row is None else "no_json")
            reason = f"case {number:04d}: no {' and no '.join(missing)}"
            if number in dropped_rows:
                reason += f" (its sheet row was dropped: {dropped_rows[number]})"
            _drop_case(ledger, typed, number, row, png, jsn, rule, reason)
            continue
        jobs.append((number, png, jsn, params))

    workers = worker_count(workers, len(jobs))
    facts = examine_all(release, jobs, workers, progress)

    kept, landmark_rows = [], []
    for number, png, jsn, _ in jobs:
        fact, row = facts[number], rows[number]
        if "png_problem" in fact:
            _drop_case(
                ledger,
                typed,
                number,
                row,
                png,
                jsn,
                fact.get("png_rule", "png_unreadable"),
                f"{PNG_SET}/{png}: {fact['png_problem']}",
                culprit="png",
            )
            continue
        if "json_problem" in fact:
            _drop_case(
                ledger,
                typed,
                number,
                row,
                png,
                jsn,
                "json_invalid",
                f"{JSON_SET}/{jsn}: {fact['json_problem']}",
                culprit="json",
            )
            continue
        _, gender, age = parse_stem(png[:-4])
        sheet = typed.loc[row]
        if sheet.age != age:
            ledger.repair(number, "age", raw.at[row, "age"], age, "age_from_file_name")
        if sheet.gender != gender:
            ledger.repair(number, "gender", raw.at[row, "gender"], gender, "gender_from_file_name")
        for repair in fact["repairs"]:
            ledger.repair(number, repair["field"], repair["old"], repair["new"], repair["rule"])
        x0, y0, x1, y1 = fact["box"]
        record = {
            "number": number,
            "stem": png[:-4],
            "png_name": png,
            "gender": gender,
            "age": age,
            "label": int(sheet.label),
            "width": fact["width"],
            "height": fact["height"],
            "box_x0": x0,
            "box_y0": y0,
            "box_x1": x1,
            "box_y1": y1,
            "inverted": fact["inverted"],
            "mode": fact["mode"],
            "channels_equal": fact["channels_equal"],
        }
        for extra, check in SHEET_MEASURES.items():
            if extra in measures:
                record[extra] = check(measures[extra].at[row])
                if record[extra] is None and cell_text(raw.at[row, extra]).strip() != "":  # an error cell, a date, text
                    ledger.repair(number, extra, raw.at[row, extra], "", f"{extra}_invalid_blanked")
        kept.append(record)
        landmark_rows += [
            {"number": number, "label": label, "x": x, "y": y} for label, (x, y) in fact["points"].items()
        ]

    if not kept:
        raise NothingKept(release.root, ledger.repairs, ledger.drops)
    pairs, hash_problems = near_duplicate_pairs(kept, facts, params.near_duplicate_bits)
    stems = {r["number"]: r["stem"] for r in kept}
    by_rule = split_cases(
        pd.Series([r["number"] for r in kept]), pd.Series([r["label"] for r in kept]), params.test_fraction, params.seed
    )
    rule_split = dict(zip((r["number"] for r in kept), by_rule))
    decided = apply_policy(params.near_duplicates, pairs, rule_split)
    if decided.dropped:
        files = {number: (png, jsn) for number, png, jsn, _ in jobs}
        for number, (twin, distance, first) in sorted(decided.dropped.items()):
            reason = f"case {number:04d}: a near-duplicate film of case {twin:04d} ({distance} of 256 hash bits differ)"
            if twin != first:
                reason += f", in the group of case {first:04d} (kept)"
            _drop_case(ledger, typed, number, rows[number], *files[number], "near_duplicate", reason)
        kept = [r for r in kept if r["number"] not in decided.dropped]
        landmark_rows = [r for r in landmark_rows if r["number"] not in decided.dropped]
    manifest = pd.DataFrame(kept)
    manifest.insert(6, "split", [decided.split.get(n, rule_split[n]) for n in manifest.number])
    for split in ("train", "test"):
        if not (manifest.split == split).any():
            raise CsxaError(
                f"ingest.test_fraction {params.test_fraction:g} leaves the {split} split of these "
                f"{len(manifest)} cases empty; nothing was written",
                path=release_root,
            )
    landmarks = pd.DataFrame(landmark_rows, columns=["number", "label", "x", "y"])
    repairs = pd.DataFrame(ledger.repairs, columns=["number", "field", "old", "new", "rule"])
    drops = pd.DataFrame(ledger.drops, columns=["source", "key", "number", "rule", "reason"])
    drops["number"] = drops.number.astype(float)
    validation = reconcile(release, manifest, drops, repairs)
    duplicates = duplicates_table(pairs, rule_split, decided, stems)
    validation["near_duplicates"] = duplicates_summary(
        params.near_duplicates,
        params.near_duplicate_bits,
        duplicates,
        decided,
        hash_problems,
        injected_duplicates(release.root),
        set(stems),
    )
    check_contracts(manifest, landmarks, repairs, drops, duplicates)
    sheet = duplicate_sheet(duplicates, lambda case: release.pngs.read(pngs[case]), params.near_duplicate_bits)
    return IngestResult(manifest, landmarks, repairs, drops, validation, duplicates, sheet)


def _drop_case(
    ledger: Ledger, typed: pd.DataFrame, number: int, row, png, jsn, rule: str, reason: str, culprit: str | None = None
) -> None:
    """Drop every item of a case; the culprit carries the rule, the others point to it."""
    for source, key in (
        ("sheet", None if row is None else f"row {typed.at[row, 'excel_row']}"),
        ("png", png),
        ("json", jsn),
    ):
        if key is None:
            continue
        own = culprit is None or culprit == source
        ledger.drop(source, key, number, rule if own else f"{culprit}_dropped", reason)
