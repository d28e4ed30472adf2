"""Contract of a shard sample's JSON metadata (``KEY.json``), one row per sample."""

import pandera.pandas as pa
from pandera.typing import Series


class SampleMeta(pa.DataFrameModel):
    """What every sample of a published variant says about itself."""

    key: Series[str] = pa.Field(
        str_matches=r"^[0-9]{7}(_[ab])?$", description="stem, plus _a/_b for the two colour orders"
    )
    number: Series[int] = pa.Field(ge=1, le=9999, description="case number")
    stem: Series[str] = pa.Field(str_matches=r"^[0-9]{7}$")
    split: Series[str] = pa.Field(isin=["train", "test"])
    variant: Series[str]
    gender: Series[int] = pa.Field(isin=[0, 1])
    age: Series[int] = pa.Field(ge=0, le=120)
    label: Series[int] = pa.Field(isin=[0, 1], description="0 = asymptomatic, 1 = spondylosis (also KEY.cls)")
    landmark_box: Series[object] = pa.Field(description="[x0, y0, x1, y1] of the 23 landmarks, float pixels")
    crop_box: Series[object] = pa.Field(description="[x0, y0, x1, y1] cut from the film, whole pixels, half-open")
    channels: Series[object] = pa.Field(description="what each channel is: ['grey'] or grey/equalised/inverted")
    inverted: Series[bool] = pa.Field(description="the source film is a negative")

    @pa.dataframe_check(name="key_is_stem_plus_suffix")
    def key_is_stem_plus_suffix(cls, df):
        return df.key.str[:7] == df.stem

    @pa.dataframe_check(name="one_test_sample_per_case")
    def one_test_sample_per_case(cls, df):
        test = df.split == "test"
        return ~(df.stem.where(test).duplicated(keep=False) & test)

    class Config:
        strict = True
