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
    """``contract.validate(frame)`` (a pandera model of ``schemas``), a failure as one CsxaError naming
    the contract and the first failing column, check and value."""
    import pandera.pandas as pa

    try:
        return contract.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        first = exc.failure_cases.iloc[0]
        raise CsxaError(f"does not satisfy schemas.{contract.__name__} ({len(exc.failure_cases)} failure(s); first: "
                        f"column {first['column']!r} check {first['check']!r} value {first['failure_case']!r})",
                        path=path) from None


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
