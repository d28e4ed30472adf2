"""Build one preprocessing variant: manifest -> decode once -> crop, colour, resize -> shards.

Output folder (written under a temporary name, renamed into place at the end):
``train-%06d.tar``, ``test-%06d.tar``, ``stats.json`` (train-only per-channel mean/std),
``shards.json`` (per-shard counts per class and sha256, totals, skipped cases), ``preview.png`` and
``README.md`` (the dataset card, :mod:`csxa_data.cards`) and ``croissant.json`` (:mod:`csxa_data.croissant`).
The bytes do not depend on the number of worker processes.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from csxa_data.atomic import atomic_path
from csxa_data.cards import SOURCE_TERMS, release_kind
from csxa_data.croissant import croissant
from csxa_data.errors import CsxaError
from csxa_data.params import worker_count
from csxa_data.release.images import Film, ImageProblem, decode_film
from csxa_data.release.reader import PNG_SET, FileSet, open_file_set
from csxa_data.shards.format import SHARD_PATTERN, sample_members, shard_counts, write_shard
from csxa_data.stamp import Stamp, data_fingerprint
from csxa_data.variants import transforms as T
from csxa_data.variants.card import dataset_card
from csxa_data.variants.preview import variant_preview
from csxa_data.variants.spec import BuildParams, VariantSpec, crop_box, sample_orders

SPLITS = ("train", "test")
# what a variant folder holds (a folder holding anything else is never replaced by a build)
VARIANT_FILES = ("train-*.tar", "test-*.tar", "stats.json", "shards.json", "preview.png", "README.md", "croissant.json")


# --- what to write for one case ----------------------------------------------------------------


def cut(film: Film, box: T.Box, pad_value: int) -> np.ndarray:
    """The crop box of a decoded film as grey, padded where the box reaches outside the film."""
    region, (rx0, ry0, _, _) = film.grey_region(box)
    x0, y0, x1, y1 = box
    return T.crop(region, (x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0), pad_value)


def render_planes(crop: np.ndarray, spec: VariantSpec) -> np.ndarray:
    """The resized planes a variant's images are made of: the grey crop alone (H x W), or grey,
    equalised and inverted (H x W x 3 in ``T.COLOUR_PLANES`` order; see ``T.colour_planes_resized``)."""
    if spec.colour == "grey":
        return T.resize_square(crop, spec.out_size)
    return T.colour_planes_resized(crop, spec.out_size)


def render_image(planes: np.ndarray, order: str | None) -> np.ndarray:
    """One sample's image: the grey plane, or the planes in the order's channel order."""
    return planes if order is None else T.order_channels(planes, order)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def encode_png(image: np.ndarray, level: int) -> bytes:
    """An 8-bit grey (H x W) or RGB (H x W x 3) image as PNG bytes: every row filtered with the
    PNG 'Sub' filter, then deflated by libdeflate at ``level`` (0 stores). About 3x faster than
    Pillow's encoder at level 1 for the same size; the bytes depend only on the pixels, the level
    and libdeflate's version."""
    import imagecodecs

    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type Sub: each byte minus the byte one pixel to its left (mod 256)
    filtered[:, 1 : channels + 1] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, channels + 1 :])
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, {1: 0, 3: 2}[channels], 0, 0, 0])
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", imagecodecs.deflate_encode(filtered.tobytes(), level=level))
        + _png_chunk(b"IEND", b"")
    )


def channel_sums(image: np.ndarray) -> np.ndarray:
    """Per-channel (count, sum, sum of squares) as exact integers; grey counts as three channels."""
    from PIL import Image

    # Pillow's histogram: 256 counts per channel, all channels in one C pass
    hist = np.asarray(Image.fromarray(np.ascontiguousarray(image)).histogram(), dtype=np.int64).reshape(-1, 256)
    values = np.arange(256, dtype=np.int64)
    sums = np.stack([hist.sum(axis=1), hist @ values, hist @ (values * values)])
    return np.repeat(sums, 3, axis=1) if hist.shape[0] == 1 else sums


def case_samples(film: Film, case: dict, spec: VariantSpec, variant: str, level: int) -> list[dict]:
    """Every sample a decoded film yields: key, tar members and pixel sums."""
    box = crop_box(spec, case)
    planes = render_planes(cut(film, box, spec.pad_value), spec)
    plane_sums = channel_sums(planes)  # once per case; an order's sums are these, reordered
    out = []
    for suffix, order in sample_orders(spec, case["split"]):
        image = render_image(planes, order)
        sums = plane_sums if order is None else T.order_channels(plane_sums[None], order)[0]
        key = f"{case['stem']}{suffix}"
        meta = {
            "key": key,
            "number": case["number"],
            "stem": case["stem"],
            "split": case["split"],
            "variant": variant,
            "gender": case["gender"],
            "age": case["age"],
            "label": case["label"],
            "landmark_box": [case["box_x0"], case["box_y0"], case["box_x1"], case["box_y1"]],
            "crop_box": list(box),
            "channels": list(T.COLOUR_ORDERS[order]) if order else ["grey"],
            "inverted": bool(case["inverted"]),
        }
        out.append(
            {
                "key": key,
                "members": sample_members(key, encode_png(image, level), case["label"], meta),
                "sums": sums,
                "label": case["label"],
            }
        )
    return out


# --- workers -----------------------------------------------------------------------------------

_PNGS: FileSet | None = None


def _open_pngs(release: str) -> None:
    global _PNGS
    _PNGS = open_file_set(Path(release), PNG_SET)


def _build_job(job: tuple[dict, VariantSpec, str, int]) -> tuple[int, list[dict] | str]:
    case, spec, variant, level = job
    try:
        # the film may not have grown since ingest measured it
        film = decode_film(_PNGS.read(case["png_name"]), max_pixels=int(case["width"]) * int(case["height"]))
        if (film.width, film.height) != (case["width"], case["height"]):
            raise ImageProblem(f"{film.width}x{film.height}, not the {case['width']}x{case['height']} ingest saw")
    except (ImageProblem, CsxaError, KeyError) as exc:
        return case["number"], f"source PNG unusable now ({exc}); re-run ingest"
    return case["number"], case_samples(film, case, spec, variant, level)


# --- the variant -------------------------------------------------------------------------------


def check_manifest_against_validation(
    manifest: pd.DataFrame, validation: dict, release: str | Path, where: str | Path
) -> None:
    """The manifest must be the one ingest reported in ``validation`` (the dataset card states its
    counts): the same cases per split and class; and the build must read the release ingest read (the
    same path, or one whose files have the sizes ingest recorded)."""
    counted = manifest.groupby(["split", "label"]).size()
    here = {f"{split}/{label}": int(n) for (split, label), n in counted.items()}
    reported = validation["kept"]["by_split_and_class"]
    if len(manifest) != validation["kept"]["cases"] or here != reported:
        raise CsxaError(
            f"the manifest holds {len(manifest)} cases {dict(sorted(here.items()))}, but ingest reported "
            f"{validation['kept']['cases']} {dict(sorted(reported.items()))}: the manifest was edited or "
            "comes from another ingest; run csxa-data ingest again",
            path=where,
        )
    if Path(validation["release"]).resolve() == Path(release).resolve():
        return
    # another path (ingest run from another folder, or a copy moved since): the same release if every
    # file whose size ingest recorded has that size here
    recorded = [e for e in validation["md5"] if isinstance(e.get("bytes"), int) and not isinstance(e["bytes"], bool)]
    if recorded and all(
        (Path(release) / e["file"]).is_file() and (Path(release) / e["file"]).stat().st_size == e["bytes"]
        for e in recorded
    ):
        return
    raise CsxaError(
        f"ingest read the release {validation['release']}, but the build would read {release}, whose "
        f"{'files differ in size from those' if recorded else 'files cannot be compared with what'} ingest "
        "recorded: give --release the release ingest read, or run csxa-data ingest on this one",
        path=where,
    )


def build_variant(
    name: str,
    spec: VariantSpec,
    manifest: pd.DataFrame,
    release: str | Path,
    out: str | Path,
    params: BuildParams,
    *,
    workers: int | None = None,
    progress: bool = True,
    validation: dict | None = None,
    registry: str = "",
    stamp: Stamp | None = None,
) -> dict:
    """Build the variant's shards, stats, shard manifest, preview and, given ingest's
    ``validation`` report, its dataset card (README.md, naming ``registry``, the registry's git URL,
    and the version ``stamp`` that publish wrote) into ``out``; returns shards.json."""
    from tqdm import tqdm

    release, out = Path(release), Path(out)
    cases = manifest.sort_values("number").to_dict("records")
    skipped, todo = [], []
    for case in cases:
        problem = (
            T.box_problem(crop_box(spec, case), case["width"], case["height"], spec.min_box_side)
            if spec.crop == "landmarks"
            else None
        )
        if problem:
            skipped.append({"number": case["number"], "stem": case["stem"], "split": case["split"], "reason": problem})
        else:
            todo.append(case)
    plan = {split: [c for c in todo if c["split"] == split] for split in SPLITS}
    expected = {split: sum(len(sample_orders(spec, split)) for _ in plan[split]) for split in SPLITS}
    jobs = [(case, spec, name, params.png_compress_level) for split in SPLITS for case in plan[split]]
    workers = worker_count(workers, len(jobs))

    with atomic_path(out, directory=True, owns=VARIANT_FILES) as tmp:
        if workers == 1:
            _open_pngs(str(release))
            results = map(_build_job, jobs)
            pool = None
        else:
            pool = get_context("fork").Pool(workers, initializer=_open_pngs, initargs=(str(release),))
            results = pool.imap(_build_job, jobs, chunksize=8)
        try:
            stream = iter(tqdm(results, total=len(jobs), desc=f"build {name}", unit="case", disable=not progress))
            shards, sums = _write_splits(tmp, stream, plan, expected, params, release)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        stats = _stats(sums, name)
        report = _shard_report(name, spec, params, shards, skipped, manifest, plan)
        shards_json = (json.dumps(report, indent=2) + "\n").encode()
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        (tmp / "shards.json").write_bytes(shards_json)
        # the stamp publish wrote names these files only if they are the ones it published
        fingerprint = data_fingerprint(shards_json, stats, validation or {})
        current = stamp if stamp is not None and stamp.describes(fingerprint) else None
        variant_preview(tmp, name, params.preview_cases).save(tmp / "preview.png", format="PNG")
        if validation is not None:
            (tmp / "README.md").write_text(
                dataset_card(
                    name,
                    report,
                    stats,
                    validation,
                    registry=registry,
                    settings=spec.used(),
                    stamp=current,
                    stamped=stamp,
                ),
                encoding="utf-8",
            )
            licence = SOURCE_TERMS[release_kind(validation)][0]
            (tmp / "croissant.json").write_text(
                json.dumps(croissant(name, report, licence=licence, registry=registry, stamp=current), indent=2) + "\n"
            )
    return report


def _write_splits(folder: Path, stream, plan, expected, params, release) -> tuple[list[dict], np.ndarray]:
    """Consume the workers' samples in order and cut them into shards per split."""
    shards = []
    train_sums = np.zeros((3, 3), dtype=np.int64)
    for split in SPLITS:
        sizes = shard_counts(expected[split], params.shard_size, params.min_shards)
        pending: list[dict] = []
        index = 0

        def flush(batch: list[dict], split: str = split) -> None:
            nonlocal index
            path = folder / SHARD_PATTERN.format(split=split, index=index)
            sha = write_shard(path, (s["members"] for s in batch))
            by_class = pd.Series([s["label"] for s in batch]).value_counts().sort_index()
            shards.append(
                {
                    "name": path.name,
                    "split": split,
                    "samples": len(batch),
                    "by_class": {str(k): int(v) for k, v in by_class.items()},
                    "sha256": sha,
                }
            )
            index += 1

        for _ in plan[split]:
            number, samples = next(stream)
            if isinstance(samples, str):
                raise CsxaError(f"case {number:04d}: {samples}", path=release)
            for sample in samples:
                if split == "train":
                    train_sums += sample["sums"]
                pending.append(sample)
                if len(pending) == sizes[index]:
                    flush(pending)
                    pending = []
    return shards, train_sums


def _stats(sums: np.ndarray, name: str) -> dict:
    """Per-channel mean and std of the train split, pixel values scaled to [0, 1]."""
    count, total, squares = (sums[i].astype(np.float64) for i in range(3))
    if not count.any():
        raise CsxaError(f"variant {name}: the train split is empty; nothing to compute statistics from")
    mean = total / count / 255.0
    std = np.sqrt(np.maximum(squares / count / 255.0**2 - mean**2, 0.0))
    return {
        "variant": name,
        "split": "train",
        "pixels_per_channel": int(count[0]),
        "mean": [round(float(v), 10) for v in mean],
        "std": [round(float(v), 10) for v in std],
        "scale": "pixel / 255",
    }


def _shard_report(name, spec, params, shards, skipped, manifest, plan) -> dict:
    totals = {}
    for split in SPLITS:
        split_shards = [s for s in shards if s["split"] == split]
        by_class: dict[str, int] = {}
        for shard in split_shards:
            for k, v in shard["by_class"].items():
                by_class[k] = by_class.get(k, 0) + v
        in_manifest = int((manifest.split == split).sum())
        written_cases = len(plan[split])
        skipped_here = sum(1 for s in skipped if s["split"] == split)
        if in_manifest != written_cases + skipped_here:
            raise CsxaError(
                f"variant {name}: {split} counts do not reconcile ({in_manifest} in the manifest, "
                f"{written_cases} written, {skipped_here} skipped)"
            )
        totals[split] = {
            "manifest_cases": in_manifest,
            "cases": written_cases,
            "skipped_cases": skipped_here,
            "samples": sum(s["samples"] for s in split_shards),
            "by_class": dict(sorted(by_class.items())),
            "shards": len(split_shards),
        }
    return {
        "variant": name,
        "spec": asdict(spec),
        "build": asdict(params),
        "totals": totals,
        "shards": shards,
        "skipped": skipped,
    }
