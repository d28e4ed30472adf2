"""Decoding release PNGs to grey arrays, and what ingest needs to know of each film."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageProblem(ValueError):
    """A file that cannot be used as a film; the message says why."""

    rule = "png_unreadable"


class ImageTooLarge(ImageProblem):
    """A film with more pixels than allowed (``ingest.max_film_pixels``); refused before decoding."""

    rule = "png_too_large"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The real films are about 1000 x 800 px; a 16-bit 9400 x 9400 film would take gigabytes to decode.
DEFAULT_MAX_PIXELS = 16_000_000

# (PNG colour type, bit depth) -> Pillow's mode, for the layouts the fast decoder gives exactly as
# Pillow does; anything else (palette, 1-4 bit, 16-bit colour, a tRNS chunk, Adam7 interlacing) is
# decoded by Pillow.
_FAST_LAYOUTS = {(0, 8): "L", (0, 16): "I;16", (2, 8): "RGB", (4, 8): "LA", (6, 8): "RGBA"}
_CHANNELS = {"L": 1, "I;16": 1, "RGB": 3, "LA": 2, "RGBA": 4}


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR, or None if the bytes do not start
    like a PNG; read without decoding anything."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return width, height, data[24], data[25]


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width} x {height} px = {width * height:,} pixels, over the {max_pixels:,} "
            "allowed per film (ingest.max_film_pixels); not decoded"
        )


def open_png(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode PNG bytes fully with Pillow; anything else (empty, truncated, another format, more than
    ``max_pixels`` pixels) is an ImageProblem."""
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    header = png_header(data)
    if header is not None:  # before Pillow, whose own bomb guard raises from Image.open
        _check_pixels(header[0], header[1], max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format != "PNG":
                raise ImageProblem(f"not a PNG (the bytes are {img.format})")
            _check_pixels(img.width, img.height, max_pixels)
            img.load()
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("not an image (unrecognised bytes)") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageProblem(f"PNG does not decode ({exc})") from None
    return img


@dataclass(frozen=True)
class Film:
    """A decoded film: its Pillow mode and size, and its pixels as ``np.asarray(pillow_image)``
    would give them (from the fast decoder), or the Pillow image itself (the fallback)."""

    mode: str
    width: int
    height: int
    pixels: np.ndarray | None = None
    image: Image.Image | None = None

    def grey(self) -> tuple[np.ndarray, bool]:
        """The whole film as uint8 grey, and whether its colour channels were equal (see ``to_grey``)."""
        return to_grey(self.image) if self.pixels is None else _grey_pixels(self.mode, self.pixels)

    def grey_region(self, box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The part inside ``box`` as grey and that part's box (``box`` clipped to the film); the grey
        may be a strided view into the film's pixels, for a caller that copies it anyway."""
        if self.pixels is None:
            return grey_region(self.image, box)
        clipped = _clip(box, self.width, self.height)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            return np.zeros((0, 0), dtype=np.uint8), clipped
        x0, y0, x1, y1 = clipped
        return _grey_view(self.mode, self.pixels[y0:y1, x0:x1])[0], clipped


def _fast_decode(data: bytes, header: tuple[int, int, int, int]) -> Film | None:
    """The film decoded by libpng through imagecodecs, or None where Pillow must decode it (a layout
    the fast path does not give exactly as Pillow, imagecodecs missing, or any decoder complaint:
    Pillow then gives the verdict)."""
    width, height, depth, colour = header
    mode = _FAST_LAYOUTS.get((colour, depth))
    # libpng, as imagecodecs drives it, decodes interlaced films right but prints a warning per film
    interlaced = data[28] != 0
    if mode is None or interlaced or b"tRNS" in data[: data.find(b"IDAT")]:
        return None
    try:
        import imagecodecs

        pixels = imagecodecs.png_decode(data)
    except Exception:  # ImportError, or imagecodecs.PngError and kin on damaged data
        return None
    shape = (height, width) if _CHANNELS[mode] == 1 else (height, width, _CHANNELS[mode])
    if pixels.shape != shape or pixels.dtype != (np.uint16 if depth == 16 else np.uint8):
        return None
    return Film(mode, width, height, pixels=pixels)


def decode_film(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, fast: bool = True) -> Film:
    """Decode a release PNG once, refusing more than ``max_pixels`` pixels before decoding.

    With ``fast`` (the default) the usual layouts go through libpng (imagecodecs), about twice as
    fast as Pillow with identical pixels; the rest, and anything libpng rejects, through Pillow.
    """
    header = png_header(data)
    if header is not None:
        _check_pixels(header[0], header[1], max_pixels)
        film = _fast_decode(data, header) if fast else None
        if film is not None:
            return film
    img = open_png(data, max_pixels)
    return Film(img.mode, img.width, img.height, image=img)


def _grey_pixels(mode: str, pixels: np.ndarray) -> tuple[np.ndarray, bool]:
    """``to_grey`` for the pixels of a Pillow image of this mode (as ``np.asarray`` gives them)."""
    grey, equal = _grey_view(mode, pixels)
    return np.ascontiguousarray(grey), equal


def _grey_view(mode: str, pixels: np.ndarray) -> tuple[np.ndarray, bool]:
    """``_grey_pixels``, where a grey stored as colour comes back as a view of its first channel."""
    if mode == "L":
        return pixels, True
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.clip(pixels.astype(np.int64) >> 8, 0, 255).astype(np.uint8), True
    if mode in ("RGB", "RGBA"):
        if _channels_equal(pixels):
            return pixels[..., 0], True
        # Pillow's own conversion (ITU-R 601-2 luma, its rounding); it ignores alpha
        return np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB").convert("L")), False
    if mode == "LA":
        return pixels[..., 0], True
    raise ValueError(f"no grey rule for mode {mode}")


def _channels_equal(pixels: np.ndarray) -> bool:
    """Whether R, G and B are equal at every pixel of an H x W x 3 or H x W x 4 uint8 array."""
    if pixels.shape[-1] == 4 and pixels.strides[-1] == 1 and pixels.size:
        # each RGBA pixel as one little-endian word R | G << 8 | B << 16 | A << 24: R == G == B
        # exactly where the low 16 bits of word ^ (word >> 8) are zero (one pass, no channel copies)
        words = pixels.view("<u4")[..., 0]
        diff = words >> 8
        np.bitwise_xor(diff, words, out=diff)
        np.bitwise_and(diff, 0xFFFF, out=diff)
        return not diff.any()
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return np.array_equal(r, g) and np.array_equal(g, b)


def to_grey(img: Image.Image) -> tuple[np.ndarray, bool]:
    """The film as a uint8 grey array, and whether its colour channels were equal.

    Grey stored as colour (RGB/RGBA with three equal channels, the release's usual form) keeps
    its first channel exactly; 16-bit grey keeps its 8 high bits; anything else is converted.
    """
    mode = img.mode
    if mode in ("L", "I;16", "I;16B", "I;16L", "I", "RGB", "RGBA", "LA"):
        return _grey_pixels(mode, np.asarray(img))
    return np.asarray(img.convert("L")), mode in ("1", "P")


def _clip(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def grey_region(img: Image.Image, box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of the film inside ``box`` as grey, and that part's box (the box clipped to the
    film); converting only the region saves most of the conversion cost of a crop."""
    clipped = _clip(box, img.width, img.height)
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
    inner = grey[h // 12 : h - h // 12, w // 12 : w - w // 12]
    return float(np.median(inner if inner.size else grey)) > 127.5
