"""Pictures for people who look rather than read: confusion matrix and ROC curve in one PNG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

CLASS_NAMES = ("asymptomatic", "spondylosis")


def _font(size: int):
    return ImageFont.load_default(size=size)


def _confusion_panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], c: dict, title: str) -> None:
    x0, y0 = origin
    cell = 120
    font, small = _font(16), _font(13)
    draw.text((x0, y0), title, fill="black", font=font)
    grid = [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]
    top, left = y0 + 60, x0 + 110
    draw.text((left, y0 + 32), "predicted: " + " | ".join(CLASS_NAMES), fill="black", font=small)
    for i, row in enumerate(grid):
        total = max(sum(row), 1)
        draw.text((x0, top + i * cell + cell // 2 - 8), f"actual\n{CLASS_NAMES[i]}", fill="black", font=small)
        for j, count in enumerate(row):
            share = count / total
            shade = int(255 - 170 * share)
            box = [left + j * cell, top + i * cell, left + (j + 1) * cell - 2, top + (i + 1) * cell - 2]
            draw.rectangle(box, fill=(shade, shade, 255), outline="black")
            draw.text((box[0] + 12, box[1] + 40), f"{count}\n{share:.0%} of row", fill="black", font=font)


def _roc_panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], roc: pd.DataFrame, auc: float | None,
               point: tuple[float, float] | None) -> None:
    x0, y0 = origin
    size = 260
    font, small = _font(16), _font(13)
    draw.text((x0, y0), f"ROC (AUROC {auc:.3f})" if auc is not None else "ROC (one class in test)", fill="black",
              font=font)
    left, top = x0 + 40, y0 + 30
    draw.rectangle([left, top, left + size, top + size], outline="black")
    draw.line([left, top + size, left + size, top], fill=(170, 170, 170), width=1)
    pts = [(left + fpr * size, top + size - tpr * size) for fpr, tpr in zip(roc.fpr, roc.tpr)]
    if len(pts) > 1:
        draw.line(pts, fill=(200, 40, 40), width=3)
    if point is not None:
        px, py = left + point[0] * size, top + size - point[1] * size
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], outline=(20, 20, 160), width=2)
    draw.text((left + size // 2 - 70, top + size + 6), "1 - specificity (FPR)", fill="black", font=small)
    draw.text((x0 - 4, top + size // 2), "TPR", fill="black", font=small)


def evaluation_figure(metrics: dict, roc: pd.DataFrame, title: str, out: str | Path) -> Path:
    """One PNG: the model's confusion matrix, the majority baseline's, and the ROC curve."""
    img = Image.new("RGB", (1180, 420), "white")
    draw = ImageDraw.Draw(img)
    draw.text((20, 10), f"{title}   balanced accuracy {metrics['balanced_accuracy']:.3f}   accuracy "
              f"{metrics['accuracy']:.3f} (baseline {metrics['baseline']['accuracy']:.3f})", fill="black", font=_font(18))
    _confusion_panel(draw, (20, 50), metrics["confusion"], "model")
    _confusion_panel(draw, (390, 50), metrics["baseline"]["confusion"], f"baseline: {metrics['baseline']['rule']}")
    c = metrics["confusion"]
    point = (c["fp"] / max(c["fp"] + c["tn"], 1), c["tp"] / max(c["tp"] + c["fn"], 1))
    _roc_panel(draw, (800, 50), roc, metrics["auroc"], point)
    out = Path(out)
    img.save(out, format="PNG")
    return out
