"""Contract of the Excel rows, after typing (text that is not a number becomes null)."""

import pandera.pandas as pa
from pandera.typing import Series


class SheetRows(pa.DataFrameModel):
    """One row per data row of ``datasets.xlsx``; codes already mapped to the toolkit's.

    A row failing ``number`` or ``label`` cannot be joined or classified and is dropped; a row
    failing ``gender`` or ``age`` is repaired from its file name, as the seed paper did for age.
    """

    excel_row: Series[int] = pa.Field(ge=1, description="row number in the sheet, for messages")
    number: Series[float] = pa.Field(
        ge=1, le=9999, unique=True, nullable=False, description="case number, the join key (Number)"
    )
    gender: Series[float] = pa.Field(isin=[0, 1], nullable=False, description="file-name gender digit")
    age: Series[float] = pa.Field(ge=0, le=120, nullable=False, description="age in years")
    label: Series[float] = pa.Field(
        isin=[0, 1], nullable=False, description="0 = asymptomatic, 1 = spondylosis (release.label_codes)"
    )

    @pa.check("number", name="whole_number")
    def whole_number(cls, number: Series[float]) -> Series[bool]:
        return number.isna() | (number % 1 == 0)

    class Config:
        strict = False  # the sheet's other columns pass through untouched
