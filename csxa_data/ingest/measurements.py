"""Radiographic parameters of the cervical spine from the atlas's 23 landmarks.

Pure functions of one case's landmarks (``{label: (x, y)}`` in pixels of the film, x right,
y down; the patient faces left, so "left" corners are anterior and "right" corners posterior),
and one table-level function from ``landmarks.csv`` (long: number, label, x, y) to one row per
case. The synthetic atlas writes its sheet's measures with the same functions.

Definitions (the atlas's paper names these parameters; the exact point choices below are this
module's, made on the 23 points the release carries, and stated so they can be checked):

- **C2-C7 Cobb angle**: the angle between C2's inferior endplate and C7's inferior endplate
  (degrees; positive = lordosis, negative = kyphosis). The segmental angles between consecutive
  inferior endplates C3..C7 decide the curvature class (1 lordotic, 2 straight, 3 and 4 sigmoid,
  5 kyphotic).
- **C2-C7 SVA**: horizontal distance from the C2 centroid to C7's posterior-superior corner.
- **Vertebral body height** of C3..C7: the mean of its anterior and posterior heights (top to
  bottom corner on each side). C2 has no top corners among the 23 points, so no body height.
- **Disc height** C2-3 .. C6-7: the mean of the anterior and posterior distances between the upper
  body's inferior corners and the lower body's superior corners (C7-T1 has no T1 points).
  **Disc ratio**: the disc height over the mean body height of its two neighbours (C3 alone for
  C2-3).
- **Slip** at C2-3 .. C6-7: the displacement of the upper body's posterior-inferior corner from
  the lower body's posterior-superior corner, measured along the lower body's superior endplate;
  positive = the upper vertebra lies anterior (anterolisthesis), negative = retrolisthesis. In
  pixels, and as a fraction of the lower endplate's width (scale-free, like a slip percentage).

Lengths are in pixels; multiply by the sheet's pixel equivalent (mm/pixel) for millimetres. The
angle, the ratios and the slip fractions do not depend on the film's scale:
``SCALE_FREE_FEATURES`` lists them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from csxa_data.errors import CsxaError
from schemas.measurements import Measurements
from schemas.vocabulary import BODY_LEVELS, DISCS, LANDMARK_LABELS, MEASUREMENT_COLUMNS, disc_name

# the measurements a classifier can compare across films of different scales
SCALE_FREE_FEATURES = (
    ("cobb_c2_c7",)
    + tuple(f"disc_ratio_{disc_name(u)}" for u, _ in DISCS)
    + tuple(f"slip_{disc_name(u)}" for u, _ in DISCS)
)


def point(landmarks: dict, label: str) -> np.ndarray:
    """One landmark as a float array [x, y]."""
    return np.array(landmarks[label], dtype=float)


def endplate_angle(landmarks: dict, level: int, side: str) -> float:
    """Direction (degrees, image coordinates) of level ``level``'s ``side`` ('top' or 'bottom')
    endplate, from its left (anterior) to its right (posterior) corner."""
    v = point(landmarks, f"C{level} {side} right") - point(landmarks, f"C{level} {side} left")
    return math.degrees(math.atan2(v[1], v[0]))


def cobb_angle(landmarks: dict) -> float:
    """C2-C7 Cobb angle in degrees between the inferior endplates of C2 and C7; lordosis positive
    (the C2 endplate tilts the other way from C7's in a lordotic neck)."""
    return endplate_angle(landmarks, 2, "bottom") - endplate_angle(landmarks, 7, "bottom")


def segmental_angles(landmarks: dict) -> list[float]:
    """Angles between consecutive inferior endplates C3/C4, C4/C5, C5/C6, C6/C7 (degrees)."""
    return [endplate_angle(landmarks, n, "bottom") - endplate_angle(landmarks, n + 1, "bottom") for n in range(3, 7)]


def curvature_class(cobb: float, segmental: list[float]) -> int:
    """The sheet's curvature code: 5 kyphotic (Cobb below -5), 3 or 4 sigmoid (segments bending
    both ways by more than 3 degrees; 3 when the upper segment is lordotic), 1 lordotic (Cobb
    above 5), else 2 straight."""
    if cobb < -5:
        return 5
    if max(segmental) > 3 and min(segmental) < -3:
        return 3 if segmental[0] > 0 else 4
    if cobb > 5:
        return 1
    return 2


def sva(landmarks: dict) -> float:
    """C2-C7 sagittal vertical axis in pixels: C7's posterior-superior corner x minus the C2 centroid's x."""
    return point(landmarks, "C7 top right")[0] - point(landmarks, "C2 centroid")[0]


def body_height(landmarks: dict, level: int) -> float:
    """Vertebral body height of C3..C7 in pixels: the mean of the anterior and posterior heights."""
    sides = [
        (point(landmarks, f"C{level} top {s}"), point(landmarks, f"C{level} bottom {s}")) for s in ("left", "right")
    ]
    return float(np.mean([np.linalg.norm(a - b) for a, b in sides]))


def disc_height(landmarks: dict, upper: int) -> float:
    """Height of the disc below level ``upper`` (2..6) in pixels: the mean of its anterior and
    posterior heights (upper body's inferior corner to lower body's superior corner)."""
    above = [point(landmarks, f"C{upper} bottom left"), point(landmarks, f"C{upper} bottom right")]
    below = [point(landmarks, f"C{upper + 1} top left"), point(landmarks, f"C{upper + 1} top right")]
    return np.mean([np.linalg.norm(a - b) for a, b in zip(above, below)])


def disc_ratio(landmarks: dict, upper: int) -> float:
    """Disc height over the mean body height of its neighbours (C3 alone for the C2-3 disc)."""
    neighbours = [n for n in (upper, upper + 1) if n in BODY_LEVELS]
    return float(disc_height(landmarks, upper) / np.mean([body_height(landmarks, n) for n in neighbours]))


def slip(landmarks: dict, upper: int) -> tuple[float, float]:
    """Slip of level ``upper`` over the next: (pixels, fraction of the lower superior endplate's
    width), measured along that endplate; positive = anterolisthesis."""
    left, right = point(landmarks, f"C{upper + 1} top left"), point(landmarks, f"C{upper + 1} top right")
    width = float(np.linalg.norm(right - left))
    if width == 0:
        raise ValueError(f"C{upper + 1} superior endplate has zero width")
    along = (right - left) / width  # anterior -> posterior
    shift = -float(np.dot(point(landmarks, f"C{upper} bottom right") - right, along))
    return shift, shift / width


def case_measurements(landmarks: dict) -> dict:
    """Every measurement of one case (``MEASUREMENT_COLUMNS`` but ``number``), lengths in pixels."""
    cobb = cobb_angle(landmarks)
    row = {
        "cobb_c2_c7": cobb,
        "curvature": curvature_class(cobb, segmental_angles(landmarks)),
        "sva_px": float(sva(landmarks)),
    }
    for n in BODY_LEVELS:
        row[f"body_height_c{n}_px"] = body_height(landmarks, n)
    for upper, _ in DISCS:
        row[f"disc_height_{disc_name(upper)}_px"] = float(disc_height(landmarks, upper))
    for upper, _ in DISCS:
        row[f"disc_ratio_{disc_name(upper)}"] = disc_ratio(landmarks, upper)
    slips = {upper: slip(landmarks, upper) for upper, _ in DISCS}
    for upper, (pixels, _) in slips.items():
        row[f"slip_{disc_name(upper)}_px"] = pixels
    for upper, (_, fraction) in slips.items():
        row[f"slip_{disc_name(upper)}"] = fraction
    return row


def measurement_table(landmarks: pd.DataFrame, *, source: str = "landmarks.csv") -> pd.DataFrame:
    """One row per case (sorted by number) from the long landmarks table (number, label, x, y).

    A case without all 23 landmarks, a landmark listed twice, or a degenerate vertebra (zero
    height or width) is an error naming the case; the table is checked against
    ``schemas.measurements.Measurements``.
    """
    import pandera.pandas as pa

    missing_columns = [c for c in ("number", "label", "x", "y") if c not in landmarks.columns]
    if missing_columns:
        raise CsxaError(f"missing column(s) {missing_columns}", path=source)
    rows = []
    for number, group in landmarks.groupby("number", sort=True):
        twice = sorted(set(group.label[group.label.duplicated()]))
        if twice:
            raise CsxaError(f"case {number}: landmark(s) listed twice: {twice}", path=source)
        points = {label: (x, y) for label, x, y in zip(group.label, group.x, group.y)}
        absent = [label for label in LANDMARK_LABELS if label not in points]
        if absent:
            raise CsxaError(
                f"case {number}: {len(absent)} of the 23 landmarks missing: {absent[:4]}"
                f"{' ...' if len(absent) > 4 else ''}; every case needs all 23 for its measurements",
                path=source,
            )
        try:
            coordinates = np.array([points[label] for label in LANDMARK_LABELS], dtype=float)
        except (ValueError, TypeError, OverflowError):
            raise CsxaError(f"case {number}: a landmark coordinate is not a number", path=source) from None
        if not np.isfinite(coordinates).all():
            raise CsxaError(f"case {number}: a landmark coordinate is NaN or infinite", path=source)
        try:
            with np.errstate(divide="raise", invalid="raise"):
                rows.append({"number": int(number), **case_measurements(points)})
        except (ValueError, ZeroDivisionError, FloatingPointError) as exc:
            raise CsxaError(f"case {number}: landmarks give no measurement ({exc})", path=source) from None
    table = pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS))
    table["number"] = table["number"].astype("int64")
    table["curvature"] = table["curvature"].astype("int64")
    try:
        return Measurements.validate(table, lazy=True)
    except pa.errors.SchemaErrors as exc:
        first = exc.failure_cases.iloc[0]
        case = table.number.iloc[int(first["index"])] if pd.notna(first["index"]) else None
        raise CsxaError(
            f"case {case}: measurement {first['column']!r} breaks check {first['check']!r} "
            f"(value {first['failure_case']!r}) of schemas/measurements.py",
            path=source,
        ) from None
