"""User-facing errors: one clear line naming the file, row or key and the rule broken."""

from __future__ import annotations

import sys


class CsxaError(Exception):
    """Bad input or configuration that stops a command; printed as one line, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, path: object | None = None):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path is not None else message)


def conform(contract, frame, path: object):
    """``contract.validate(frame)`` (a pandera model of ``schemas``, ``frame`` as read from a CSV file),
    a failure as one CsxaError naming the contract, the first broken rule, its CSV line and value."""
    import pandas as pd
    import pandera.pandas as pa

    try:
        return contract.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        # a row-wide check lists every column of a failing row: count it once a row, and report any
        # other failure first (a column's own rule, a missing column), as it says more
        row_wide = (cases.schema_context == "DataFrameSchema") & cases["index"].notna()
        failures = len(
            cases.assign(column=cases.column.where(~row_wide, "")).drop_duplicates(["column", "check", "index"])
        )
        first = cases[~row_wide].iloc[0] if (~row_wide).any() else cases.iloc[0]
        if first["schema_context"] == "DataFrameSchema":  # the table's own rules name no column of theirs
            # a missing or extra column is named by its failure case; a whole-table check's is a bare False
            named = isinstance(first["failure_case"], str) and pd.isna(first["index"])
            what = f"check {first['check']!r}" + (f" value {first['failure_case']!r}" if named else "")
        else:
            what = f"column {first['column']!r} check {first['check']!r} value {first['failure_case']!r}"
        # pandas' row number: the header and blank lines are not counted
        where = "" if pd.isna(first["index"]) else f" in data row {int(first['index']) + 1}"
        raise CsxaError(
            f"does not satisfy schemas.{contract.__name__} ({failures} failure(s); first: {what}{where})", path=path
        ) from None


def run_command(prog: str, func, args, interrupted: str) -> int:
    """Run a sub-command: bad input ends in one ``PROG: error:`` line and exit code 2, never a traceback."""
    try:
        return func(args)
    except CsxaError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    except OSError as exc:
        # a path the system refuses (a full disk, a folder where a file goes, permissions); an OSError
        # naming no path (a broken pipe, a library's own) keeps its traceback
        if exc.filename is None:
            raise
        # a rename names its source (a temporary sibling, already removed) first and its target second
        print(
            f"{prog}: error: {exc.filename2 if exc.filename2 is not None else exc.filename}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return CsxaError.exit_code


class SourceError(CsxaError):
    """A variant source that cannot be read, or whose bytes differ from what it publishes."""
