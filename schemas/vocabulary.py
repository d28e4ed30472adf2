"""The vocabulary the contracts are written in: the release's file-name stem, the atlas's 23
landmark labels and the columns of the measurements table. ``csxa_data`` takes them from here, so
that the contracts import nothing from the code they check."""

from __future__ import annotations

# ASCII digits only: \d (and str.isdigit, int()) also accept Arabic-Indic or fullwidth digits, which
# would make a renamed copy of a film collide with the real one and drop both as duplicates
STEM_PATTERN = r"^[0-9]{7}$"


def landmark_labels() -> tuple[str, ...]:
    """The 23 landmark labels of the atlas, in their canonical order."""
    labels = ["C2 centroid", "C2 bottom left", "C2 bottom right"]
    for n in range(3, 8):
        labels += [f"C{n} top left", f"C{n} top right", f"C{n} bottom left", f"C{n} bottom right"]
    return tuple(labels)


LANDMARK_LABELS = landmark_labels()

BODY_LEVELS = (3, 4, 5, 6, 7)
DISCS = ((2, 3), (3, 4), (4, 5), (5, 6), (6, 7))  # upper and lower level of each disc


def disc_name(upper: int) -> str:
    """A disc's column suffix, by its upper level: ``c5_c6``."""
    return f"c{upper}_c{upper + 1}"


# one row per case, in this column order (schemas.measurements.Measurements checks it)
MEASUREMENT_COLUMNS = (
    ("number", "cobb_c2_c7", "curvature", "sva_px")
    + tuple(f"body_height_c{n}_px" for n in BODY_LEVELS)
    + tuple(f"disc_height_{disc_name(u)}_px" for u, _ in DISCS)
    + tuple(f"disc_ratio_{disc_name(u)}" for u, _ in DISCS)
    + tuple(f"slip_{disc_name(u)}_px" for u, _ in DISCS)
    + tuple(f"slip_{disc_name(u)}" for u, _ in DISCS)
)
