"""Contract of the landmark measurements table: one row per case, from ``landmarks.csv``."""

import numpy as np
import pandera.pandas as pa
from pandera.typing import Series

from schemas.vocabulary import MEASUREMENT_COLUMNS


class Measurements(pa.DataFrameModel):
    """Radiographic parameters of every case (``csxa_data.measurements``): lengths in pixels of
    the original film, angles in degrees, ratios and slip fractions without unit."""

    number: Series[int] = pa.Field(ge=1, le=9999, unique=True, description="case number")
    cobb_c2_c7: Series[float] = pa.Field(ge=-180, le=180, description="C2-C7 Cobb angle, degrees, lordosis positive")
    curvature: Series[int] = pa.Field(
        isin=[1, 2, 3, 4, 5], description="1 lordotic, 2 straight, 3/4 sigmoid, 5 kyphotic"
    )
    sva_px: Series[float] = pa.Field(
        description="C2-C7 SVA, pixels (C7 posterior-superior corner x minus C2 centroid x)"
    )
    body_height_px: Series[float] = pa.Field(
        gt=0, alias=r"^body_height_c[3-7]_px$", regex=True, description="vertebral body height C3..C7, pixels"
    )
    disc_height_px: Series[float] = pa.Field(
        ge=0, alias=r"^disc_height_c[2-6]_c[3-7]_px$", regex=True, description="disc height C2-3..C6-7, pixels"
    )
    disc_ratio: Series[float] = pa.Field(
        ge=0,
        alias=r"^disc_ratio_c[2-6]_c[3-7]$",
        regex=True,
        description="disc height over the neighbouring bodies' mean height",
    )
    slip_px: Series[float] = pa.Field(
        alias=r"^slip_c[2-6]_c[3-7]_px$",
        regex=True,
        description="slip along the lower endplate, pixels, anterolisthesis positive",
    )
    slip: Series[float] = pa.Field(
        alias=r"^slip_c[2-6]_c[3-7]$", regex=True, description="slip as a fraction of the lower endplate's width"
    )

    @pa.dataframe_check(name="every_measurement_column_in_order")
    def every_measurement_column_in_order(cls, df) -> bool:
        return tuple(df.columns) == MEASUREMENT_COLUMNS

    @pa.dataframe_check(name="finite")
    def finite(cls, df):
        values = df.drop(columns=["number", "curvature"]).astype(float)
        return values.apply(np.isfinite).all(axis=1)

    class Config:
        strict = True
