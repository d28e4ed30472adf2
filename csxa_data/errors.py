"""User-facing errors: one clear line naming the file, row or key and the rule broken."""

from __future__ import annotations


class CsxaError(Exception):
    """Bad input or configuration that stops a command; printed as one line, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, path: object | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path is not None else message)
