"""Ingest: validate the release against the contracts in ``schemas/``, repair what the seed paper
repaired, drop what cannot be used (each with its rule), reconcile the counts and split by case.

Every sheet row, PNG and JSON ends up exactly once in ``manifest.csv`` (kept) or ``drops.csv``;
every value changed is a row of ``repairs.csv``. Ingest refuses to finish if the counts do not
reconcile. Each PNG is decoded once, in worker processes.
"""

from __future__ import annotations

import hashlib

import json
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from csxa_data.atomic import atomic_path
from csxa_data.csvtext import safe_table
from csxa_data.errors import CsxaError
from csxa_data.release.images import DEFAULT_MAX_PIXELS, ImageProblem, decode_film, is_inverted
from csxa_data.release.landmarks import LandmarkProblem, parse_landmarks
from csxa_data.release.names import parse_stem, stem_problem
from csxa_data.params import worker_count
from csxa_data.release.reader import (JSON_SET, PNG_SET, SYNTHETIC_CREATOR, XLSX_NAME, FileSet, Release, ReleaseConfig,
                                      open_file_set, open_release)

MAX_JSON_BYTES = 64 * 2**20   # a LabelMe file, its base64 imageData included
MAX_JSON_VALUES = 100_000     # objects, lists and comma-separated items in one LabelMe file
OUTPUTS = ("manifest.csv", "landmarks.csv", "repairs.csv", "drops.csv", "validation.json", "validation.md")


@dataclass(frozen=True)
class IngestParams:
    """The ``ingest`` section of params.yaml."""

    release: str = "data/synthetic/release"
    seed: int = 2398                  # split salt: 3,722 / 1,241 on the 5,000-case synthetic release
    test_fraction: float = 0.25
    max_landmark_spread: float = 2.0     # px: wider polygons are an error, not a repair
    duplicate_tolerance: float = 0.5     # px: duplicated labels closer than this are one landmark
    gender_codes: dict = field(default_factory=lambda: {0: 0, 1: 1})  # sheet value -> file-name digit
    max_film_pixels: int = DEFAULT_MAX_PIXELS  # a film with more pixels is dropped (png_too_large), not decoded

    @classmethod
    def from_dict(cls, data: dict | None) -> "IngestParams":
        """From the ``ingest`` section; unknown keys are an error."""
        from csxa_data.params import dataclass_from_section, require

        params = dataclass_from_section(cls, data, "ingest")
        require(0 < params.test_fraction < 1, f"ingest.test_fraction must be within (0, 1), not {params.test_fraction}")
        require(params.max_landmark_spread >= 0 and params.duplicate_tolerance >= 0,
                "ingest.max_landmark_spread and ingest.duplicate_tolerance must not be negative")
        require(bool(params.gender_codes) and all(v in (0, 1) and not isinstance(v, bool)
                                                  for v in params.gender_codes.values()),
                "ingest.gender_codes must map the sheet's gender values to the file-name digits 0 and 1")
        require(isinstance(params.max_film_pixels, int) and not isinstance(params.max_film_pixels, bool)
                and params.max_film_pixels >= 1, "ingest.max_film_pixels must be a whole number of pixels, at least 1")
        return params


class Ledger:
    """Drops and repairs as they are decided, one row each."""

    def __init__(self):
        self.drops: list[dict] = []
        self.repairs: list[dict] = []

    def drop(self, source: str, key: str, number, rule: str, reason: str) -> None:
        self.drops.append({"source": source, "key": key, "number": number, "rule": rule, "reason": reason})

    def repair(self, number: int, field_name: str, old, new, rule: str) -> None:
        self.repairs.append({"number": int(number), "field": field_name, "old": _text(old), "new": _text(new),
                             "rule": rule})


def _text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- the sheet ---------------------------------------------------------------------------------

def _coded(raw: pd.Series, codes: dict) -> pd.Series:
    """Map sheet codes to the toolkit's (keys compared as text, so 1, 1.0 and '1' agree)."""
    table = {_text(k).strip().lower(): float(v) for k, v in codes.items()}
    return raw.map(lambda v: table.get(_text(v).strip().lower(), np.nan))


def _numeric(raw: pd.Series) -> pd.Series:
    """Cells as numbers, null where empty or not a number; an Excel TRUE/FALSE is not a number
    (pandas would read it as 1/0, and a TRUE in Number would then collide with case 1)."""
    return pd.to_numeric(raw.map(lambda v: None if isinstance(v, (bool, np.bool_)) else v),
                         errors="coerce").astype(float)


def curvature_code(number: float) -> int | None:
    """The sheet's curvature code (1 lordotic .. 5 kyphotic) from a cell read by ``_numeric``, or None."""
    return int(number) if np.isfinite(number) and number.is_integer() and 1 <= number <= 5 else None


def mm_per_pixel(number: float) -> float | None:
    """The sheet's pixel equivalent (mm per pixel, positive and under 10) from ``_numeric``, or None."""
    return float(number) if 0 < number < 10 else None


# optional sheet columns carried into the manifest, each blanked (and the repair logged) when invalid
SHEET_MEASURES = {"curvature": curvature_code, "pixel_equivalent": mm_per_pixel}


def type_sheet(columns: pd.DataFrame, config: ReleaseConfig, params: IngestParams) -> pd.DataFrame:
    """The sheet's key columns as numbers (null where a cell is empty, not a number or not a code)."""
    return pd.DataFrame({
        "excel_row": columns.excel_row.astype("int64"),
        "number": _numeric(columns.number),
        "gender": _coded(columns.gender, params.gender_codes),
        "age": _numeric(columns.age),
        "label": _coded(columns.label, config.label_codes),
    }, index=columns.index)


def sheet_problems(typed: pd.DataFrame, raw: pd.DataFrame) -> dict[int, dict[str, str]]:
    """Row index -> {column: what is wrong}, from a lazy validation against ``SheetRows``."""
    import pandera.pandas as pa

    from schemas.sheet import SheetRows

    try:
        SheetRows.validate(typed, lazy=True)
        return {}
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    problems: dict[int, dict[str, str]] = {}
    for case in cases.itertuples():
        if case.index is None or pd.isna(case.index):
            continue
        index, column = int(case.index), str(case.column)
        value = raw.at[index, column] if column in raw.columns else case.failure_case
        if case.check == "not_nullable":
            text = "is empty" if _text(value).strip() == "" else f"{_text(value)!r} is not valid"
        elif case.check == "field_uniqueness":
            rows = typed.excel_row[typed.number == typed.at[index, "number"]].tolist()
            text = f"{_text(value)} appears in rows {rows}"
        else:
            text = f"{_text(value)!r} fails {case.check}"
        problems.setdefault(index, {}).setdefault(column, text)
    return problems


# --- the files ---------------------------------------------------------------------------------

def usable_files(files: FileSet, suffix: str, source: str, ledger: Ledger) -> dict[int, str]:
    """Case number -> file name for the set's well-named files; every other file is dropped."""
    by_number: dict[int, list[str]] = {}
    for key, rule, reason in files.skipped:
        parsed = parse_stem(PurePosixPath(key.split(" (copy ")[0]).stem) if rule == "duplicate_case_file" else None
        ledger.drop(source, key, parsed[0] if parsed else np.nan, rule, reason)
    for member in files:
        if not member.name.lower().endswith(suffix):
            ledger.drop(source, member.name, np.nan, f"not_{suffix[1:]}",
                        f"{member.location}: not a {suffix} file name")
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
                ledger.drop(source, name, number, "duplicate_case_file",
                            f"{files.set_name}: case {number:04d} has several files {names}; the join is ambiguous")
        else:
            usable[number] = names[0]
    return usable


# --- one case (in a worker) --------------------------------------------------------------------

_SETS: tuple[FileSet, FileSet] | None = None


def _open_sets(root: str) -> None:
    global _SETS
    _SETS = (open_file_set(Path(root), PNG_SET), open_file_set(Path(root), JSON_SET))


def examine_film(png_bytes: bytes, params: IngestParams) -> dict:
    """Decode the film once; returns its facts (size, mode, inversion) or its problem."""
    try:
        film = decode_film(png_bytes, params.max_film_pixels)
    except ImageProblem as exc:
        return {"png_problem": str(exc), "png_rule": exc.rule}
    grey, channels_equal = film.grey()
    height, width = grey.shape
    return {"width": width, "height": height, "mode": film.mode, "channels_equal": channels_equal,
            "inverted": is_inverted(grey)}


def json_size_problem(size: int) -> str | None:
    """Why a LabelMe file of ``size`` bytes is not parsed, or None."""
    if size > MAX_JSON_BYTES:
        return f"{size:,} bytes, over the {MAX_JSON_BYTES:,} a LabelMe file may have (the release's are under 1 MB); not parsed"
    return None


def examine_landmarks(json_bytes: bytes, facts: dict, params: IngestParams) -> dict:
    """Check a case's LabelMe landmarks against its film's ``facts``; returns the facts with the
    points, box and repairs added, or with the problem."""
    width, height = facts["width"], facts["height"]
    too_big = json_size_problem(len(json_bytes))
    if too_big:
        return {**facts, "json_problem": too_big}
    # parsing builds an object per value: a few MB of "{}," would take gigabytes; count them first
    # (",", "[" and "{" never occur in base64 imageData, so this is one cheap pass over the bytes)
    values = json_bytes.count(b",") + json_bytes.count(b"[") + json_bytes.count(b"{")
    if values > MAX_JSON_VALUES:
        return {**facts, "json_problem": f"holds over {MAX_JSON_VALUES:,} JSON values (a LabelMe file of the "
                                         "release has a few hundred); not parsed"}
    try:
        document = json.loads(json_bytes.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError covers JSONDecodeError
        return {**facts, "json_problem": f"JSON does not parse ({type(exc).__name__}: {str(exc)[:200]})"}
    try:
        points, repairs = parse_landmarks(document, width, height, max_spread=params.max_landmark_spread,
                                          duplicate_tolerance=params.duplicate_tolerance)
    except LandmarkProblem as exc:
        return {**facts, "json_problem": str(exc)}
    for key, actual in (("imageWidth", width), ("imageHeight", height)):
        if document.get(key) != actual:
            repairs.append({"field": key, "old": document.get(key), "new": actual, "rule": "json_size_from_png"})
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    return {**facts, "points": points, "repairs": repairs,
            "box": (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))}


def _examine_job(job: tuple[int, str, str, IngestParams]) -> tuple[int, dict]:
    number, png_name, json_name, params = job
    pngs, jsons = _SETS
    try:
        png_bytes = pngs.read(png_name)
    except CsxaError as exc:
        return number, {"png_problem": f"cannot be read ({exc})"}
    facts = {}
    try:
        facts = examine_film(png_bytes, params)
        if "png_problem" in facts:
            return number, facts
        too_big = json_size_problem(jsons.declared_size(json_name))  # before a byte of it is read
        if too_big:
            return number, {**facts, "json_problem": too_big}
        try:
            json_bytes = jsons.read(json_name)
        except CsxaError as exc:
            return number, {**facts, "json_problem": f"cannot be read ({exc})"}
        return number, examine_landmarks(json_bytes, facts, params)
    except Exception as exc:  # one hostile file must not stop the release; it is dropped with the reason
        return number, {**facts, "json_problem": f"cannot be examined ({type(exc).__name__}: {str(exc)[:200]})"}


# --- split -------------------------------------------------------------------------------------

def case_draw(number: int, salt: int) -> float:
    """A case's fixed position in [0, 1): a keyed hash of its number and the salt, nothing else."""
    digest = hashlib.blake2b(str(int(number)).encode(), digest_size=8, key=str(int(salt)).encode()).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_cases(numbers: pd.Series, labels: pd.Series, test_fraction: float, seed: int) -> pd.Series:
    """'train'/'test' per case: test where the case's keyed hash (:func:`case_draw`, salt ``seed``)
    falls below ``test_fraction``. Each case's side depends on its own number alone, so a new
    release version that adds or removes cases moves no other case between train and test; each
    class is split in the same proportion (stratified in expectation, within sampling error)."""
    draws = numbers.map(lambda n: case_draw(n, seed))
    return pd.Series(np.where(draws < test_fraction, "test", "train"), index=numbers.index, dtype=object)


def find_split_salt(numbers: pd.Series, labels: pd.Series, test_fraction: float, start: int = 0,
                    tries: int = 100_000) -> int:
    """The first salt from ``start`` whose split puts exactly round(n x test_fraction) cases of each
    class in test: searched once for a release, then frozen in ``ingest.seed``."""
    for salt in range(start, start + tries):
        split = split_cases(numbers, labels, test_fraction, salt)
        if all(int(((split == "test") & (labels == label)).sum()) == round(int((labels == label).sum()) * test_fraction)
               for label in labels.unique()):
            return salt
    raise CsxaError(f"no salt in {start}..{start + tries - 1} splits every class exactly; keep the nearest")


# --- the whole release -------------------------------------------------------------------------

@dataclass
class IngestResult:
    """What ingest decided: the tables it writes and the counts that reconcile them."""

    manifest: pd.DataFrame
    landmarks: pd.DataFrame
    repairs: pd.DataFrame
    drops: pd.DataFrame
    validation: dict


def _examine_all(release: Release, jobs: list, workers: int, progress: bool) -> dict[int, dict]:
    from tqdm import tqdm

    if workers == 1 or len(jobs) < 2:
        global _SETS
        _SETS = (release.pngs, release.jsons)
        results = map(_examine_job, jobs)
        pool = None
    else:
        pool = get_context("fork").Pool(workers, initializer=_open_sets, initargs=(str(release.root),))
        results = pool.imap(_examine_job, jobs, chunksize=8)
    try:
        return dict(tqdm(results, total=len(jobs), desc="ingest", unit="case", disable=not progress))
    finally:
        if pool is not None:
            pool.close()
            pool.join()


def run_ingest(release_root: str | Path, params: IngestParams, config: ReleaseConfig | None = None, *,
               workers: int | None = None, progress: bool = True) -> IngestResult:
    """Validate, repair, reconcile and split a release; nothing is written."""
    config = config or ReleaseConfig()
    release = open_release(release_root, config)
    ledger = Ledger()
    raw = release.columns
    measures = {extra: _numeric(raw[extra]) for extra in SHEET_MEASURES if extra in raw.columns}
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
            ledger.drop("sheet", key, number if rule == "sheet_number_duplicated" else np.nan, rule,
                        f"{XLSX_NAME}: {key}: Number {issue['number']}")
            if rule == "sheet_number_duplicated":
                dropped_rows[int(number)] = rule
        elif "label" in issue:
            ledger.drop("sheet", key, number, "sheet_label_invalid",
                        f"{XLSX_NAME}: {key}: class {issue['label']} (release.label_codes: {sorted(config.label_codes)})")
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
    facts = _examine_all(release, jobs, workers, progress)

    kept, landmark_rows = [], []
    for number, png, jsn, _ in jobs:
        fact, row = facts[number], rows[number]
        if "png_problem" in fact:
            _drop_case(ledger, typed, number, row, png, jsn, fact.get("png_rule", "png_unreadable"),
                       f"{PNG_SET}/{png}: {fact['png_problem']}", culprit="png")
            continue
        if "json_problem" in fact:
            _drop_case(ledger, typed, number, row, png, jsn, "json_invalid",
                       f"{JSON_SET}/{jsn}: {fact['json_problem']}", culprit="json")
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
        record = {"number": number, "stem": png[:-4], "png_name": png, "gender": gender, "age": age, "label": int(sheet.label),
                  "width": fact["width"], "height": fact["height"], "box_x0": x0, "box_y0": y0, "box_x1": x1,
                  "box_y1": y1, "inverted": fact["inverted"], "mode": fact["mode"],
                  "channels_equal": fact["channels_equal"]}
        for extra, check in SHEET_MEASURES.items():
            if extra in measures:
                record[extra] = check(measures[extra].at[row])
                if record[extra] is None and _text(raw.at[row, extra]).strip() != "":  # an error cell, a date, text
                    ledger.repair(number, extra, raw.at[row, extra], "", f"{extra}_invalid_blanked")
        kept.append(record)
        landmark_rows += [{"number": number, "label": label, "x": x, "y": y}
                          for label, (x, y) in fact["points"].items()]

    if not kept:
        raise NothingKept(release, ledger)
    manifest = pd.DataFrame(kept)
    manifest.insert(6, "split", split_cases(manifest.number, manifest.label, params.test_fraction, params.seed))
    for split in ("train", "test"):
        if not (manifest.split == split).any():
            raise CsxaError(f"ingest.test_fraction {params.test_fraction:g} leaves the {split} split of these "
                            f"{len(manifest)} cases empty; nothing was written", path=release_root)
    landmarks = pd.DataFrame(landmark_rows, columns=["number", "label", "x", "y"])
    repairs = pd.DataFrame(ledger.repairs, columns=["number", "field", "old", "new", "rule"])
    drops = pd.DataFrame(ledger.drops, columns=["source", "key", "number", "rule", "reason"])
    drops["number"] = drops.number.astype(float)
    validation = reconcile(release, manifest, drops, repairs)
    _check_contracts(manifest, landmarks, repairs, drops)
    return IngestResult(manifest, landmarks, repairs, drops, validation)


class NothingKept(CsxaError):
    """No case survived validation; carries the drops and repairs so that they can still be written."""

    def __init__(self, release: Release, ledger: Ledger):
        self.repairs = pd.DataFrame(ledger.repairs, columns=["number", "field", "old", "new", "rule"])
        self.drops = pd.DataFrame(ledger.drops, columns=["source", "key", "number", "rule", "reason"])
        self.drops["number"] = self.drops.number.astype(float)
        self.top_reasons = top_reasons(self.drops)
        super().__init__(f"no case survived validation; top reasons: {self.top_reasons} (every drop is in "
                         "drops.csv beside validation.md)", path=release.root)


def top_reasons(drops: pd.DataFrame, n: int = 5) -> str:
    """The most frequent drop rules of the culprits (not the items dropped along), with counts."""
    own = drops[~drops.rule.str.endswith("_dropped")]
    counts = own.groupby(["source", "rule"]).size().sort_values(ascending=False, kind="stable")
    text = ", ".join(f"{source} {rule} x{count}" for (source, rule), count in counts.head(n).items())
    return text + (f", and {len(counts) - n} more rules" if len(counts) > n else "") if text else "none"


def _drop_case(ledger: Ledger, typed: pd.DataFrame, number: int, row, png, jsn, rule: str, reason: str,
               culprit: str | None = None) -> None:
    """Drop every item of a case; the culprit carries the rule, the others point to it."""
    for source, key in (("sheet", None if row is None else f"row {typed.at[row, 'excel_row']}"),
                        ("png", png), ("json", jsn)):
        if key is None:
            continue
        own = culprit is None or culprit == source
        ledger.drop(source, key, number, rule if own else f"{culprit}_dropped", reason)


def reconcile(release: Release, manifest: pd.DataFrame, drops: pd.DataFrame, repairs: pd.DataFrame) -> dict:
    """Counts in and out per source, per rule, class and split; refuses if anything is unaccounted for."""
    inputs = {"sheet": len(release.columns), "png": len(release.pngs) + len(release.pngs.skipped),
              "json": len(release.jsons) + len(release.jsons.skipped)}
    sources = {}
    for source, count in inputs.items():
        dropped = drops[drops.source == source]
        if dropped.key.duplicated().any():
            twice = dropped.key[dropped.key.duplicated()].tolist()
            raise CsxaError(f"counts do not reconcile: {source} item(s) {twice} dropped twice")
        sources[source] = {"in": count, "kept": len(manifest), "dropped": len(dropped)}
        if count != len(manifest) + len(dropped):
            raise CsxaError(f"counts do not reconcile for {source}: {count} in, {len(manifest)} kept, "
                            f"{len(dropped)} dropped")
    by_split_class = manifest.groupby(["split", "label"]).size()
    return {
        "release": str(release.root),
        # written by csxa-data synth: its workbook author, and its faults.csv beside the release (a
        # dataset card then says "no patient data"; anything short of both is an unverified copy)
        "synthetic": release.sheet.attrs.get("creator") == SYNTHETIC_CREATOR
                     and (release.root.parent / "faults.csv").is_file(),
        "md5": release.checksums.to_dict("records"),
        "sources": sources,
        "drops_by_rule": {s: drops[drops.source == s].rule.value_counts().sort_index().to_dict() for s in inputs},
        "repairs_by_rule": repairs.rule.value_counts().sort_index().to_dict(),
        "kept": {
            "cases": len(manifest),
            "by_class": {str(k): int(v) for k, v in manifest.label.value_counts().sort_index().items()},
            "by_split": {str(k): int(v) for k, v in manifest.split.value_counts().sort_index().items()},
            "by_split_and_class": {f"{s}/{c}": int(n) for (s, c), n in by_split_class.items()},
            "inverted": int(manifest.inverted.sum()),
            "modes": {str(k): int(v) for k, v in manifest["mode"].value_counts().sort_index().items()},
            "channels_unequal": int((~manifest.channels_equal).sum()),
        },
    }


def _check_contracts(manifest, landmarks, repairs, drops) -> None:
    """Our own outputs must satisfy the published contracts; a failure here is a bug, not bad data."""
    import pandera.pandas as pa

    from schemas import Drops, Landmarks, Manifest, Repairs

    for name, contract, table in (("manifest", Manifest, manifest), ("landmarks", Landmarks, landmarks),
                                  ("repairs", Repairs, repairs), ("drops", Drops, drops)):
        try:
            contract.validate(table, lazy=True)
        except pa.errors.SchemaErrors as exc:
            first = exc.failure_cases.iloc[0]
            raise CsxaError(f"internal error: the {name} table breaks its own contract schemas.{contract.__name__} "
                            f"(column {first['column']!r}, check {first['check']!r}, value {first['failure_case']!r}); "
                            "please report it with the release's drops.csv") from None


def validation_report(validation: dict) -> str:
    """The validation counts as a short Markdown report for people."""
    lines = ["# Ingest report", "", f"Release: `{validation['release']}`", "",
             "| source | in | kept | dropped |", "|---|---:|---:|---:|"]
    for source, c in validation["sources"].items():
        lines.append(f"| {source} | {c['in']} | {c['kept']} | {c['dropped']} |")
    lines += ["", "Drops by rule:", ""]
    for source, rules in validation["drops_by_rule"].items():
        for rule, n in rules.items():
            lines.append(f"- {source} `{rule}`: {n}")
    lines += ["", "Repairs by rule:", ""]
    lines += [f"- `{rule}`: {n}" for rule, n in validation["repairs_by_rule"].items()] or ["- none"]
    kept = validation["kept"]
    lines += ["", f"Kept {kept['cases']} cases; by class (0 = asymptomatic, 1 = spondylosis): {kept['by_class']}; "
              f"by split and class: {kept['by_split_and_class']}; inverted films: {kept['inverted']}; "
              f"PNG modes: {kept['modes']}.", ""]
    for entry in validation["md5"]:
        lines.append(f"md5 {entry['file']}: {entry['status']}")
    return "\n".join(lines) + "\n"


def write_ingest(result: IngestResult, out: str | Path) -> Path:
    """Write the six outputs into ``out`` through a temporary folder renamed into place. Text that
    came from the release is neutralised where a spreadsheet would run it as a formula."""
    out = Path(out)
    with atomic_path(out, directory=True, owns=OUTPUTS) as tmp:
        safe_table(result.manifest).to_csv(tmp / "manifest.csv", index=False)
        safe_table(result.landmarks).to_csv(tmp / "landmarks.csv", index=False, float_format="%.4f")
        safe_table(result.repairs).to_csv(tmp / "repairs.csv", index=False)
        safe_table(result.drops).to_csv(tmp / "drops.csv", index=False)
        (tmp / "validation.json").write_text(json.dumps(result.validation, indent=2, default=_json_default) + "\n")
        (tmp / "validation.md").write_text(validation_report(result.validation))
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
        "md5": isinstance(md5, list) and all(isinstance(e, dict) and isinstance(e.get("file"), str)
                                             and isinstance(e.get("status"), str) for e in md5),
        "sources": _is_counts(validation.get("sources"), 2),
        "drops_by_rule": _is_counts(validation.get("drops_by_rule"), 2),
        "repairs_by_rule": _is_counts(validation.get("repairs_by_rule")),
        "kept": isinstance(kept, dict) and _is_counts({"cases": kept.get("cases")})
                and _is_counts(kept.get("by_split_and_class")),
    }
    wrong = [key for key, ok in checks.items() if not ok]
    if wrong:
        return f"{wrong[0]!r} is missing or not as ingest writes it, so this is not ingest's report"
    return None
