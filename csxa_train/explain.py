"""Where the models look: Grad-CAM (the ``grad-cam`` package) on a trained experiment's test split.

``csxa-train explain --checkpoint results/EXP/checkpoint.pt`` scores every test case with the
checkpoint (at the threshold its run chose on the validation part), computes a Grad-CAM map of
the predicted class for each, and writes into OUT (default: the checkpoint's folder):

- ``gradcam.png``: a contact sheet, one row each for the true positives, the false positives and
  the false negatives with the highest confidence (the highest scores among the positives
  predicted, the lowest among the negatives predicted), the map over the image, the landmark box
  drawn;
- ``gradcam.csv``: per test case key, label, score, pred, the share of the heat inside the
  case's landmark box and the share of the image that box covers (what a uniform map would give);
- ``gradcam.json``: the experiment's numbers: the mean share of the heat inside the box, beside
  the mean share of the image the box covers, overall and per kind.

``csxa-train explain --all`` (the ``explain`` DVC stage) does this for every experiment of
params.yaml in one process and writes the summary table ``results/gradcam.md``.

The map is read at a ResNet's last stage (layer4), or at the last convolutional block of a VGG
or a small net; at small input sizes, where that stage is only a pixel or two wide, at the
deepest stage whose map is at least ``MIN_SIDE`` pixels wide (``gradcam.json`` names it).

The landmark box of a sample (its JSON ``landmark_box``, film pixels) is mapped into the image
through the sample's ``crop_box`` (the film region the image was cut from, resized to a square
without keeping the aspect) and then to the size the model sees (``train.image_size``). A pixel
is inside the box when its centre is. Colour variants are explained in channel order a.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch import nn

from csxa_data.atomic import atomic_path, write_files_atomic
from csxa_data.errors import CsxaError
from csxa_data.shards.verify import split_samples
from csxa_train.checkpoint import checkpoint_config, load_checkpoint, restore_model
from csxa_train.data import prepare, read_variant_json, source_of
from csxa_train.figures import figure_font

KINDS = (("tp", "true positives"), ("fp", "false positives"), ("fn", "false negatives"))
TILE = 176
MIN_SIDE = 4  # a Grad-CAM map narrower than this cannot say where in the image the model looks


@dataclass
class TestSplit:
    images: np.ndarray  # N x 3 x H x W uint8, as stored
    labels: np.ndarray
    keys: list[str]
    boxes: np.ndarray  # N x 4 landmark boxes in the stored image's pixels


def box_in_image(landmark_box, crop_box, width: int, height: int) -> tuple[float, float, float, float]:
    """The landmark box (film pixels) in the pixels of an image of ``width`` x ``height`` made by
    resizing the film's ``crop_box`` region to that size; clipped to the image."""
    for name, box in (("landmark_box", landmark_box), ("crop_box", crop_box)):
        if not (
            isinstance(box, (list, tuple))
            and len(box) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e9 for v in box)
        ):
            raise CsxaError(f"{name} {str(box)[:80]} is not four finite numbers of film pixels")
    x0, y0, x1, y1 = (float(v) for v in landmark_box)
    cx0, cy0, cx1, cy1 = (float(v) for v in crop_box)
    if not (cx1 > cx0 and cy1 > cy0):
        raise CsxaError(f"crop_box {list(crop_box)} is empty")
    sx, sy = width / (cx1 - cx0), height / (cy1 - cy0)
    u0, u1 = np.clip([(x0 - cx0) * sx, (x1 - cx0) * sx], 0, width)
    v0, v1 = np.clip([(y0 - cy0) * sy, (y1 - cy0) * sy], 0, height)
    return float(u0), float(v0), float(u1), float(v1)


def box_mask(box, width: int, height: int) -> np.ndarray:
    """Boolean H x W mask of the pixels whose centres fall inside ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    return ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]


def heat_share(cam: np.ndarray, box) -> float | None:
    """The share of a map's total heat inside ``box`` (in the map's pixels); None for an empty map."""
    total = float(cam.sum())
    if not np.isfinite(total) or total <= 0:
        return None
    return float(cam[box_mask(box, cam.shape[1], cam.shape[0])].sum() / total)


def candidate_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers Grad-CAM may read, deepest first: a ResNet's stage outputs (layer4 .. layer2); else
    the layer before each max-pooling of ``features`` (VGG, vggsmall, smallcnn)."""
    if hasattr(model, "layer4"):
        return [(f"layer{n}", getattr(model, f"layer{n}")[-1]) for n in (4, 3, 2)]
    named = list(model.features.named_children())
    out = [
        (f"features.{name}", layer)
        for (name, layer), (_, after) in zip(named, named[1:])
        if isinstance(after, nn.MaxPool2d)
    ]
    return out[::-1]


def target_layer(model: nn.Module, size: int, min_side: int = MIN_SIDE) -> tuple[str, nn.Module, int]:
    """The deepest candidate layer whose map is at least ``min_side`` pixels wide at input size
    ``size`` (a ResNet's layer4 is 1 x 1 at 32 px: a map with nothing to say), else the
    shallowest; returns its name, the layer and its map side."""
    sides = {}

    def record(name):
        def hook(module, inputs, output) -> None:  # returns None: the output stays as it is
            sides[name] = int(output.shape[-1])

        return hook

    hooks = [layer.register_forward_hook(record(name)) for name, layer in candidate_layers(model)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    candidates = candidate_layers(model)
    for name, layer in candidates:
        if sides[name] >= min_side:
            return name, layer, sides[name]
    name, layer = candidates[-1]
    return name, layer, sides[name]


def load_test_split(source) -> TestSplit:
    """Every test sample of a variant with its landmark box in the stored image's pixels, read and
    verified as training reads it (sha256, counts, split and image size of every shard)."""

    src = source_of(source)
    images, labels, keys, boxes = [], [], [], []
    for sample in split_samples(src, read_variant_json(src, "shards.json"), "test"):
        image, meta = sample["image"], sample["meta"]
        try:
            box = box_in_image(meta["landmark_box"], meta["crop_box"], image.shape[1], image.shape[0])
        except (KeyError, CsxaError) as exc:
            raise CsxaError(
                f"sample {sample['key']!r}: no usable landmark_box and crop_box in its metadata ({exc})",
                path=str(source),
            ) from None
        images.append(np.ascontiguousarray(image.transpose(2, 0, 1)))
        labels.append(sample["label"])
        keys.append(sample["key"])
        boxes.append(box)
    if not images:
        raise CsxaError("the test split is empty", path=str(source))
    order = np.argsort(np.asarray(keys), kind="mergesort")
    return TestSplit(
        np.stack(images)[order],
        np.asarray(labels, dtype=np.int64)[order],
        [keys[i] for i in order],
        np.asarray(boxes, dtype=float)[order],
    )


class PredictedClass:
    """Grad-CAM target: the logit of the class a sample is predicted (class 1 where its softmax
    score reaches ``threshold``), decided from the same forward pass that Grad-CAM reads."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        score = torch.softmax(output.detach().float(), dim=-1)[1]
        return output[int(score >= self.threshold)]


def pick_cases(frame: pd.DataFrame, per_kind: int) -> dict[str, pd.DataFrame]:
    """The most confident true positives and false positives (highest scores) and false negatives
    (lowest scores), ``per_kind`` of each at most; ties broken by key."""
    predicted = frame.pred == 1
    picks = {
        "tp": frame[predicted & (frame.label == 1)].sort_values(["score", "key"], ascending=[False, True]),
        "fp": frame[predicted & (frame.label == 0)].sort_values(["score", "key"], ascending=[False, True]),
        "fn": frame[~predicted & (frame.label == 1)].sort_values(["score", "key"], ascending=[True, True]),
    }
    return {kind: rows.head(per_kind) for kind, rows in picks.items()}


def _checked_state(checkpoint: Path, variant: str | None):

    if not Path(checkpoint).is_file():
        raise CsxaError("checkpoint not found (train the experiment first: dvc repro)", path=checkpoint)
    state = load_checkpoint(checkpoint)
    missing = [k for k in ("config", "model", "normalisation") if k not in state]
    if missing:
        raise CsxaError(f"not a csxa-train checkpoint (no {missing})", path=checkpoint)
    config = checkpoint_config(state, checkpoint, variant=str(variant) if variant else None)
    source = str(config.variant)
    if "://" not in source and not (Path(source) / "shards.json").is_file():
        raise CsxaError(
            f"its variant {source} is not here (no shards.json): build or pull it "
            f"(dvc repro / dvc pull), or give --variant",
            path=checkpoint,
        )
    return state, config


def explain(
    checkpoint: str | Path,
    out: str | Path | None = None,
    *,
    variant: str | None = None,
    per_kind: int = 4,
    batch_size: int = 32,
    progress: bool = True,
) -> dict:
    """Grad-CAM over the test split of a checkpoint's variant; writes gradcam.png, gradcam.csv and
    gradcam.json into OUT (default: the checkpoint's folder) and returns the json's content."""
    from pytorch_grad_cam import GradCAM
    from tqdm import tqdm

    if per_kind < 1:
        raise CsxaError(f"--per-kind must be at least 1, not {per_kind}")
    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else checkpoint.parent
    experiment = str(state_name(checkpoint))
    state, config = _checked_state(checkpoint, variant)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, mean, std, threshold = restore_model(state, config, checkpoint, torch.device("cpu"))
    model.to(device).eval()
    test = load_test_split(config.variant)
    size = config.image_size or test.images.shape[-1]
    scale = size / test.images.shape[-1], size / test.images.shape[-2]

    scores, cams = [], []
    layer_name, layer, side = target_layer(model, size)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        starts = range(0, len(test.labels), batch_size)
        for start in tqdm(starts, desc=f"explain {experiment}", unit="batch", disable=not progress):
            x = (prepare(torch.from_numpy(test.images[start : start + batch_size]), config.image_size) - mean) / std
            # one forward pass scores the batch and gives Grad-CAM its activations
            cams.append(cam(input_tensor=x, targets=[PredictedClass(threshold)] * len(x)))
            scores.append(torch.softmax(cam.outputs.detach().float(), dim=1)[:, 1].cpu().numpy())
    scores, cams = np.concatenate(scores), np.concatenate(cams)
    boxes = test.boxes * np.array([scale[0], scale[1], scale[0], scale[1]])
    frame = pd.DataFrame(
        {
            "key": test.keys,
            "label": test.labels,
            "score": scores.astype(float),
            "pred": (scores >= threshold).astype(int),
            "heat_in_box": [heat_share(c, b) for c, b in zip(cams, boxes)],
            "box_area": [float(box_mask(b, size, size).mean()) for b in boxes],
        }
    )
    picks = pick_cases(frame, per_kind)
    summary = {
        "experiment": experiment,
        "checkpoint": str(checkpoint),
        "variant": str(config.variant),
        "model": config.model,
        "threshold": threshold,
        "n": int(len(frame)),
        # an all-zero map has no heat to share out: such cases leave both means, the box's too
        "maps": int(frame.heat_in_box.notna().sum()),
        "empty_maps": int(frame.heat_in_box.isna().sum()),
        "target": "the predicted class",
        "layer": layer_name,
        "map_side": side,
        "heat_in_box": _mean(frame.heat_in_box),
        "box_area": _mean(frame.box_area[frame.heat_in_box.notna()]),
        "by_kind": {
            kind: {
                "cases": [str(k) for k in rows.key],
                "heat_in_box": _mean(rows.heat_in_box),
                "box_area": _mean(rows.box_area[rows.heat_in_box.notna()]),
            }
            for kind, rows in picks.items()
        },
    }
    index = {key: i for i, key in enumerate(test.keys)}
    write_files_atomic(
        out,
        {  # the three replaced together or not at all
            "gradcam.csv": lambda path: frame.to_csv(path, index=False, float_format="%.6f"),
            "gradcam.json": lambda path: path.write_text(json.dumps(summary, indent=2) + "\n"),
            "gradcam.png": lambda path: contact_sheet(test, cams, boxes, index, picks, summary, path),
        },
    )
    return summary


def explain_all(experiments: list[str], results: str | Path, *, per_kind: int = 4, progress: bool = True) -> Path:
    """:func:`explain` for each experiment's ``RESULTS/EXP/checkpoint.pt`` in one process (the
    ``explain`` stage: one start-up of torch instead of one per experiment), then the summary table
    ``RESULTS/gradcam.md``; returns its path."""

    if not experiments:
        raise CsxaError("no experiments to explain (params.yaml: experiments)")
    results = Path(results)
    # every checkpoint present, in its own folder (not a link to another's), before anything is written
    for name in experiments:
        checkpoint = results / name / "checkpoint.pt"
        if not checkpoint.is_file():
            raise CsxaError(
                "checkpoint not found (train the experiment first: dvc repro); nothing was written", path=checkpoint
            )
        if state_name(checkpoint) != name:
            raise CsxaError(
                f"is in {checkpoint.parent.resolve()}, another experiment's folder (a linked results "
                "folder?); nothing was written",
                path=checkpoint,
            )
    summaries = [
        explain(results / name / "checkpoint.pt", results / name, per_kind=per_kind, progress=progress)
        for name in experiments
    ]
    table = results / "gradcam.md"
    with atomic_path(table) as tmp:
        tmp.write_text(summary_markdown(summaries))
    return table


def summary_markdown(summaries: list[dict]) -> str:
    """One row per experiment: the mean share of the Grad-CAM heat inside the landmark box beside
    the mean share of the image the box covers (what a map spread evenly would score), both over the
    same cases, those whose map is not all zero (how many were empty is said)."""
    lines = [
        "| experiment | variant | model | Grad-CAM layer (map px) | test cases with a map (empty) "
        "| heat inside the landmark box | box's share of the image | heat / box share |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for s in summaries:
        share, area = s["heat_in_box"], s["box_area"]
        ratio = f"{share / area:.2f}" if share is not None and area else "n/a"
        lines.append(
            f"| {s['experiment']} | {Path(s['variant']).name} | {s['model']} | {s['layer']} ({s['map_side']}) "
            f"| {s.get('maps', s['n'])} of {s['n']} ({s.get('empty_maps', 0)}) | {_pct(share, 1)} | {_pct(area, 1)} "
            f"| {ratio} |"
        )
    return "\n".join(lines) + "\n"


def state_name(checkpoint: Path) -> str:
    """The experiment's name: the checkpoint's folder (results/EXPERIMENT/checkpoint.pt), that folder
    resolved (a linked results folder names its target) but not the file (DVC may check a
    checkpoint out as a link into its cache)."""
    return checkpoint.absolute().parent.resolve().name


def _mean(values) -> float | None:
    # 6 decimals, as gradcam.csv: Grad-CAM's float sums vary in the ninth digit from run to run
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return round(float(values.mean()), 6) if len(values) else None


def overlay(image: np.ndarray, cam: np.ndarray, box, size: int) -> Image.Image:
    """One tile: the stored image (channel 0, grey) at ``size`` px with the map over it (the
    package's ``show_cam_on_image``) and the landmark box (in the map's pixels) in green."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    grey = Image.fromarray(image[0]).resize((size, size), Image.Resampling.BILINEAR)
    rgb = np.repeat(np.asarray(grey, dtype=np.float32)[:, :, None] / 255.0, 3, axis=2)
    heat = np.asarray(Image.fromarray(cam.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR))
    tile = Image.fromarray(show_cam_on_image(rgb, np.clip(heat, 0, 1), use_rgb=True, image_weight=0.6))
    f = size / cam.shape[1], size / cam.shape[0]
    ImageDraw.Draw(tile).rectangle(
        [box[0] * f[0], box[1] * f[1], box[2] * f[0] - 1, box[3] * f[1] - 1], outline=(0, 255, 0), width=2
    )
    return tile


def contact_sheet(
    test: TestSplit, cams: np.ndarray, boxes: np.ndarray, index: dict, picks: dict, summary: dict, path
) -> None:
    """One row per kind (TP, FP, FN), the most confident cases left to right, each captioned."""

    columns = max([len(rows) for rows in picks.values()] + [1])
    label_w, caption, head = 150, 34, 58
    sheet = Image.new("RGB", (label_w + columns * (TILE + 8), head + len(KINDS) * (TILE + caption + 8)), "white")
    draw = ImageDraw.Draw(sheet)
    share = summary["heat_in_box"]
    draw.text(
        (8, 6),
        f"{summary['experiment']}: Grad-CAM of the predicted class ({summary['model']}, threshold "
        f"{summary['threshold']:.3f})",
        fill="black",
        font=figure_font(16),
    )
    draw.text(
        (8, 30),
        f"heat inside the landmark box: {_pct(share)} on average over the {summary['maps']} of {summary['n']} "
        f"test cases with a map ({summary['empty_maps']} all zero); "
        f"the box covers {_pct(summary['box_area'])} of the image (green)",
        fill="black",
        font=figure_font(13),
    )
    for row, (kind, title) in enumerate(KINDS):
        top = head + row * (TILE + caption + 8)
        draw.text((8, top + TILE // 2 - 10), f"{title}\n({len(picks[kind])})", fill="black", font=figure_font(14))
        if picks[kind].empty:
            draw.text((label_w, top + TILE // 2 - 8), "none in the test split", fill="grey", font=figure_font(13))
        for col, case in enumerate(picks[kind].itertuples()):
            i = index[case.key]
            left = label_w + col * (TILE + 8)
            sheet.paste(overlay(test.images[i], cams[i], boxes[i], TILE), (left, top))
            draw.text(
                (left, top + TILE + 2),
                f"{case.key}  p={case.score:.3f}\nin box {_pct(case.heat_in_box)}",
                fill="black",
                font=figure_font(12),
            )
    sheet.save(path, format="PNG")


def _pct(value, digits: int = 0) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}%}"
