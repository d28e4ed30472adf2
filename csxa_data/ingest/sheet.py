"""The sheet's key columns typed and checked against ``schemas.SheetRows``: numbers, codes and what is
wrong with each row."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from csxa_data.ingest.params import IngestParams
from csxa_data.release.reader import ReleaseParams
from schemas.sheet import SheetRows


def cell_text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _coded(raw: pd.Series, codes: dict) -> pd.Series:
    """Map sheet codes to the toolkit's (keys compared as text, so 1, 1.0 and '1' agree)."""
    table = {cell_text(k).strip().lower(): float(v) for k, v in codes.items()}
    return raw.map(lambda v: table.get(cell_text(v).strip().lower(), np.nan))


def sheet_numbers(raw: pd.Series) -> pd.Series:
    """Cells as numbers, null where empty or not a number; an Excel TRUE/FALSE is not a number
    (pandas would read it as 1/0, and a TRUE in Number would then collide with case 1)."""
    return pd.to_numeric(raw.map(lambda v: None if isinstance(v, (bool, np.bool_)) else v), errors="coerce").astype(
        float
    )


CASE_NUMBER_TEXT = re.compile(r"[0-9]{1,9}", re.ASCII)


def case_numbers(raw: pd.Series) -> pd.Series:
    """The Number column, the join key, read strictly: a number cell as itself (a fraction is left to
    the contract's whole-number check), a text cell only if it is ASCII digits alone; anything else
    (TRUE, '1e1', ' 9 ', '٣') is null, so the row is dropped naming the cell, never joined to another
    case's film."""

    def read(value):
        if isinstance(value, (bool, np.bool_)) or value is None:
            return None
        if isinstance(value, (int, float, np.integer, np.floating)):
            return float(value)
        text = str(value)
        return float(text) if CASE_NUMBER_TEXT.fullmatch(text) else None

    return raw.map(read).astype(float)


def curvature_code(number: float) -> int | None:
    """The sheet's curvature code (1 lordotic .. 5 kyphotic) from a cell read by ``sheet_numbers``, or None."""
    return int(number) if np.isfinite(number) and number.is_integer() and 1 <= number <= 5 else None


def mm_per_pixel(number: float) -> float | None:
    """The sheet's pixel equivalent (mm per pixel, positive and under 10) from ``sheet_numbers``, or None."""
    return float(number) if 0 < number < 10 else None


# optional sheet columns carried into the manifest, each blanked (and the repair logged) when invalid
SHEET_MEASURES = {"curvature": curvature_code, "pixel_equivalent": mm_per_pixel}


def type_sheet(columns: pd.DataFrame, config: ReleaseParams, params: IngestParams) -> pd.DataFrame:
    """The sheet's key columns as numbers (null where a cell is empty, not a number or not a code)."""
    return pd.DataFrame(
        {
            "excel_row": columns.excel_row.astype("int64"),
            "number": case_numbers(columns.number),
            "gender": _coded(columns.gender, params.gender_codes),
            "age": sheet_numbers(columns.age),
            "label": _coded(columns.label, config.label_codes),
        },
        index=columns.index,
    )


def sheet_problems(typed: pd.DataFrame, raw: pd.DataFrame) -> dict[int, dict[str, str]]:
    """Row index -> {column: what is wrong}, from a lazy validation against ``SheetRows``."""
    import pandera.pandas as pa

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
            text = "is empty" if cell_text(value).strip() == "" else f"{cell_text(value)!r} is not valid"
        elif case.check == "field_uniqueness":
            rows = typed.excel_row[typed.number == typed.at[index, "number"]].tolist()
            text = f"{cell_text(value)} appears in rows {rows}"
        else:
            text = f"{cell_text(value)!r} fails {case.check}"
        problems.setdefault(index, {}).setdefault(column, text)
    return problems
