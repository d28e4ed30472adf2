"""Pure functions that put the real release's film artefacts on a grey radiograph array:
burned-in borders, text and a scale bar, inversion, and the colour modes the PNGs are stored in."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FOOTNOTES = ("C-SPINE LAT", "LAT", "R", "L", "DZM HOSP", "NECK NEUTRAL", "STANDING", "kV 70 mAs 16")


def _font(size: int) -> ImageFont.ImageFont:
    # Pillow's bundled font: identical on every machine, so the pixels are reproducible
    return ImageFont.load_default(size=max(8, size))


def add_border(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniform frame (black or white) of 2-6% of the short side on one to four edges."""
    out = grey.copy()
    h, w = out.shape
    value = int(rng.choice([0, 255, 230]))
    thick = max(2, int(min(h, w) * rng.uniform(0.02, 0.06)))
    edges = rng.permutation(4)[: int(rng.integers(1, 5))]
    for edge in edges:
        if edge == 0:
            out[:thick, :] = value
        elif edge == 1:
            out[-thick:, :] = value
        elif edge == 2:
            out[:, :thick] = value
        else:
            out[:, -thick:] = value
    return out


def burn_text(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One to three labels or footnotes written into the pixels near the corners."""
    img = Image.fromarray(grey)
    draw = ImageDraw.Draw(img)
    h, w = grey.shape
    size = max(8, int(h * rng.uniform(0.025, 0.045)))
    font = _font(size)
    for _ in range(int(rng.integers(1, 4))):
        text = str(rng.choice(FOOTNOTES))
        if rng.random() < 0.4:
            text += f" {int(rng.integers(2012, 2022))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"
        x = int(rng.uniform(0.02, 0.55) * w)
        y = int(rng.choice([rng.uniform(0.01, 0.08), rng.uniform(0.88, 0.95)]) * h)
        draw.text((x, y), text, fill=int(rng.integers(200, 256)), font=font)
    return np.asarray(img)


def burn_scale_bar(grey: np.ndarray, rng: np.random.Generator, mm_per_pixel: float) -> np.ndarray:
    """A ruler of 10 ticks, one per centimetre at the film's scale, along the right or bottom edge."""
    img = Image.fromarray(grey)
    draw = ImageDraw.Draw(img)
    h, w = grey.shape
    step = 10.0 / mm_per_pixel  # pixels per centimetre
    ticks = int(min(10, (0.8 * h) // step))
    fill = int(rng.integers(210, 256))
    width = max(1, h // 300)
    if rng.random() < 0.5:  # vertical, along the right edge
        x, y0 = int(w * rng.uniform(0.90, 0.95)), int(h * rng.uniform(0.08, 0.15))
        draw.line([(x, y0), (x, y0 + ticks * step)], fill=fill, width=width)
        for i in range(ticks + 1):
            y = y0 + i * step
            draw.line([(x - (8 if i % 5 == 0 else 4) * width, y), (x, y)], fill=fill, width=width)
    else:  # horizontal, along the bottom
        y, x0 = int(h * rng.uniform(0.90, 0.95)), int(w * rng.uniform(0.05, 0.12))
        ticks = int(min(ticks, (0.8 * w) // step))
        draw.line([(x0, y), (x0 + ticks * step, y)], fill=fill, width=width)
        for i in range(ticks + 1):
            x = x0 + i * step
            draw.line([(x, y - (8 if i % 5 == 0 else 4) * width), (x, y)], fill=fill, width=width)
    return np.asarray(img)


def invert(grey: np.ndarray) -> np.ndarray:
    """The negative: white background, dark bone."""
    return 255 - grey


def to_mode(grey: np.ndarray, mode: str) -> Image.Image:
    """Grey stored as L, as RGB with three equal channels, or as RGBA with a fully opaque alpha."""
    img = Image.fromarray(grey, mode="L")
    return img if mode == "L" else img.convert(mode)
