"""Contract of ``manifest.csv``: the published clean manifest, one row per kept case."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.vocabulary import STEM_PATTERN


class Manifest(pa.DataFrameModel):
    """Every kept case: identity, class, split, film size and the landmark box."""

    number: Series[int] = pa.Field(ge=1, le=9999, unique=True, description="case number")
    stem: Series[str] = pa.Field(str_matches=STEM_PATTERN, unique=True, description="7-digit file stem")
    png_name: Series[str] = pa.Field(str_matches=r"^[0-9]{7}\.(?i:png)$", description="the PNG's name in the release")
    gender: Series[int] = pa.Field(isin=[0, 1], description="file-name gender digit")
    age: Series[int] = pa.Field(ge=0, le=120, description="age in years (the file name's, as repaired)")
    label: Series[int] = pa.Field(isin=[0, 1], description="0 = asymptomatic, 1 = spondylosis")
    split: Series[str] = pa.Field(isin=["train", "test"])
    width: Series[int] = pa.Field(gt=0, description="PNG width in pixels")
    height: Series[int] = pa.Field(gt=0, description="PNG height in pixels")
    box_x0: Series[float] = pa.Field(ge=0, description="landmark bounding box, pixels")
    box_y0: Series[float] = pa.Field(ge=0)
    box_x1: Series[float] = pa.Field(ge=0)
    box_y1: Series[float] = pa.Field(ge=0)
    inverted: Series[bool] = pa.Field(description="white background, dark bone")
    mode: Series[str] = pa.Field(description="PNG colour mode as stored (L, RGB, RGBA, ...)")
    channels_equal: Series[bool] = pa.Field(description="colour channels identical (grey stored as colour)")

    @pa.dataframe_check(name="stem_png_name_and_number_agree")
    def stem_png_name_and_number_agree(cls, df):
        # one case, one film: a row naming another case's PNG would put that film under this label
        return (df.png_name.str[:7] == df.stem) & (pd.to_numeric(df.stem.str[:4], errors="coerce") == df.number)

    @pa.dataframe_check(name="gender_and_age_are_the_stems")
    def gender_and_age_are_the_stems(cls, df):
        # ingest repairs both from the file name; a hand-edited row that disagrees is not ingest's output
        return (pd.to_numeric(df.stem.str[4], errors="coerce") == df.gender) & (
            pd.to_numeric(df.stem.str[5:7], errors="coerce") == df.age
        )

    @pa.dataframe_check(name="box_inside_film")
    def box_inside_film(cls, df):
        return (df.box_x0 < df.box_x1) & (df.box_y0 < df.box_y1) & (df.box_x1 <= df.width) & (df.box_y1 <= df.height)

    class Config:
        strict = False  # sheet measures (curvature, pixel equivalent) may follow
