"""The 23 CSXA landmarks and the LabelMe JSON files that store them."""

from __future__ import annotations

import json

LABELME_VERSION = "5.2.1"


def landmark_labels() -> tuple[str, ...]:
    """The 23 landmark labels of the atlas, in their canonical order."""
    labels = ["C2 centroid", "C2 bottom left", "C2 bottom right"]
    for n in range(3, 8):
        labels += [f"C{n} top left", f"C{n} top right", f"C{n} bottom left", f"C{n} bottom right"]
    return tuple(labels)


LANDMARK_LABELS = landmark_labels()


def labelme_shape(label: str, points: list[list[float]], shape_type: str) -> dict:
    """One LabelMe shape, with the keys LabelMe 5 writes."""
    return {"label": label, "points": points, "group_id": None, "description": "",
            "shape_type": shape_type, "flags": {}, "mask": None}


def labelme_document(image_path: str, width: int, height: int, shapes: list[dict],
                     image_data: str | None) -> dict:
    """A LabelMe annotation, keys in the release's order."""
    return {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": image_data, "imageHeight": height, "imageWidth": width}


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
