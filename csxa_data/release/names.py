"""The release's file names: a 7-digit stem = case number (4), gender digit (1), age (2)."""

from __future__ import annotations

import re

# ASCII digits only (schemas.vocabulary.STEM_PATTERN says why)
_STEM = re.compile(r"([0-9]{4})([0-9])([0-9]{2})", re.ASCII)


def parse_stem(stem: str) -> tuple[int, int, int] | None:
    """(case number, gender digit, age) of a release stem, or None if it is not 7 ASCII digits."""
    match = _STEM.fullmatch(stem)
    if not match:
        return None
    number, gender, age = (int(g) for g in match.groups())
    return number, gender, age


def stem_problem(stem: str) -> str | None:
    """Why ``stem`` is not a usable release stem, or None if it is."""
    parsed = parse_stem(stem)
    if parsed is None:
        return f"file name {stem!r} is not 7 ASCII digits (case number, gender digit, age)"
    number, gender, _ = parsed
    if number == 0:
        return "case number 0000 in the file name"
    if gender not in (0, 1):
        return f"gender digit {gender} in the file name is not 0 or 1"
    return None
