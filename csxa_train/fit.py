"""Training and evaluation of one experiment (a variant x a model), single process or under
``torchrun`` (DDP: NCCL on GPUs, gloo on CPUs) with the same command.

Writes into OUT: ``checkpoint.pt`` (saved safely after every epoch, loaded with
``weights_only=True``; an interrupted run resumes from it), ``metrics.json``, ``predictions.csv``
(per test case: key, number, label, score, pred), ``roc.csv``, ``confusion.csv``,
``train_log.csv`` (per epoch) and ``report.png`` (confusion matrices and ROC).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from csxa_data.errors import CsxaError
from csxa_data.sources import verify

from .augment import AugmentConfig, augment_batch
from .balance import BALANCE_MODES, class_weights, sample_weights, smote_oversample
from .data import eval_loader, guarded, load_split, normalisation, preflight, prepare, read_variant_json
from .evaluate import confusion_rows, evaluate_predictions, roc_curve
from .models import build_model

log = logging.getLogger("csxa_train")
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (the ``train`` section plus one experiment)."""

    variant: str                      # a variant folder or http:// URL (its shards.json, stats.json)
    model: str = "resnet50"
    weights: str = "imagenet"         # imagenet | none | path to a local state dict
    balance: str = "smote"            # smote | weighted_sampler | class_weighted_loss | none
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-4
    lr_step: int = 5                  # epochs between halvings
    lr_gamma: float = 0.5
    image_size: int | None = None     # resize the variant's images for training (None: as stored)
    seed: int = 2024
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval_batch_size: int = 64
    workers: int = 2                  # DataLoader workers for the streamed test split
    smote_k: int = 5
    smote_chunk: int = 256

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """From merged params; unknown keys and values are errors naming the key."""
        from csxa_data.params import dataclass_from_section, require

        if "variant" not in (data or {}):
            raise CsxaError("no variant given (--variant or experiments.<name>.variant)")
        config = dataclass_from_section(cls, data, "train", nested={"augment": AugmentConfig})
        require(config.balance in BALANCE_MODES, f"train.balance must be one of {list(BALANCE_MODES)}, not {config.balance!r}")
        require(config.epochs >= 1 and config.batch_size >= 1 and config.eval_batch_size >= 1,
                "train.epochs, train.batch_size and train.eval_batch_size must be at least 1")
        require(config.lr > 0 and config.lr_step >= 1 and 0 < config.lr_gamma <= 1,
                "train.lr must be positive, train.lr_step at least 1 and train.lr_gamma within (0, 1]")
        require(config.image_size is None or 8 <= config.image_size <= 2048, "train.image_size must be null or 8..2048")
        require(config.workers >= 0 and config.smote_k >= 1 and config.smote_chunk >= 1,
                "train.workers must not be negative; train.smote_k and train.smote_chunk must be at least 1")
        a = config.augment
        require(0 <= a.hflip <= 1 and 0 <= a.vflip <= 1 and 0 <= a.rotate_first <= 180 and 0 <= a.rotate_second <= 180,
                "train.augment: flip probabilities must be within 0..1 and rotation ranges within 0..180 degrees")
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        """Identity of the run: the configuration, the variant's shard hashes and this package's
        code, so that only a checkpoint of the same settings, data and code is resumed."""
        from .data import read_variant_json

        shards = [s["sha256"] for s in read_variant_json(self.variant, "shards.json")["shards"]]
        code = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py"))))
        identity = {**self.to_dict(), "variant": None, "shards": shards, "code": code.hexdigest()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


# --- processes and devices ---------------------------------------------------------------------

@dataclass
class Runtime:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_runtime() -> Runtime:
    """Join the process group when launched by torchrun; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return Runtime(rank, world, device)


def stop_runtime() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


# --- checkpoints -------------------------------------------------------------------------------

def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file renamed into place: never a half-written checkpoint. If the
    write fails (a full disk, a file-size limit) the partial temporary file is removed and the
    previous checkpoint is left as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    buffer = io.BytesIO()
    torch.save(state, buffer)  # serialised in memory first: a failing write is then a plain OSError
    try:
        with open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CsxaError(f"cannot write the checkpoint ({exc.strerror or exc}); the partial file was removed "
                            "and the previous checkpoint kept", path=path) from None
        raise


CHECKPOINT_KEYS = ("model", "epoch", "config", "digest", "log", "counts", "normalisation")


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint loaded with ``weights_only=True`` (no code runs from the file) and checked to be
    what ``fit`` writes: a dict with the model's state dict and the run's settings."""
    path = Path(path)
    if not path.is_file():
        raise CsxaError("checkpoint not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad or unsafe file
        raise CsxaError(f"cannot load checkpoint safely ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                        path=path) from None
    if not isinstance(state, dict):
        raise CsxaError(f"not a csxa-train checkpoint: it holds a {type(state).__name__}, not a dict with "
                        f"{list(CHECKPOINT_KEYS)}", path=path)
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CsxaError(f"not a csxa-train checkpoint (no {missing})", path=path)
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CsxaError("not a csxa-train checkpoint: 'model' is not a state dict of tensors", path=path)
    if not isinstance(state["config"], dict) or not isinstance(state["epoch"], int):
        raise CsxaError("not a csxa-train checkpoint: 'config' is not a dict or 'epoch' not a whole number",
                        path=path)
    return state


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# --- training ----------------------------------------------------------------------------------

def train_data(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The train split in memory, balanced by SMOTE if asked; returns images, labels and counts."""
    images, labels, _ = load_split(config.variant, "train")
    counts = {"train_samples": int(len(labels)),
              "train_by_class": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))},
              "majority_class": int(np.bincount(labels).argmax()), "smote_synthetic": 0}
    if config.balance == "smote":
        extra, extra_labels = smote_oversample(images, labels, seed=config.seed, k_neighbors=config.smote_k,
                                               chunk=config.smote_chunk)
        images, labels = np.concatenate([images, extra]), np.concatenate([labels, extra_labels])
        counts["smote_synthetic"] = int(len(extra_labels))
    return torch.from_numpy(images), torch.from_numpy(labels), counts


def epoch_order(labels: torch.Tensor, config: TrainConfig, epoch: int, runtime: Runtime) -> torch.Tensor:
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
    return order[runtime.rank * share:(runtime.rank + 1) * share]


def train_one_epoch(model, optimizer, criterion, images, labels, order, mean, std, config: TrainConfig,
                    epoch: int, runtime: Runtime) -> dict:
    """One pass over this rank's share; returns loss, accuracy, images/s."""
    from tqdm import tqdm

    model.train()
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch + 7919 * (runtime.rank + 1))
    cuda = runtime.device.type == "cuda"
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    batches = range(0, len(order), config.batch_size)
    for begin in tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not runtime.main,
                      leave=False):
        index = order[begin:begin + config.batch_size]
        x = prepare(images[index].to(runtime.device, non_blocking=True), config.image_size)
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
    return {"loss": stats[0].item() / max(stats[2].item(), 1), "accuracy": stats[1].item() / max(stats[2].item(), 1),
            "samples": int(stats[2].item()), "seconds": round(seconds, 3),
            "images_per_s": round(stats[2].item() / max(seconds, 1e-9), 1)}


@torch.no_grad()
def predict(model, source, mean, std, config: TrainConfig, runtime: Runtime) -> pd.DataFrame:
    """Score every test sample exactly once (shards split over ranks and workers), gathered on all
    ranks and sorted by key; score = probability of spondylosis."""
    model.eval()
    cuda = runtime.device.type == "cuda"
    rows = []
    for batch in guarded(eval_loader(source, config.eval_batch_size, config.workers), source):
        x = (prepare(batch["image"].to(runtime.device), config.image_size) - mean) / std
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        scores = torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy()
        rows += [{"key": k, "number": int(n), "label": int(y), "score": float(s)}
                 for k, n, y, s in zip(batch["key"], batch["number"], batch["label"], scores)]
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


def write_evaluation(out: Path, predictions: pd.DataFrame, majority_class: int, title: str, extra: dict) -> dict:
    """metrics.json, predictions.csv, roc.csv, confusion.csv and report.png."""
    from .figures import evaluation_figure

    metrics = {**evaluate_predictions(predictions, majority_class), **extra}
    roc = roc_curve(predictions.label.to_numpy(), predictions.score.to_numpy())
    predictions.to_csv(out / "predictions.csv", index=False, float_format="%.8f")
    roc.replace([np.inf], 1.0).to_csv(out / "roc.csv", index=False, float_format="%.6f")
    confusion_rows(predictions).to_csv(out / "confusion.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    evaluation_figure(metrics, roc, title, out / "report.png")
    return metrics


def fit(config: TrainConfig, out: str | Path, *, title: str | None = None) -> dict | None:
    """Train, checkpoint every epoch, evaluate on the test split; returns metrics (on rank 0)."""
    runtime = start_runtime()
    try:
        return _fit(config, Path(out), title or Path(out).name, runtime)
    finally:
        stop_runtime()


def _fit(config: TrainConfig, out: Path, title: str, runtime: Runtime) -> dict | None:
    preflight(config.variant)  # every shard verified before anything is trained or written
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    mean, std = (t.to(runtime.device) for t in normalisation(config.variant))
    images, labels, counts = train_data(config)
    if runtime.device.type == "cuda":
        images = images.pin_memory()
    log_rows, start_epoch = [], 0
    checkpoint_path = out / CHECKPOINT
    digest = config.digest()
    state = load_checkpoint(checkpoint_path) if runtime.main and checkpoint_path.is_file() else None
    if dist.is_initialized():  # only rank 0 need see the checkpoint (no shared filesystem needed)
        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    if state is not None and state.get("digest") != digest:
        state = None  # another run's checkpoint: start afresh
    # a resumed run takes its weights from the checkpoint, so it needs no download
    model = build_model(config.model, "none" if state else config.weights).to(runtime.device)
    if runtime.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    weight = class_weights(labels.numpy()).to(runtime.device) if config.balance == "class_weighted_loss" else None
    criterion = nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    if state is not None:
        if state["epoch"] + 1 < config.epochs:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            log_rows, start_epoch = list(state["log"]), state["epoch"] + 1
            if runtime.main:
                print(f"resuming from {checkpoint_path} after epoch {start_epoch}")
        else:
            model.load_state_dict(state["model"])
            log_rows, start_epoch = list(state["log"]), config.epochs
            if runtime.main:
                print(f"{checkpoint_path} already holds all {config.epochs} epochs; evaluating it")
    if runtime.world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[runtime.device] if runtime.device.type == "cuda" else None)
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(config.seed * 1000 + epoch + 7919 * runtime.rank)  # dropout: same masks after a resume
        order = epoch_order(labels, config, epoch, runtime)
        row = {"epoch": epoch + 1, "lr": scheduler.get_last_lr()[0],
               **train_one_epoch(model, optimizer, criterion, images, labels, order, mean, std, config, epoch, runtime)}
        scheduler.step()
        # timings go to the screen only: stored logs and checkpoints stay identical across reruns
        log_rows.append({k: v for k, v in row.items() if k not in ("seconds", "images_per_s")})
        if runtime.main:
            print(f"epoch {row['epoch']}/{config.epochs}: loss {row['loss']:.4f}, train accuracy "
                  f"{row['accuracy']:.3f}, lr {row['lr']:.2e}, {row['images_per_s']:.0f} images/s")
            state = {"model": _unwrap(model).state_dict(), "epoch": epoch, "config": config.to_dict(),
                     "digest": digest, "log": log_rows, "counts": counts,
                     "normalisation": {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}}
            if epoch + 1 < config.epochs:  # what a resumed run needs; the final checkpoint is the model alone
                state |= {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            save_checkpoint(checkpoint_path, state)
        if dist.is_initialized():
            dist.barrier()
    predictions = predict(_unwrap(model), config.variant, mean, std, config, runtime)
    if not runtime.main:
        return None
    pd.DataFrame(log_rows).to_csv(out / "train_log.csv", index=False, float_format="%.6f")
    metrics = write_evaluation(out, predictions, counts["majority_class"], title,
                               {"experiment": title, "model": config.model, "balance": config.balance,
                                "epochs": config.epochs, "world_size": runtime.world, **counts})
    print(f"{title}: balanced accuracy {metrics['balanced_accuracy']:.3f}, sensitivity {metrics['sensitivity']:.3f}, "
          f"specificity {metrics['specificity']:.3f}, AUROC {_fmt(metrics['auroc'])}, accuracy {metrics['accuracy']:.3f} "
          f"(majority baseline {metrics['baseline']['accuracy']:.3f}); wrote {out}")
    return metrics


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def evaluate_checkpoint(checkpoint: str | Path, out: str | Path, *, variant: str | None = None,
                        workers: int | None = None) -> dict | None:
    """Score the test split with a saved checkpoint; writes the same evaluation files."""
    runtime = start_runtime()
    try:
        state = load_checkpoint(checkpoint)
        missing = [k for k in ("config", "model", "normalisation", "counts") if k not in state]
        if missing:
            raise CsxaError(f"not a csxa-train checkpoint (no {missing})", path=checkpoint)
        saved = dict(state["config"])
        if variant:
            saved["variant"] = variant
        if workers is not None:
            saved["workers"] = workers
        config = TrainConfig.from_dict(saved)
        model = build_model(config.model, "none").to(runtime.device)
        model.load_state_dict(state["model"])
        if runtime.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        mean, std = (torch.tensor(state["normalisation"][k], device=runtime.device).view(1, 3, 1, 1)
                     for k in ("mean", "std"))
        verify(config.variant, ("test",))  # the whole test split checked before any scoring
        predictions = predict(model, config.variant, mean, std, config, runtime)
        if not runtime.main:
            return None
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        return write_evaluation(out, predictions, state["counts"]["majority_class"], out.name,
                                {"checkpoint": str(checkpoint), "world_size": runtime.world})
    finally:
        stop_runtime()
