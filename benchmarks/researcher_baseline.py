"""A plain per-image Pillow script, as a researcher would write one: open each film, convert it to
grey, crop, (for a colour variant: equalise, invert, merge), resize, save one PNG per file into a
folder per variant. One process, no shards. The benchmark's yardstick, not part of csxa.

    python benchmarks/researcher_baseline.py --release R --manifest M --variant wide_cropped --out DIR
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import pandas as pd
from PIL import Image, ImageOps

VARIANTS = {  # (crop, grow_x, grow_y, colour) at the paper's settings
    "original": ("centre", 0, 0, False),
    "cropped": ("landmarks", 0, 0, False),
    "wide_cropped": ("landmarks", 100, 200, False),
    "colored": ("centre", 0, 0, True),
    "colored_cropped": ("landmarks", 0, 0, True),
    "colored_wide_cropped": ("landmarks", 100, 200, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--variant", choices=list(VARIANTS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--train-orders",
        choices=["both", "a"],
        default="both",
        help="colour: write both channel orders of a train case, or order a only (as the build)",
    )
    args = parser.parse_args()
    crop, grow_x, grow_y, colour = VARIANTS[args.variant]
    folder = args.out / args.variant
    folder.mkdir(parents=True, exist_ok=True)
    archive = zipfile.ZipFile(args.release / "datasets-PNG.zip")
    paths = {Path(n).name: n for n in archive.namelist()}
    for case in pd.read_csv(args.manifest, dtype={"stem": str}).itertuples():
        with archive.open(paths[case.png_name]) as handle:
            grey = Image.open(handle).convert("L")
        if crop == "centre":
            left, top = (grey.width - 500) // 2, (grey.height - 500) // 2
            box = (left, top, left + 500, top + 500)
        else:
            box = (
                max(0, int(case.box_x0 - grow_x / 2)),
                max(0, int(case.box_y0 - grow_y / 2)),
                min(grey.width, int(case.box_x1 + grow_x / 2) + 1),
                min(grey.height, int(case.box_y1 + grow_y / 2) + 1),
            )
        grey = grey.crop(box)
        if not colour:
            grey.resize((224, 224), Image.Resampling.LANCZOS).save(folder / f"{case.stem}.png")
            continue
        equalised, inverted = ImageOps.equalize(grey), ImageOps.invert(grey)
        orders = [("_a", (grey, equalised, inverted)), ("_b", (grey, inverted, equalised))]
        for suffix, planes in orders if case.split == "train" and args.train_orders == "both" else orders[:1]:
            image = Image.merge("RGB", planes).resize((224, 224), Image.Resampling.LANCZOS)
            image.save(folder / f"{case.stem}{suffix}.png")


if __name__ == "__main__":
    main()
