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


class NearDuplicates(pa.DataFrameModel):
    """One row per pair of kept films whose perceptual hashes are within ``ingest.near_duplicate_bits``:
    the cases, the distance, the split the rule gives each, and each one's split after the policy."""

    case_a: Series[int] = pa.Field(ge=1, le=9999)
    case_b: Series[int] = pa.Field(ge=1, le=9999)
    stem_a: Series[str]
    stem_b: Series[str]
    distance: Series[int] = pa.Field(ge=0, le=256, description="hash bits that differ, of 256")
    split_a: Series[str] = pa.Field(isin=["train", "test"])
    split_b: Series[str] = pa.Field(isin=["train", "test"])
    straddles: Series[bool] = pa.Field(description="the split rule put the two cases on different sides")
    policy: Series[str] = pa.Field(isin=["report", "group", "drop"])
    after_a: Series[str] = pa.Field(isin=["train", "test", "dropped"])
    after_b: Series[str] = pa.Field(isin=["train", "test", "dropped"])

    @pa.dataframe_check
    def ordered(cls, frame) -> Series[bool]:
        return frame.case_a < frame.case_b

    class Config:
        strict = True
