"""CSV cells that came from input text, made safe to open in a spreadsheet.

A cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) is run as a formula
by Excel and LibreOffice; such text gets a leading apostrophe, as OWASP recommends. Plain numbers
(``-3.5``) are left as they are: they cannot be formulas.
"""

from __future__ import annotations

import re

import pandas as pd

from csxa_data.errors import CsxaError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def read_csv_file(path, not_found: str, **options) -> pd.DataFrame:
    """A CSV table that a stage reads back (``pd.read_csv`` with ``options``), every way it can fail
    to read as one line naming the file: absent (``not_found`` says what writes it), a folder, empty,
    not UTF-8, badly quoted."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise CsxaError("is a folder, not a CSV file", path=path)
    if not path.is_file():
        raise CsxaError(not_found, path=path)
    try:
        return pd.read_csv(path, **options)
    except (OSError, ValueError) as exc:  # pandas' EmptyDataError and ParserError, UnicodeDecodeError
        raise CsxaError(f"cannot read as CSV ({type(exc).__name__}: {str(exc).strip()[:200]})", path=path) from None


def neutralise(value):
    """``value`` with a leading apostrophe if it is text a spreadsheet would run as a formula, and
    with any lone surrogate (valid JSON, ``"\\ud800"``, but not UTF-8) written as its escape."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are neutralised (numbers and other types untouched)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise)
    return out
