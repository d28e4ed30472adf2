"""Contact sheets: rows of captioned pictures on one page, for people who would rather look than read
(variant previews, near-duplicate films)."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont


def tile_grid(rows: list[tuple[str, list[tuple[Image.Image, str]]]], tile: int, pad: int = 6) -> Image.Image:
    """Rows of (title, [(image, caption), ...]) on a dark page, each image scaled to ``tile`` high."""
    font = ImageFont.load_default(size=max(10, tile // 18))
    title_h, caption_h = tile // 8, tile // 12
    scaled = [
        [
            (img.resize((max(1, round(img.width * tile / img.height)), tile), Image.Resampling.LANCZOS), cap)
            for img, cap in items
        ]
        for _, items in rows
    ]
    # at least two tiles wide, so that a title over an empty row still shows
    width = max([sum(im.width + pad for im, _ in items) + pad for items in scaled] + [2 * tile])
    height = len(rows) * (title_h + tile + caption_h + pad) + pad
    page = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(page)
    y = pad
    for (title, _), items in zip(rows, scaled):
        draw.text((pad, y), title, fill=(235, 235, 235), font=font)
        y += title_h
        x = pad
        for img, caption in items:
            page.paste(img.convert("RGB"), (x, y))
            draw.text((x, y + tile + 2), caption, fill=(190, 190, 190), font=font)
            x += img.width + pad
        y += tile + caption_h + pad
    return page


def mark_points(img: Image.Image, points: dict[str, tuple[float, float]]) -> Image.Image:
    """``img`` in colour with a red dot on each point (landmarks)."""
    img = img.convert("RGB")
    draw = ImageDraw.Draw(img)
    r = max(2, img.height // 150)
    for x, y in points.values():
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(230, 40, 40))
    return img
