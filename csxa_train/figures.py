"""Pictures for people who look rather than read: one experiment's confusion matrices, ROC curve
and reliability diagram in one PNG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

CLASS_NAMES = ("asymptomatic", "spondylosis")


def figure_font(size: int):
    """The figures' font at ``size`` px."""
    return ImageFont.load_default(size=size)


def _confusion_panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], c: dict, title: str) -> None:
    x0, y0 = origin
    cell = 120
    font, small = figure_font(16), figure_font(13)
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


def _roc_panel(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    roc: pd.DataFrame,
    auc: float | None,
    point: tuple[float, float] | None,
) -> None:
    x0, y0 = origin
    size = 260
    font, small = figure_font(16), figure_font(13)
    draw.text(
        (x0, y0), f"ROC (AUROC {auc:.3f})" if auc is not None else "ROC (one class in test)", fill="black", font=font
    )
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


def _reliability_panel(
    draw: ImageDraw.ImageDraw, origin: tuple[int, int], calibration: pd.DataFrame, ece: float
) -> None:
    """Observed fraction of spondylosis against the mean score per bin; the diagonal is perfect
    calibration, and each dot's area follows its bin's count."""
    x0, y0 = origin
    size = 260
    font, small = figure_font(16), figure_font(13)
    draw.text((x0, y0), f"reliability (ECE {ece:.3f})", fill="black", font=font)
    left, top = x0 + 40, y0 + 30
    draw.rectangle([left, top, left + size, top + size], outline="black")
    draw.line([left, top + size, left + size, top], fill=(170, 170, 170), width=1)
    used = calibration[calibration["count"] > 0]
    biggest = max(int(used["count"].max()), 1) if len(used) else 1
    for row in used.itertuples():
        px, py = left + row.mean_score * size, top + size - row.fraction_positive * size
        r = 3 + 9 * (row.count / biggest) ** 0.5
        draw.ellipse([px - r, py - r, px + r, py + r], outline=(20, 120, 20), width=2)
    draw.text((left + size // 2 - 40, top + size + 6), "mean score", fill="black", font=small)
    draw.text((x0 - 4, top + size // 2), "obs.", fill="black", font=small)


def evaluation_figure(metrics: dict, roc: pd.DataFrame, calibration: pd.DataFrame, title: str, out: str | Path) -> Path:
    """One PNG: the model's confusion matrix (at 0.5), the majority baseline's, the ROC curve (the
    chosen threshold's point marked) and the reliability diagram."""
    img = Image.new("RGB", (1560, 420), "white")
    draw = ImageDraw.Draw(img)
    draw.text(
        (20, 10),
        f"{title}   balanced accuracy {metrics['balanced_accuracy']:.3f}   accuracy "
        f"{metrics['accuracy']:.3f} (baseline {metrics['baseline']['accuracy']:.3f})   at threshold "
        f"{metrics['threshold']:.3f}: balanced accuracy {metrics['at_threshold']['balanced_accuracy']:.3f}",
        fill="black",
        font=figure_font(18),
    )
    _confusion_panel(draw, (20, 50), metrics["confusion"], "model (threshold 0.5)")
    _confusion_panel(draw, (390, 50), metrics["baseline"]["confusion"], f"baseline: {metrics['baseline']['rule']}")
    c = metrics["at_threshold"]["confusion"]
    point = (c["fp"] / max(c["fp"] + c["tn"], 1), c["tp"] / max(c["tp"] + c["fn"], 1))
    _roc_panel(draw, (800, 50), roc, metrics["auroc"], point)
    _reliability_panel(draw, (1180, 50), calibration, metrics["ece"])
    out = Path(out)
    img.save(out, format="PNG")
    return out


COMPARED = (
    ("balanced_accuracy", "balanced accuracy"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("auroc", "AUROC"),
    ("accuracy", "accuracy"),
)


def comparison_figure(table: pd.DataFrame, facts: dict, out) -> None:
    """One PNG: per metric, every experiment's point and interval on a 0..1 axis, the majority
    baseline's value drawn across as a dashed line, the reference in blue."""
    import math

    experiments, baseline = table.iloc[:-1], table.iloc[-1]
    label_width, panel, gap, row_h, top = 250, 230, 24, 26, 70
    width = label_width + len(COMPARED) * (panel + gap) + 10
    height = top + row_h * len(experiments) + 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = figure_font(16), figure_font(12)
    level = round(100 * facts["confidence"])
    draw.text(
        (10, 8),
        f"{facts['n']} test cases; points with {level}% intervals; dashed: majority baseline "
        f"(always class {facts['majority_class']}); blue: reference {facts['reference']}",
        fill="black",
        font=font,
    )

    def finite(v):
        return v is not None and not (isinstance(v, float) and math.isnan(v))

    for i, row in enumerate(experiments.itertuples()):
        y = top + 20 + i * row_h
        draw.text((10, y - 7), row.experiment, fill="black", font=small)
    for j, (key, name) in enumerate(COMPARED):
        x0 = label_width + j * (panel + gap)
        draw.text((x0, top - 22), name, fill="black", font=font)
        y_end = top + 20 + len(experiments) * row_h
        draw.rectangle([x0, top, x0 + panel, y_end], outline=(120, 120, 120))
        for tick in (0.0, 0.5, 1.0):
            tx = x0 + tick * panel
            draw.line([tx, y_end, tx, y_end + 4], fill="black")
            draw.text((tx - 8, y_end + 6), f"{tick:g}", fill="black", font=small)
        value = getattr(baseline, key, None)
        if finite(value):
            bx = x0 + value * panel
            for yy in range(top, y_end, 8):
                draw.line([bx, yy, bx, min(yy + 4, y_end)], fill=(200, 40, 40), width=2)
        for i, row in enumerate(experiments.itertuples()):
            y = top + 20 + i * row_h
            colour = (20, 20, 180) if row.reference is True else (30, 30, 30)
            low, high, point = getattr(row, f"{key}_low", None), getattr(row, f"{key}_high", None), getattr(row, key)
            if finite(low) and finite(high):
                draw.line([x0 + low * panel, y, x0 + high * panel, y], fill=colour, width=2)
            if finite(point):
                px = x0 + point * panel
                draw.ellipse([px - 4, y - 4, px + 4, y + 4], fill=colour)
    img.save(out, format="PNG")
