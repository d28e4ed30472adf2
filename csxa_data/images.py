"""Decoding release PNGs to grey arrays, and what ingest needs to know of each film."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageProblem(ValueError):
    """A file that cannot be used as a film; the message says why."""


def open_png(data: bytes) -> Image.Image:
    """Decode PNG bytes fully; anything else (empty, truncated, another format) is an ImageProblem."""
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format != "PNG":
                raise ImageProblem(f"not a PNG (the bytes are {img.format})")
            img.load()
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("not an image (unrecognised bytes)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise ImageProblem(f"PNG does not decode ({exc})") from None
    return img


def to_grey(img: Image.Image) -> tuple[np.ndarray, bool]:
    """The film as a uint8 grey array, and whether its colour channels were equal.

    Grey stored as colour (RGB/RGBA with three equal channels, the release's usual form) keeps
    its first channel exactly; 16-bit grey keeps its 8 high bits; anything else is converted.
    """
    mode = img.mode
    if mode == "L":
        return np.asarray(img), True
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.int64)
        return np.clip(wide >> 8, 0, 255).astype(np.uint8), True
    if mode in ("RGB", "RGBA"):
        pixels = np.asarray(img)
        r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        if np.array_equal(r, g) and np.array_equal(g, b):
            return np.ascontiguousarray(r), True
        return np.asarray(img.convert("L")), False
    if mode == "LA":
        return np.ascontiguousarray(np.asarray(img)[..., 0]), True
    return np.asarray(img.convert("L")), mode in ("1", "P")


def grey_region(img: Image.Image, box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of the film inside ``box`` as grey, and that part's box (the box clipped to the
    film); converting only the region saves most of the conversion cost of a crop."""
    x0, y0, x1, y1 = box
    clipped = (max(x0, 0), max(y0, 0), min(x1, img.width), min(y1, img.height))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return np.zeros((0, 0), dtype=np.uint8), clipped
    grey, _ = to_grey(img.crop(clipped))
    return grey, clipped


def is_inverted(grey: np.ndarray) -> bool:
    """True for a negative film (white background, dark bone).

    A lateral neck film is mostly background and soft tissue, so its median grey is dark on a
    normal film and bright on an inverted one; the outer band, where burned-in borders sit, is
    left out.
    """
    h, w = grey.shape
    inner = grey[h // 12: h - h // 12, w // 12: w - w // 12]
    return float(np.median(inner if inner.size else grey)) > 127.5
