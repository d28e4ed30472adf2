"""Contract of the metadata carried by the release's file names."""

import pandera.pandas as pa
from pandera.typing import Series

from schemas.vocabulary import STEM_PATTERN


class FileNames(pa.DataFrameModel):
    """One row per usable PNG or JSON file: the 7-digit stem split into its parts."""

    set: Series[str] = pa.Field(isin=["datasets-PNG", "datasets-JSON"])
    name: Series[str] = pa.Field(description="base name in the set, e.g. 0001035.png")
    stem: Series[str] = pa.Field(str_matches=STEM_PATTERN, description="7 digits")
    number: Series[int] = pa.Field(ge=1, le=9999, description="digits 1-4: case number")
    gender: Series[int] = pa.Field(isin=[0, 1], description="digit 5: gender (which is male is not published)")
    age: Series[int] = pa.Field(ge=0, le=99, description="digits 6-7: age in years")

    @pa.dataframe_check(name="one_file_per_case_and_set")
    def one_file_per_case_and_set(cls, df):
        return ~df.duplicated(["set", "number"], keep=False)
