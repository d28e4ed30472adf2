"""The loop: one seeded epoch over this rank's share, and scoring (in memory or streamed from the test
shards)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from csxa_data.errors import CsxaError
from csxa_train.augment import augment_batch
from csxa_train.balance import class_weights, sample_weights
from csxa_train.data import eval_loader, guarded, prepare, read_variant_json, swap_orders
from csxa_train.params import TrainParams
from csxa_train.runtime import Runtime


def epoch_order(labels: torch.Tensor, config: TrainParams, epoch: int, runtime: Runtime) -> torch.Tensor:
    """This rank's sample indices for an epoch: a seeded shuffle (or weighted draw with
    replacement), cut into equal shares per rank so every rank takes the same number of steps."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    n = len(labels)
    if config.balance == "weighted_sampler":
        weights = torch.from_numpy(sample_weights(labels.numpy()))
        order = torch.multinomial(weights, n, replacement=True, generator=generator)
    else:
        order = torch.randperm(n, generator=generator)
    share = n // runtime.world
    return order[runtime.rank * share : (runtime.rank + 1) * share]


def epoch_orders_drawn(n: int, config: TrainParams, epoch: int) -> torch.Tensor:
    """Per sample, whether this epoch shows it in channel order b (seeded per epoch, the same on
    every rank): one order per case per epoch, each with probability 1/2."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch + 104729)
    return torch.rand(n, generator=generator) < 0.5


def train_one_epoch(
    model,
    optimizer,
    criterion,
    images,
    labels,
    order,
    mean,
    std,
    config: TrainParams,
    epoch: int,
    runtime: Runtime,
    swap: torch.Tensor | None = None,
) -> dict:
    """One pass over this rank's share; ``swap`` marks the samples shown in channel order b.
    Returns loss, accuracy, images/s."""
    from tqdm import tqdm

    model.train()
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch + 7919 * (runtime.rank + 1))
    cuda = runtime.device.type == "cuda"
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    batches = range(0, len(order), config.batch_size)
    for begin in tqdm(
        batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not runtime.main, leave=False
    ):
        index = order[begin : begin + config.batch_size]
        batch = images[index]
        if swap is not None:
            batch = torch.where(swap[index].view(-1, 1, 1, 1), swap_orders(batch), batch)
        x = prepare(batch.to(runtime.device, non_blocking=True), config.image_size)
        x = augment_batch(x, config.augment, generator)
        x = (x - mean) / std
        y = labels[index].to(runtime.device, non_blocking=True)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
            loss = criterion(logits.float(), y)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    stats = torch.tensor([total_loss, correct, seen], dtype=torch.float64, device=runtime.device)
    if dist.is_initialized():
        dist.all_reduce(stats)
    seconds = time.perf_counter() - start
    return {
        "loss": stats[0].item() / max(stats[2].item(), 1),
        "accuracy": stats[1].item() / max(stats[2].item(), 1),
        "samples": int(stats[2].item()),
        "seconds": round(seconds, 3),
        "images_per_s": round(stats[2].item() / max(seconds, 1e-9), 1),
    }


def training_parts(model, labels: torch.Tensor, config: TrainParams, device: torch.device):
    """The loss (class-weighted if ``balance`` says so), Adam and the step decay of a run."""
    weight = class_weights(labels.numpy()).to(device) if config.balance == "class_weighted_loss" else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    return nn.CrossEntropyLoss(weight=weight), optimizer, scheduler


def run_epoch(
    model,
    criterion,
    optimizer,
    scheduler,
    images,
    labels,
    colour: bool,
    mean,
    std,
    config: TrainParams,
    epoch: int,
    runtime: Runtime,
) -> dict:
    """One seeded epoch (shuffle, drawn channel orders, dropout masks), then the scheduler's step;
    returns the log row."""
    torch.manual_seed(config.seed * 1000 + epoch + 7919 * runtime.rank)  # dropout: same masks after a resume
    order = epoch_order(labels, config, epoch, runtime)
    swap = epoch_orders_drawn(len(labels), config, epoch) if colour and config.train_orders == "draw" else None
    row = {
        "epoch": epoch + 1,
        "lr": scheduler.get_last_lr()[0],
        **train_one_epoch(model, optimizer, criterion, images, labels, order, mean, std, config, epoch, runtime, swap),
    }
    scheduler.step()
    return row


def scoring_orders(colour: bool, config: TrainParams) -> tuple[str, ...]:
    """The channel orders a case is scored in: ``("a", "b")`` for a colour variant under
    ``test_orders: both``, else ``("a",)``."""
    return ("a", "b") if colour and config.test_orders == "both" else ("a",)


@torch.no_grad()
def score_batch(
    model, images: torch.Tensor, mean, std, config: TrainParams, device: torch.device, orders: tuple[str, ...]
) -> np.ndarray:
    """Probability of spondylosis for a uint8 batch (N x 3 x H x W): the mean over ``orders``."""
    cuda = device.type == "cuda"
    base = prepare(images.to(device), config.image_size)
    total = torch.zeros(len(images), device=device)
    for order in orders:
        x = ((swap_orders(base) if order == "b" else base) - mean) / std
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        total += torch.softmax(logits.float(), dim=1)[:, 1]
    return (total / len(orders)).cpu().numpy()


@torch.no_grad()
def score_in_memory(
    model, images: np.ndarray, mean, std, config: TrainParams, runtime: Runtime, orders: tuple[str, ...]
) -> np.ndarray:
    """Scores of in-memory uint8 images (the validation part), in batches."""
    model.eval()
    parts = [
        score_batch(
            model, torch.from_numpy(images[i : i + config.eval_batch_size]), mean, std, config, runtime.device, orders
        )
        for i in range(0, len(images), config.eval_batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


@torch.no_grad()
def predict(
    model, source, mean, std, config: TrainParams, runtime: Runtime, orders: tuple[str, ...] = ("a",)
) -> pd.DataFrame:
    """Score every test sample exactly once (shards split over ranks and workers), gathered on all
    ranks and sorted by key; score = probability of spondylosis (mean over ``orders``)."""
    model.eval()
    rows = []
    for batch in guarded(eval_loader(source, config.eval_batch_size, config.workers), source):
        scores = score_batch(model, batch["image"], mean, std, config, runtime.device, orders)
        rows += [
            {"key": k, "number": int(n), "label": int(y), "score": float(s)}
            for k, n, y, s in zip(batch["key"], batch["number"], batch["label"], scores)
        ]
    if dist.is_initialized():
        gathered = [None] * runtime.world
        dist.all_gather_object(gathered, rows)
        rows = [row for part in gathered for row in part]
    frame = pd.DataFrame(rows, columns=["key", "number", "label", "score"]).sort_values("key", ignore_index=True)
    frame["pred"] = (frame.score >= 0.5).astype(int)
    if frame.key.duplicated().any():
        raise CsxaError(f"test samples scored twice: {frame.key[frame.key.duplicated()].tolist()[:5]}")
    expected = read_variant_json(source, "shards.json")["totals"]["test"]["samples"]
    if len(frame) != expected:
        raise CsxaError(f"scored {len(frame)} test samples, shards.json lists {expected}", path=str(source))
    return frame
