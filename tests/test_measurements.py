"""Radiographic measurements on hand-made landmarks whose angles, heights and slips are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from csxa_data.errors import CsxaError
from csxa_data.ingest import measurements as M
from csxa_data.release.landmarks import LANDMARK_LABELS

WIDTH, BODY, DISC = 12.0, 10.0, 4.0


def straight_spine() -> dict:
    """C2's inferior endplate from (0, 0) to (12, 0); C3..C7 rectangles 12 wide, 10 high, discs 4
    high, every endplate horizontal. The patient faces left: left corners are anterior."""
    lm = {"C2 centroid": (6.0, -8.0), "C2 bottom left": (0.0, 0.0), "C2 bottom right": (WIDTH, 0.0)}
    y = 0.0
    for n in range(3, 8):
        top = y + DISC
        y = top + BODY
        lm |= {
            f"C{n} top left": (0.0, top),
            f"C{n} top right": (WIDTH, top),
            f"C{n} bottom left": (0.0, y),
            f"C{n} bottom right": (WIDTH, y),
        }
    return lm


def tilt(lm: dict, level: int, side: str, degrees: float) -> dict:
    """Turn one endplate about its left corner by ``degrees`` (positive: posterior end lower)."""
    lm = dict(lm)
    x, y = lm[f"C{level} {side} left"]
    a = math.radians(degrees)
    lm[f"C{level} {side} right"] = (x + WIDTH * math.cos(a), y + WIDTH * math.sin(a))
    return lm


def shift(lm: dict, level: int, dx: float) -> dict:
    """Move every corner of one vertebra by dx (negative: anterior)."""
    return {k: ((x + dx, y) if k.startswith(f"C{level} ") else (x, y)) for k, (x, y) in lm.items()}


def long_table(cases: dict[int, dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"number": n, "label": label, "x": x, "y": y} for n, lm in cases.items() for label, (x, y) in lm.items()]
    )


def test_straight_spine_has_the_heights_and_zero_angles_it_was_built_with():
    row = M.case_measurements(straight_spine())
    assert row["cobb_c2_c7"] == 0 and row["curvature"] == 2  # straight
    for n in M.BODY_LEVELS:
        assert row[f"body_height_c{n}_px"] == pytest.approx(BODY)
    for upper, lower in M.DISCS:
        assert row[f"disc_height_c{upper}_c{lower}_px"] == pytest.approx(DISC)
        assert row[f"disc_ratio_c{upper}_c{lower}"] == pytest.approx(DISC / BODY)
        assert row[f"slip_c{upper}_c{lower}_px"] == 0 and row[f"slip_c{upper}_c{lower}"] == 0
    # SVA: C7's posterior-superior corner (x 12) minus the C2 centroid (x 6)
    assert row["sva_px"] == pytest.approx(6.0)


@pytest.mark.parametrize(
    "c2, c7, cobb, curvature",
    [
        (10.0, -15.0, 25.0, 1),  # lordotic: C2's endplate and C7's tilt opposite ways, 10 + 15 degrees
        (-4.0, 6.0, -10.0, 5),  # kyphotic: below -5 degrees
        (2.0, -2.0, 4.0, 2),  # within +-5 degrees: straight
    ],
)
def test_cobb_angle_and_curvature_from_known_endplate_tilts(c2, c7, cobb, curvature):
    lm = tilt(tilt(straight_spine(), 2, "bottom", c2), 7, "bottom", c7)
    row = M.case_measurements(lm)
    assert row["cobb_c2_c7"] == pytest.approx(cobb)
    assert row["curvature"] == curvature


def test_sigmoid_curvature_from_segments_bending_both_ways():
    # inferior endplates C3..C7 at 5, 0, 0, 5, 0 degrees: segments C3/4 +5, C4/5 0, C5/6 -5, C6/7 +5
    lm = tilt(tilt(straight_spine(), 3, "bottom", 5.0), 6, "bottom", 5.0)
    assert M.segmental_angles(lm) == pytest.approx([5.0, 0.0, -5.0, 5.0])
    assert M.case_measurements(lm)["curvature"] == 3  # upper segment lordotic
    lm = tilt(tilt(straight_spine(), 4, "bottom", 5.0), 6, "bottom", -5.0)  # segments -5, +5, +5, -5
    assert M.case_measurements(lm)["curvature"] == 4


def test_slip_known_anterolisthesis_and_retrolisthesis():
    row = M.case_measurements(shift(straight_spine(), 4, -1.5))  # C4 moved 1.5 px forward
    # C4 over C5: forward by 1.5 px, 1.5 / 12 of C5's superior endplate; C3 over C4: backward
    assert row["slip_c4_c5_px"] == pytest.approx(1.5) and row["slip_c4_c5"] == pytest.approx(0.125)
    assert row["slip_c3_c4_px"] == pytest.approx(-1.5) and row["slip_c3_c4"] == pytest.approx(-0.125)
    assert row["slip_c5_c6_px"] == 0
    # the disc's heights run corner to corner: both now sqrt(4^2 + 1.5^2)
    assert row["disc_height_c4_c5_px"] == pytest.approx(math.hypot(DISC, 1.5))


def test_slip_is_measured_along_a_tilted_endplate():
    # C5's superior endplate turned 30 degrees about its left corner; C4's posterior-inferior corner
    # lies 3 px along that endplate short of its right end, 2 px off it: slip 3 px, 3/12
    lm = tilt(straight_spine(), 5, "top", 30.0)
    a = math.radians(30.0)
    x0, y0 = lm["C5 top left"]
    along, across = np.array([math.cos(a), math.sin(a)]), np.array([math.sin(a), -math.cos(a)])
    lm["C4 bottom right"] = tuple(np.array([x0, y0]) + (WIDTH - 3.0) * along + 2.0 * across)
    slip_px, fraction = M.slip(lm, 4)
    assert slip_px == pytest.approx(3.0) and fraction == pytest.approx(0.25)


def test_narrow_anterior_disc_and_its_ratio():
    lm = straight_spine()
    x, y = lm["C5 bottom left"]
    lm["C5 bottom left"] = (x, y + 2.0)  # anterior C5-6 disc 4 -> 2 px; C5's anterior height 10 -> 12
    row = M.case_measurements(lm)
    assert row["body_height_c5_px"] == pytest.approx(11.0)
    assert row["disc_height_c5_c6_px"] == pytest.approx(3.0)
    assert row["disc_ratio_c5_c6"] == pytest.approx(3.0 / ((11.0 + 10.0) / 2))
    assert row["disc_ratio_c2_c3"] == pytest.approx(DISC / BODY)  # C3 alone: C2 has no body height


def test_scale_free_features_do_not_depend_on_scale_position_or_rotation():
    lm = tilt(tilt(shift(straight_spine(), 5, -0.8), 2, "bottom", 8.0), 7, "bottom", -6.0)
    a = math.radians(17.0)
    turn = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    moved = {k: tuple(3.0 * turn @ np.array(p) + np.array([200.0, 300.0])) for k, p in lm.items()}
    before, after = M.case_measurements(lm), M.case_measurements(moved)
    for name in M.SCALE_FREE_FEATURES:
        assert after[name] == pytest.approx(before[name], abs=1e-9), name
    assert after["disc_height_c4_c5_px"] == pytest.approx(3.0 * before["disc_height_c4_c5_px"])


def test_table_has_one_row_per_case_in_the_contracts_columns():
    table = M.measurement_table(long_table({7: straight_spine(), 3: shift(straight_spine(), 4, -1.5)}))
    assert tuple(table.columns) == M.MEASUREMENT_COLUMNS
    assert table.number.tolist() == [3, 7]
    assert table.slip_c4_c5.tolist() == pytest.approx([0.125, 0.0])


def test_a_missing_landmark_is_one_line_naming_the_case():
    frame = long_table({1: straight_spine(), 42: straight_spine()})
    frame = frame[~((frame.number == 42) & (frame.label == "C6 top right"))]
    with pytest.raises(CsxaError, match=r"case 42: 1 of the 23 landmarks missing: \['C6 top right'\]"):
        M.measurement_table(frame, source="landmarks.csv")


def test_a_degenerate_vertebra_is_an_error_naming_the_case():
    lm = straight_spine()
    lm["C6 top right"] = lm["C6 top left"]  # zero-width superior endplate
    with pytest.raises(CsxaError, match="case 5: landmarks give no measurement"):
        M.measurement_table(long_table({5: lm}))


def test_synthetic_sheet_measures_use_the_same_formulas():
    from csxa_data.synthetic.generate import radiographic_parameters

    lm = tilt(tilt(straight_spine(), 2, "bottom", 10.0), 7, "bottom", -15.0)
    sheet = radiographic_parameters(lm, 0.1)
    assert sheet["C2-7 Cobb angle (°)"] == 25.0
    assert sheet["C2-7 SVA (mm)"] == pytest.approx(round(0.1 * M.sva(lm), 2))
    assert sheet["C4-5 disc height (mm)"] == pytest.approx(0.4)
    assert set(LANDMARK_LABELS) == set(lm)


@pytest.mark.parametrize("value", ["abc", "", None])
def test_a_coordinate_that_is_not_a_number_names_the_case(value):
    """Third audit: 'abc' in landmarks.csv was a ValueError traceback from `landmarks` and
    `cv-landmarks` (the conversion sat outside the checks)."""
    table = long_table({7: straight_spine()}).astype({"x": object})
    table.loc[3, "x"] = value
    with pytest.raises(CsxaError, match="case 7: a landmark coordinate is (not a number|NaN or infinite)"):
        M.measurement_table(table)
