"""Contract of ``landmarks.csv``: the 23 landmarks of every kept case."""

import pandera.pandas as pa
from pandera.typing import Series

from schemas.vocabulary import LANDMARK_LABELS


class Landmarks(pa.DataFrameModel):
    """One row per kept case and landmark, in pixels of the original PNG (x right, y down)."""

    number: Series[int] = pa.Field(ge=1, le=9999)
    label: Series[str] = pa.Field(isin=list(LANDMARK_LABELS))
    x: Series[float] = pa.Field(ge=0)
    y: Series[float] = pa.Field(ge=0)

    @pa.dataframe_check(name="each_landmark_once")
    def each_landmark_once(cls, df):
        return ~df.duplicated(["number", "label"], keep=False)

    @pa.dataframe_check(name="all_23_per_case")
    def all_23_per_case(cls, df):
        return df.groupby("number").label.transform("size") == len(LANDMARK_LABELS)

    class Config:
        strict = True
