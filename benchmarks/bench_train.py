"""Training throughput of csxa_train, in memory and end to end from a variant's shards, and the share
of the time the device waits for data.

    python benchmarks/bench_train.py --variant data/variants/original            # ResNet50 and VGG19 at 224 px
    python benchmarks/bench_train.py --models resnet18 --image-size 64           # a quick CPU figure
    python benchmarks/bench_train.py --variant V --models smallcnn --image-size 32 --steps 3 --out DIR  # CI smoke

fit's data path: ``load_split`` streams the train split's shards once (each verified by sha256,
counts and sizes, PNGs decoded) into memory as uint8; then each step gathers a batch, copies it to
the device, resizes, flips and rotates it there (batched, as ``train_one_epoch`` does), normalises
and trains. On CUDA in bf16 autocast with channels_last; on the CPU in fp32 (the JSON says which).

Per model it reports:
- ``loader_images_per_s``: the shard read (verify + decode) alone, train samples / its seconds;
- ``in_memory_images_per_s``: the steps over the resident tensors (data part + model part);
- ``data_wait_share_in_memory``: the share of step time spent getting the batch ready (gather,
  copy, resize, augment, normalise) while the model waits: the boundaries are timed with
  ``torch.cuda.synchronize()`` on a GPU (so an upper bound: fit overlaps the copy with compute) and
  by the wall clock on the CPU;
- ``end_to_end_images_per_s`` and ``data_wait_share_end_to_end``: one epoch of fit from the
  shards: the shard read plus an epoch of steps at the measured in-memory rate (extrapolated from
  the timed steps), and the share of that time spent on data (shard read + each step's data part);
- ``fit_loop_images_per_s``: ``csxa_train.fit.train_one_epoch`` itself over the same steps
  (unsynchronised), a check that the instrumented loop measures fit's loop.

Writes benchmarks/out/train-<device>-<model>-<size>.json (or into --out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(model, images, labels, mean, std, config, steps: int, device: torch.device) -> dict:
    """``steps`` training steps (after two warm-up steps) built from fit's own pieces, the data
    part and the model part of each timed apart; returns seconds of each and images/s."""
    from csxa_train.augment import augment_batch
    from csxa_train.data import prepare

    cuda = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    order = torch.randint(
        0, len(labels), ((steps + 2) * config.batch_size,), generator=torch.Generator().manual_seed(1)
    )
    model.train()
    data_s = model_s = 0.0
    seen = 0
    for step in range(steps + 2):
        _sync(device)
        t0 = time.perf_counter()
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        x = prepare(images[index].to(device, non_blocking=True), config.image_size)
        x = (augment_batch(x, config.augment, generator) - mean) / std
        y = labels[index].to(device, non_blocking=True)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        _sync(device)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = criterion(model(x).float(), y)
        loss.backward()
        optimizer.step()
        _sync(device)
        t2 = time.perf_counter()
        if step >= 2:  # two warm-up steps
            data_s, model_s, seen = data_s + t1 - t0, model_s + t2 - t1, seen + len(y)
    return {"data_s": data_s, "model_s": model_s, "images": seen, "images_per_s": seen / (data_s + model_s)}


def fit_loop_rate(model, images, labels, mean, std, config, steps: int, runtime) -> float:
    """images/s of fit's own ``train_one_epoch`` over ``steps`` batches (plus two to warm up)."""
    from csxa_train.loop import train_one_epoch

    order = torch.randint(0, len(labels), (2 * config.batch_size,), generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    train_one_epoch(model, optimizer, nn.CrossEntropyLoss(), images, labels, order, mean, std, config, 0, runtime)
    order = torch.randint(0, len(labels), (steps * config.batch_size,), generator=torch.Generator().manual_seed(3))
    return train_one_epoch(
        model, optimizer, nn.CrossEntropyLoss(), images, labels, order, mean, std, config, 0, runtime
    )["images_per_s"]


def bench_model(name: str, args, images, labels, loader_s: float, mean, std, device) -> dict:
    from csxa_train.models import build_model
    from csxa_train.params import TrainParams
    from csxa_train.runtime import Runtime

    config = TrainParams(
        variant=args.variant,
        model=name,
        weights="none",
        balance="none",
        epochs=1,
        batch_size=args.batch_size,
        image_size=args.image_size,
    )
    torch.manual_seed(0)
    model = build_model(name, "none").to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    timed = timed_steps(model, images, labels, mean, std, config, args.steps, device)
    fit_rate = (
        fit_loop_rate(model, images, labels, mean, std, config, args.steps, Runtime(0, 1, device))
        if args.fit_check
        else None
    )
    n = len(labels)
    epoch_s = n / timed["images_per_s"]
    epoch_data_s = epoch_s * timed["data_s"] / (timed["data_s"] + timed["model_s"])
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "precision": "bf16 autocast, channels_last" if cuda else "fp32 (CPU: no bf16 autocast, no channels_last)",
        "timing": "torch.cuda.synchronize at each step's boundaries" if cuda else "wall clock",
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "model": name,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "variant": str(args.variant),
        "variant_out_size": int(images.shape[-1]),
        "train_samples": n,
        "loader_seconds": round(loader_s, 3),
        "loader_images_per_s": round(n / loader_s, 1),
        "in_memory_images_per_s": round(timed["images_per_s"], 2),
        "data_wait_share_in_memory": round(timed["data_s"] / (timed["data_s"] + timed["model_s"]), 4),
        "end_to_end_images_per_s": round(n / (loader_s + epoch_s), 2),
        "data_wait_share_end_to_end": round((loader_s + epoch_data_s) / (loader_s + epoch_s), 4),
        "fit_loop_images_per_s": None if fit_rate is None else round(fit_rate, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="data/variants/original", help="a built variant (folder or URL)")
    parser.add_argument("--models", nargs="+", default=["resnet50", "vgg19"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (after two warm-up steps)")
    parser.add_argument(
        "--no-fit-check",
        dest="fit_check",
        action="store_false",
        help="skip the cross-check run of fit's own train_one_epoch (halves a slow CPU run)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)

    from csxa_train.data import load_split, normalisation

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    images, labels, _ = load_split(args.variant, "train")  # fit's loader: verified shards -> memory
    loader_s = time.perf_counter() - start
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    if device.type == "cuda":
        images = images.pin_memory()
    mean, std = (t.to(device) for t in normalisation(args.variant))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        result = bench_model(name, args, images, labels, loader_s, mean, std, device)
        print(json.dumps(result))
        path = args.out / f"train-{device.type}-{name}-{args.image_size}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"{name}: {result['in_memory_images_per_s']} images/s in memory, {result['end_to_end_images_per_s']} end "
            f"to end, data wait {result['data_wait_share_in_memory']:.1%} / {result['data_wait_share_end_to_end']:.1%}"
            f" ({result['precision']}); wrote {path}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    from csxa_data.errors import CsxaError

    try:
        sys.exit(main())
    except CsxaError as exc:  # a missing or damaged variant: one line, not a traceback
        print(f"bench_train: error: {exc}", file=sys.stderr)
        sys.exit(2)
