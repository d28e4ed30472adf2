"""Contract of ``folds.csv``: the cross-validation fold of every train case, per repeat."""

import pandera.pandas as pa
from pandera.typing import Series


class Folds(pa.DataFrameModel):
    """One row per train case and repeat (``csxa-data folds``); a case's samples share its fold."""

    number: Series[int] = pa.Field(ge=1, le=9999, description="case number (the manifest's)")
    label: Series[int] = pa.Field(isin=[0, 1], description="0 = asymptomatic, 1 = spondylosis")
    repeat: Series[int] = pa.Field(ge=0, description="repeat of the cross-validation, 0 .. cv.repeats - 1")
    fold: Series[int] = pa.Field(ge=0, description="fold, 0 .. cv.folds - 1")

    @pa.dataframe_check(name="one_fold_per_case_and_repeat")
    def one_fold_per_case_and_repeat(cls, df):
        return ~df.duplicated(["number", "repeat"], keep=False)

    @pa.dataframe_check(name="same_cases_in_every_repeat")
    def same_cases_in_every_repeat(cls, df) -> bool:
        cases = df.groupby("repeat").number.apply(lambda n: tuple(sorted(n)))
        return cases.nunique() <= 1

    @pa.dataframe_check(name="every_fold_holds_both_classes")
    def every_fold_holds_both_classes(cls, df) -> bool:
        k = int(df.fold.max()) + 1 if len(df) else 0
        per = df.groupby(["repeat", "label"]).fold.nunique()
        return bool((per == k).all()) and df.label.nunique() == 2

    class Config:
        strict = True
