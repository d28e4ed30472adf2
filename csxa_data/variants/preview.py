"""Pictures for people: contact sheets of release films (and, later, of variants)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from csxa_data.atomic import atomic_path
from csxa_data.errors import CsxaError
from csxa_data.release.images import ImageProblem, open_png
from csxa_data.release.landmarks import shape_locations
from csxa_data.release.reader import ReleaseParams, open_release
from csxa_data.shards.format import read_shards, split_shards
from csxa_data.shards.sources import open_source
from csxa_data.shards.verify import shard_report, split_samples
from csxa_data.sheets import mark_points, tile_grid

CLASS_TITLES = {0: "asymptomatic (healthy)", 1: "spondylosis"}


def release_contact_sheet(
    root: str | Path,
    config: ReleaseParams,
    out: str | Path,
    *,
    per_class: int = 4,
    tile: int = 260,
    landmarks: bool = False,
) -> Path:
    """The first ``per_class`` films of each class (by case number) in two labelled rows."""
    release = open_release(root, config)
    codes = {str(k).strip().lower(): int(v) for k, v in config.label_codes.items()}
    by_case = {m.stem[:4]: m for m in release.pngs if m.name.lower().endswith(".png")}
    json_names = {m.stem: m.name for m in release.jsons}
    picked: dict[int, list] = {0: [], 1: []}
    for row in release.columns.itertuples():
        label = codes.get(str(row.label).strip().lower())
        number = str(row.number).strip()
        key = f"{int(number):04d}" if number.isascii() and number.isdigit() else None  # not "²" or "٣"
        if label is None or key not in by_case or len(picked[label]) >= per_class:
            continue
        member = by_case[key]
        try:
            img = open_png(release.pngs.read(member.name))
        except (ImageProblem, CsxaError) as exc:
            print(f"contact sheet: skipped {member.location}: {exc}", file=sys.stderr)
            continue
        caption = f"{member.stem} {img.width}x{img.height} {img.mode}"
        if landmarks and member.stem in json_names:
            try:
                img = mark_points(img, shape_locations(json.loads(release.jsons.read(json_names[member.stem]))))
            except (ValueError, RecursionError, CsxaError, AttributeError, TypeError, OverflowError) as exc:
                print(f"contact sheet: no landmarks for {member.stem}: {exc}", file=sys.stderr)
        picked[label].append((img, caption))
    if not any(picked.values()):
        raise CsxaError("no case with both a class in the sheet and a PNG", path=root)
    page = tile_grid([(CLASS_TITLES[k], v) for k, v in picked.items() if v], tile)
    out = Path(out)
    with atomic_path(out) as tmp:
        page.save(tmp, format="PNG")
    return out


def _first_per_class(variant_dir: Path, per_class: int) -> dict[int, list[dict]]:

    picked: dict[int, list[dict]] = {0: [], 1: []}
    for sample in read_shards(split_shards(variant_dir, "test")):
        if len(picked[sample["label"]]) < per_class:
            picked[sample["label"]].append(sample)
            if all(len(v) >= per_class for v in picked.values()):
                break
    return picked


def variant_preview(variant_dir: str | Path, name: str, per_class: int = 3, tile: int = 160) -> Image.Image:
    """The first test cases of each class as this variant shows them (the paper's Figure 4)."""
    picked = _first_per_class(Path(variant_dir), per_class)
    rows = [
        (f"{name}: {CLASS_TITLES[label]}", [(Image.fromarray(s["image"]), s["key"]) for s in samples])
        for label, samples in picked.items()
        if samples
    ]
    return tile_grid(rows or [(f"{name}: no test samples to show", [])], tile)


def compare_variants(
    variants_dir: str | Path, names: list[str], out: str | Path, per_class: int = 2, tile: int = 150
) -> Path:
    """One sheet: the same test cases (first of each class) in every variant, a row per variant.
    Each variant's test split is streamed whole and verified against its shards.json (sha256,
    counts, splits), as a trainer reads it; a variant without one of the chosen cases, or giving it
    another label, is an error naming it."""

    variants_dir = Path(variants_dir)
    missing = [n for n in names if not (variants_dir / n / "shards.json").is_file()]
    if missing:
        raise CsxaError(f"no built variant(s) {missing}; run `dvc repro` first", path=variants_dir)
    rows, chosen = [], None  # chosen: key -> label, from the first variant
    for name in names:
        source = open_source(variants_dir / name)
        counts, picked = {0: 0, 1: 0}, {}
        for sample in split_samples(source, shard_report(source), "test"):
            if chosen is None and counts[sample["label"]] < per_class:
                counts[sample["label"]] += 1
                picked[sample["key"]] = sample
            elif chosen is not None and sample["key"] in chosen:
                picked[sample["key"]] = sample
        if chosen is None:
            chosen = {s["key"]: s["label"] for label in (0, 1) for s in picked.values() if s["label"] == label}
        lacking = [k for k in chosen if k not in picked or picked[k]["label"] != chosen[k]]
        if lacking:
            raise CsxaError(
                f"variant {name} lacks test case(s) {lacking[:3]} of {names[0]}, or labels them otherwise: "
                "were they built from different manifests? Rebuild them (dvc repro)",
                path=variants_dir / name,
            )
        rows.append(
            (
                name,
                [(Image.fromarray(picked[k]["image"]), f"{k} ({CLASS_TITLES[chosen[k]].split()[0]})") for k in chosen],
            )
        )
    out = Path(out)
    with atomic_path(out) as tmp:
        tile_grid(rows, tile).save(tmp, format="PNG")
    return out
