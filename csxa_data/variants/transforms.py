"""Pure image operations on arrays, shared by the variant builder, the tests and the benchmarks.

Boxes are ``(x0, y0, x1, y1)`` in pixels, half-open: columns x0..x1-1 and rows y0..y1-1.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]


def centre_box(width: int, height: int, size: int) -> Box:
    """A ``size`` x ``size`` box centred on the image; it reaches outside a smaller image."""
    x0 = (width - size) // 2
    y0 = (height - size) // 2
    return x0, y0, x0 + size, y0 + size


def landmark_box(
    box: tuple[float, float, float, float], width: int, height: int, grow_x: float = 0, grow_y: float = 0
) -> Box:
    """The pixels covering the landmark bounding box, grown by ``grow_x``/``grow_y`` in all (half
    on each side, as the paper's wide crop: up to 100 px horizontally, 200 px vertically), clamped
    to the image."""
    x0, y0, x1, y1 = box
    return (
        max(0, math.floor(x0 - grow_x / 2)),
        max(0, math.floor(y0 - grow_y / 2)),
        min(width, math.floor(x1 + grow_x / 2) + 1),
        min(height, math.floor(y1 + grow_y / 2) + 1),
    )


def box_problem(box: Box, width: int, height: int, min_side: int) -> str | None:
    """Why a crop box cannot be used (degenerate or outside the image), or None."""
    x0, y0, x1, y1 = box
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return f"crop box {box} lies outside the {width}x{height} image"
    if x1 - x0 < min_side or y1 - y0 < min_side:
        return f"crop box {box} is degenerate (a side under {min_side} px)"
    return None


def crop(grey: np.ndarray, box: Box, fill: int = 0) -> np.ndarray:
    """The box cut from the image; where it reaches outside, padded with ``fill``."""
    x0, y0, x1, y1 = box
    h, w = grey.shape[:2]
    if 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h:
        return grey[y0:y1, x0:x1].copy()  # one C-ordered copy; the input may be a strided view
    out = np.full((y1 - y0, x1 - x0) + grey.shape[2:], fill, dtype=grey.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = grey[sy0:sy1, sx0:sx1]
    return out


def _equalise_lut(img: Image.Image) -> list[int] | None:
    """The equalisation table of a uint8 (mode L) image, or None for a flat image (nothing to spread)."""
    hist = np.asarray(img.histogram(), dtype=np.int64)
    cdf = np.cumsum(hist)
    cdf_min = cdf[np.flatnonzero(hist)[0]]
    n = img.width * img.height
    if n == cdf_min:
        return None
    return np.round((cdf - cdf_min) * 255.0 / (n - cdf_min)).clip(0, 255).astype(np.uint8).tolist()


def equalise(grey: np.ndarray) -> np.ndarray:
    """Histogram equalisation of a uint8 image: v -> round(255 (cdf(v) - cdf_min) / (n - cdf_min)).
    (The histogram and the table lookup run in Pillow's C loops: the same integers, 4x faster.)"""
    img = Image.fromarray(np.ascontiguousarray(grey))
    lut = _equalise_lut(img)
    return grey.copy() if lut is None else np.asarray(img.point(lut))


def invert(grey: np.ndarray) -> np.ndarray:
    """The negative of a uint8 image."""
    return 255 - grey


def stack(*channels: np.ndarray) -> np.ndarray:
    """Three grey images as the channels of one H x W x 3 image."""
    return np.stack(channels, axis=-1)


COLOUR_PLANES = ("grey", "equalised", "inverted")
COLOUR_ORDERS = {"a": ("grey", "equalised", "inverted"), "b": ("grey", "inverted", "equalised")}


def colour_stack(grey: np.ndarray, order: str) -> np.ndarray:
    """The paper's colour enhancement: grey first, then equalised and inverted in ``order``."""
    planes = colour_planes(grey)
    return stack(*(planes[name] for name in COLOUR_ORDERS[order]))


def colour_planes(grey: np.ndarray) -> dict[str, np.ndarray]:
    """The three planes the colour variants stack: grey, equalised, inverted."""
    return {"grey": grey, "equalised": equalise(grey), "inverted": invert(grey)}


def colour_planes_resized(grey: np.ndarray, size: int) -> np.ndarray:
    """The colour variants' planes at ``size`` x ``size``, in ``COLOUR_PLANES`` order (H x W x 3):
    the grey crop resized; its histogram equalisation, computed at the crop's own resolution as the
    paper does, then resized; and the negative of the resized grey plane, so that channel 2 is
    exactly 255 minus channel 0. (Inverting before resizing is the same up to Lanczos's rounding and
    clamping, a few grey levels at most, and costs a third resize.)"""
    img = Image.fromarray(np.ascontiguousarray(grey))
    lut = _equalise_lut(img)
    small, equalised = _resized_pair(img, img if lut is None else img.point(lut), size)
    return np.stack([small, equalised, 255 - small], axis=-1)


def _resized_pair(first: Image.Image, second: Image.Image, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two mode-L images of one size, each resized exactly as ``resize_square`` would, in fewer passes.

    ``Image.resize`` with ``reducing_gap=1.0`` box-reduces by the whole part of the scale, then
    applies Lanczos to the rest. Here each image is box-reduced alone, and the two reduced images go
    through Lanczos together as the two bands of one "La" image (Pillow resamples each band as it
    would alone; La is premultiplied already, so nothing is multiplied): the same pixels, about 10%
    faster than one "La" resize of the full-size pair, whose merge touches four times the pixels.
    """
    width, height = first.size
    factor = (max(width // size, 1), max(height // size, 1))  # Pillow's int(w / size / reducing_gap) or 1
    if factor != (1, 1):
        first, second = first.reduce(factor), second.reduce(factor)
    pair = Image.merge("La", (first, second)).resize(
        (size, size), Image.Resampling.LANCZOS, box=(0, 0, width / factor[0], height / factor[1])
    )
    return tuple(np.asarray(band) for band in pair.split())


def order_channels(planes: np.ndarray, order: str) -> np.ndarray:
    """An H x W x 3 image of the planes in ``COLOUR_PLANES`` order, reordered as ``order`` says."""
    index = [COLOUR_PLANES.index(name) for name in COLOUR_ORDERS[order]]
    return planes if index == [0, 1, 2] else np.ascontiguousarray(planes[..., index])


def _resized(img: Image.Image, size: int) -> Image.Image:
    return img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=1.0)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` (as the paper, without keeping the aspect), anti-aliased:
    an integer box reduction by the whole part of the scale first, then Lanczos."""
    # a three-channel image is resized in one pass, each channel exactly as if resized alone
    return np.asarray(_resized(Image.fromarray(np.ascontiguousarray(image)), size))
