"""Training throughput of csxa_train against a plain torchvision loop over the same in-memory tensors.

    python benchmarks/bench_train.py                                   # CPU: resnet18 on the demo variant
    python benchmarks/bench_train.py --model resnet50 --image-size 224 # on a GPU: ResNet50, bf16

Both loops run the same model, optimizer, batch size and number of steps; csxa_train adds its
batched flips and rotations and normalisation. The ratio (csxa / plain images per second) should be
at least 0.9: the data path must not starve the device. Writes benchmarks/out/train-<device>-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn


def plain_loop(model, images, labels, steps, batch, device, size):
    """The reference: a torchvision-style loop, tensors already in memory, no augmentation."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    criterion = nn.CrossEntropyLoss()
    cuda = device.type == "cuda"
    n = len(labels)
    start, seen = None, 0
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps
            if cuda:
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        index = torch.randint(0, n, (batch,))
        x = images[index].to(device, non_blocking=True).float().div_(255)
        if size and x.shape[-1] != size:
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        y = labels[index].to(device, non_blocking=True)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = criterion(model(x).float(), y)
        loss.backward()
        optimizer.step()
        seen += batch
    if cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="data/variants/original")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    from csxa_train.data import load_split, normalisation
    from csxa_train.fit import Runtime, TrainConfig, train_one_epoch
    from csxa_train.models import build_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images, labels, _ = load_split(args.variant, "train")
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    if device.type == "cuda":
        images = images.pin_memory()
    mean, std = (t.to(device) for t in normalisation(args.variant))
    config = TrainConfig(variant=args.variant, model=args.model, weights="none", balance="none", epochs=1,
                         batch_size=args.batch_size, image_size=args.image_size)
    runtime = Runtime(0, 1, device)
    rows = {}
    for name in ("plain", "csxa", "plain", "csxa"):  # interleaved, best of two each
        torch.manual_seed(0)
        model = build_model(args.model, "none").to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        if name == "plain":
            rate = plain_loop(model, images, labels, args.steps, args.batch_size, device, args.image_size)
        else:
            order = torch.randint(0, len(labels), ((args.steps + 2) * args.batch_size,))
            optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
            rate = train_one_epoch(model, optimizer, nn.CrossEntropyLoss(), images, labels, order, mean, std, config,
                                   0, runtime)["images_per_s"]
        rows[name] = max(rows.get(name, 0), rate)
        print(f"{name}: {rate:.1f} images/s", file=sys.stderr)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
              "model": args.model, "image_size": args.image_size, "batch_size": args.batch_size, "steps": args.steps,
              "plain_images_per_s": round(rows["plain"], 1), "csxa_images_per_s": round(rows["csxa"], 1),
              "ratio": round(rows["csxa"] / rows["plain"], 3)}
    print(json.dumps(result))
    out = Path(__file__).parent / "out" / f"train-{device.type}-{args.model}-{args.image_size}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
