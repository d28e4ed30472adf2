"""Contract of ``folds.csv``: the cross-validation fold of every train case, per repeat."""

import pandera.pandas as pa
from pandera.typing import Series


def fold_layout_problem(df) -> str | None:
    """Why the (key or number, repeat, fold) rows of a cross-validation do not form repeats 0..R-1,
    each split into folds 0..k-1 (the same k), no two repeats the same partition; or None. A repeat
    copied under another number would double the folds the t-tests count."""
    key = "number" if "number" in df.columns else "key"
    repeats = sorted(int(r) for r in df.repeat.unique())
    if repeats != list(range(len(repeats))):
        return f"the repeats are {repeats[:5]}, not 0..{len(repeats) - 1}"
    layouts, ks = set(), set()
    for _, part in df.groupby("repeat", sort=True):
        folds = sorted(int(f) for f in part.fold.unique())
        if folds != list(range(len(folds))) or len(folds) < 2:
            return f"a repeat's folds are {folds[:6]}, not 0..k-1 with k at least 2"
        ks.add(len(folds))
        layouts.add(frozenset(frozenset(group[key]) for _, group in part.groupby("fold")))
    if len(ks) > 1:
        return f"the repeats have different numbers of folds {sorted(ks)}"
    if len(layouts) < len(repeats):
        return (
            "two repeats split the cases into the same folds (a repeat copied as another, or salts that "
            "happen to split alike: choose other cv.seed salts)"
        )
    return None


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

    @pa.dataframe_check(name="repeats_and_folds_numbered_from_0_and_repeats_distinct")
    def repeats_and_folds_numbered_from_0_and_repeats_distinct(cls, df) -> bool:
        return fold_layout_problem(df) is None if len(df) else True

    class Config:
        strict = True
