"""Contracts of the repairs and drops logs: nothing is changed or lost without a row here."""

import pandera.pandas as pa
from pandera.typing import Series


class Repairs(pa.DataFrameModel):
    """One row per value changed: which case, which field, old and new value, and the rule."""

    number: Series[int] = pa.Field(ge=1, le=9999)
    field: Series[str]
    old: Series[str] = pa.Field(nullable=True)
    new: Series[str] = pa.Field(nullable=True)
    rule: Series[str]

    class Config:
        strict = True


class Drops(pa.DataFrameModel):
    """One row per input item not kept: the sheet row, PNG or JSON, and why."""

    source: Series[str] = pa.Field(isin=["sheet", "png", "json"])
    key: Series[str] = pa.Field(description="'row N' for the sheet, the file name for files")
    number: Series[float] = pa.Field(nullable=True, description="case number where known")
    rule: Series[str] = pa.Field(description="short name of the rule, for counting")
    reason: Series[str] = pa.Field(description="one line a person can act on")

    class Config:
        strict = True
