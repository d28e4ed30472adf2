"""Table cells as the reports write them: percentages and numbers with their intervals, p-values, and
n/a for what is undefined."""

from __future__ import annotations

import math


def percent_cell(value, low=None, high=None) -> str:
    """A share as a percentage with one decimal, and its interval where given."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{100 * value:.1f}"
    return text if low is None or is_missing(low) else f"{text} [{100 * low:.1f}, {100 * high:.1f}]"


def number_cell(value, low=None, high=None, digits=3) -> str:
    """A number with ``digits`` decimals, and its interval where given."""
    if value is None or is_missing(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text if low is None or is_missing(low) else f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def is_missing(value) -> bool:
    """None or NaN: a value the report shows as n/a."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def p_cell(value) -> str:
    """A p-value to three significant digits ('<0.001' below that; '-' where none)."""
    if is_missing(value):
        return "-"
    return f"{value:.3g}" if value >= 0.001 else "<0.001"
