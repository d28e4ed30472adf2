"""The 23 CSXA landmarks and the LabelMe JSON files that store them."""

from __future__ import annotations

import json

from schemas.vocabulary import LANDMARK_LABELS

LABELME_VERSION = "5.2.1"


def labelme_shape(label: str, points: list[list[float]], shape_type: str) -> dict:
    """One LabelMe shape, with the keys LabelMe 5 writes."""
    return {
        "label": label,
        "points": points,
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
    }


def labelme_document(image_path: str, width: int, height: int, shapes: list[dict], image_data: str | None) -> dict:
    """A LabelMe annotation, keys in the release's order."""
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": image_data,
        "imageHeight": height,
        "imageWidth": width,
    }


def dump_labelme(document: dict) -> bytes:
    """Serialise as LabelMe does (indent 2, UTF-8)."""
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")


_CANONICAL = {label.lower(): label for label in LANDMARK_LABELS}


def normalise_label(raw: str) -> str | None:
    """The canonical label for an untidy one ('c3  Top left ' -> 'C3 top left'); None if unknown."""
    return _CANONICAL.get(" ".join(str(raw).split()).lower())


def shape_locations(document: dict) -> dict[str, tuple[float, float]]:
    """Canonical label -> location (median of the shape's vertices), for known labels only.

    A quick reader for pictures; ingest validates and repairs shapes with its own rules.
    """
    import numpy as np

    out = {}
    for shape in document.get("shapes") or []:
        label = normalise_label(shape.get("label", ""))
        points = np.asarray(shape.get("points") or [], dtype=float).reshape(-1, 2)
        if label and len(points):
            out[label] = tuple(np.median(points, axis=0).tolist())
    return out


class LandmarkProblem(ValueError):
    """A JSON whose landmarks cannot be used; the message names the key and the rule."""


def _numbers_only(points) -> bool:
    """True if ``points`` is a list of lists of JSON numbers (not booleans, text or null)."""
    return isinstance(points, list) and all(
        isinstance(point, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
        for point in points
    )


def _location(shape: dict, label: str, max_spread: float) -> tuple[tuple[float, float], int]:
    """One landmark's location and its vertex count; a polygon of near-equal vertices -> median."""

    import numpy as np

    raw = shape.get("points")
    if not _numbers_only(raw):  # true/false and "12" would pass np.asarray(dtype=float) as 1/0 and 12
        raise LandmarkProblem(
            f"{label!r}: points {str(raw)[:200]} are not [x, y] numbers (booleans and text are not coordinates)"
        )
    try:
        points = np.asarray(raw, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError, OverflowError):
        raise LandmarkProblem(f"{label!r}: points {str(raw)[:200]} are not [x, y] numbers") from None
    if len(points) == 0:
        raise LandmarkProblem(f"{label!r}: no points")
    if not np.isfinite(points).all():
        raise LandmarkProblem(f"{label!r}: NaN or infinite coordinate in {points.tolist()}")
    if (points < 0).any():
        raise LandmarkProblem(f"{label!r}: negative coordinate in {points.tolist()}")
    spread = float(np.ptp(points, axis=0).max())
    if spread > max_spread:
        raise LandmarkProblem(
            f"{label!r}: {len(points)} vertices spread {spread:.1f} px, over the "
            f"{max_spread:g} px allowed for one landmark"
        )
    x, y = np.median(points, axis=0).tolist()
    return (x, y), len(points)


def parse_landmarks(
    document: object, width: int, height: int, *, max_spread: float = 2.0, duplicate_tolerance: float = 0.5
) -> tuple[dict[str, tuple[float, float]], list[dict]]:
    """The 23 landmarks of a LabelMe document checked against the film's size, plus repairs made.

    Repairs (each a dict field/old/new/rule): untidy label -> canonical; polygon of near-equal
    vertices -> their median; identical duplicate -> one; unknown label -> removed.
    Raises LandmarkProblem listing every rule broken (missing or conflicting landmarks, bad
    coordinates, a landmark outside the film, left not left of right).
    """
    if not isinstance(document, dict):
        raise LandmarkProblem("the JSON is not an object")
    shapes = document.get("shapes")
    if not isinstance(shapes, list):
        raise LandmarkProblem("no 'shapes' list")
    repairs: list[dict] = []
    problems: list[str] = []
    found: dict[str, tuple[float, float]] = {}
    for index, shape in enumerate(shapes):
        raw_label = shape.get("label") if isinstance(shape, dict) else None
        if not isinstance(raw_label, str):
            problems.append(f"shape {index} has no label")
            continue
        label = normalise_label(raw_label)
        if label is None:
            repairs.append({"field": "shape", "old": raw_label, "new": "", "rule": "unknown_label_removed"})
            continue
        if raw_label != label:
            repairs.append({"field": "label", "old": raw_label, "new": label, "rule": "label_normalised"})
        try:
            location, vertices = _location(shape, label, max_spread)
        except LandmarkProblem as exc:
            problems.append(str(exc))
            continue
        if vertices > 1:
            repairs.append(
                {
                    "field": label,
                    "old": f"{vertices} vertices",
                    "new": f"{location[0]:.3f},{location[1]:.3f}",
                    "rule": "polygon_median",
                }
            )
        if label in found:
            (x0, y0), (x1, y1) = found[label], location
            if max(abs(x0 - x1), abs(y0 - y1)) > duplicate_tolerance:
                problems.append(f"{label!r} twice at different places ({x0:.1f},{y0:.1f}) and ({x1:.1f},{y1:.1f})")
            else:
                repairs.append({"field": label, "old": "2 shapes", "new": "1 shape", "rule": "duplicate_label_merged"})
            continue
        found[label] = location
    missing = [label for label in LANDMARK_LABELS if label not in found]
    if missing and not problems:
        problems.append(f"missing landmark(s) {missing}")
    for label, (x, y) in found.items():
        if not (x < width and y < height):
            problems.append(f"{label!r} at ({x:.1f},{y:.1f}) lies outside the {width}x{height} PNG")
    for n in range(2, 8):
        for side in ("bottom",) if n == 2 else ("top", "bottom"):
            left, right = found.get(f"C{n} {side} left"), found.get(f"C{n} {side} right")
            if left and right and not left[0] < right[0]:
                problems.append(
                    f"'C{n} {side} left' x {left[0]:.1f} is not left of 'C{n} {side} right' x {right[0]:.1f}"
                )
    if not problems:
        xs, ys = [p[0] for p in found.values()], [p[1] for p in found.values()]
        if max(xs) - min(xs) < 1 or max(ys) - min(ys) < 1:
            problems.append(f"the 23 landmarks span {max(xs) - min(xs):.1f} x {max(ys) - min(ys):.1f} px: no spine box")
    if problems:
        raise LandmarkProblem("; ".join(problems))
    return {label: found[label] for label in LANDMARK_LABELS}, repairs
