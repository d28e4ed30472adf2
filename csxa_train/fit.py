"""Training and evaluation of one experiment (a variant x a model), single process or under
``torchrun`` (DDP: NCCL on GPUs, gloo on CPUs) with the same command.

Writes into OUT: ``checkpoint.pt`` (saved safely after every epoch, loaded with
``weights_only=True``; an interrupted run resumes from it), ``metrics.json`` (a few flat headline
numbers, for ``dvc exp show``), ``evaluation.json`` (every detail: confusion matrices, baseline,
the metrics at the chosen threshold, counts), ``predictions.csv`` (per test case: key, number,
label, score, pred at 0.5, pred_at_threshold), ``roc.csv``, ``confusion.csv``, ``calibration.csv``
(reliability diagram), ``train_log.csv`` (per epoch), ``report.png`` and ``MODEL_CARD.md``. The
results (all but the checkpoint) are written to temporary siblings and renamed only when all are
written, so a run failing or killed part-way leaves the previous run's results whole.

Every variant gives one training sample per train case per epoch. A colour variant's case has
two channel orders (a: grey, equalised, inverted; b: grey, inverted, equalised, i.e. a with
channels 1 and 2 swapped): ``train_orders: draw`` takes one of them per case per epoch (seeded),
``both`` is the paper's literal reading (both orders as separate samples: twice the steps and the
SMOTE samples). At test time ``test_orders: both`` scores a case by the mean of its two orders'
probabilities, ``a`` by order a alone. A validation part of the train split (``val_fraction``, by
case, stratified) is held out of training and SMOTE and chooses the decision threshold.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from csxa_data.atomic import atomic_path, remove_stale_temporaries, write_files_atomic
from csxa_data.errors import CsxaError

from csxa_train.augment import AugmentConfig, augment_batch
from csxa_train.balance import BALANCE_MODES, class_weights, sample_weights, smote_oversample
from csxa_train.data import eval_loader, guarded, load_split, normalisation, preflight, prepare, read_variant_json
from csxa_train.metrics import (calibration_table, choose_threshold, confusion_rows, evaluate_predictions,
                                headline_metrics, parse_threshold_rule, roc_curve)
from csxa_train.models import MODELS, build_model

log = logging.getLogger("csxa_train")
CHECKPOINT = "checkpoint.pt"
TRAIN_ORDERS = ("draw", "both")
TEST_ORDERS = ("both", "a")
# The code a checkpoint's identity covers: the train stage's code dependencies in dvc.yaml (a test
# keeps the two lists equal), so that an edit to other modules neither stops a resume nor changes
# the bytes of a retrained checkpoint.
TRAINING_CODE = ("csxa_train/data.py", "csxa_train/balance.py", "csxa_train/augment.py", "csxa_train/models.py",
                 "csxa_train/fit.py", "csxa_train/metrics.py", "csxa_train/figures.py", "csxa_train/cli.py",
                 "csxa_data/shards/format.py", "csxa_data/shards/sources.py", "csxa_data/release/images.py", "csxa_data/cards.py")


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
    val_fraction: float = 0.1         # of the train split's cases, per class: held out, chooses the threshold
    threshold: str | float = 0.5      # a number in (0, 1) | youden | sensitivity@X (chosen on validation)
    train_orders: str = "draw"        # colour variants: draw (one order per case per epoch) | both (paper's literal)
    test_orders: str = "both"         # colour variants: both (mean of the two orders' probabilities) | a
    calibration_bins: int = 10

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """From merged params; unknown keys and values are errors naming the key."""
        from csxa_data.params import dataclass_from_section, require

        if "variant" not in (data or {}):
            raise CsxaError("no variant given (--variant or experiments.<name>.variant)")
        config = dataclass_from_section(cls, data, "train", nested={"augment": AugmentConfig})
        require(config.model in MODELS, f"train.model must be one of {list(MODELS)}, not {config.model!r}")
        require(config.balance in BALANCE_MODES, f"train.balance must be one of {list(BALANCE_MODES)}, not {config.balance!r}")
        require(0 <= config.val_fraction < 0.5, "train.val_fraction must be within [0, 0.5)")
        parse_threshold_rule(config.threshold)
        require(config.train_orders in TRAIN_ORDERS, f"train.train_orders must be one of {list(TRAIN_ORDERS)}, "
                                                     f"not {config.train_orders!r}")
        require(config.test_orders in TEST_ORDERS, f"train.test_orders must be one of {list(TEST_ORDERS)}, "
                                                   f"not {config.test_orders!r}")
        require(2 <= config.calibration_bins <= 100, "train.calibration_bins must be within 2..100")
        require(config.epochs >= 1 and config.batch_size >= 1 and config.eval_batch_size >= 1,
                "train.epochs, train.batch_size and train.eval_batch_size must be at least 1")
        require(config.lr > 0 and config.lr_step >= 1 and 0 < config.lr_gamma <= 1,
                "train.lr must be positive, train.lr_step at least 1 and train.lr_gamma within (0, 1]")
        require(config.image_size is None or 8 <= config.image_size <= 2048, "train.image_size must be null or 8..2048")
        require(0 <= config.workers <= 64 and config.smote_k >= 1 and config.smote_chunk >= 1,
                "train.workers must be within 0..64; train.smote_k and train.smote_chunk must be at least 1")
        require(config.batch_size <= 65536 and config.eval_batch_size <= 65536,
                "train.batch_size and train.eval_batch_size must be at most 65536")
        require(0 <= config.seed < 2**32, f"train.seed must be within 0..2**32-1, not {config.seed}")
        a = config.augment
        require(0 <= a.hflip <= 1 and 0 <= a.vflip <= 1 and 0 <= a.rotate_first <= 180 and 0 <= a.rotate_second <= 180,
                "train.augment: flip probabilities must be within 0..1 and rotation ranges within 0..180 degrees")
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        """Identity of the run: the configuration, the variant's shard hashes and the training code
        (``TRAINING_CODE``), so that only a checkpoint of the same settings, data and code is resumed."""
        from csxa_train.data import read_variant_json

        shards = [s["sha256"] for s in read_variant_json(self.variant, "shards.json")["shards"]]
        root = Path(__file__).resolve().parents[1]
        code = hashlib.sha256()
        for name in TRAINING_CODE:
            code.update(name.encode() + b"\0" + (root / name).read_bytes())
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

def _content_pickle():
    """pickle without its memo, as the module torch.save takes: equal objects are written alike
    whether or not they are one object, so a checkpoint's bytes depend on its content alone (a run
    resumed from a checkpoint shares the strings it loaded; a fresh run makes new ones)."""
    import pickle
    import types

    class Pickler(pickle.Pickler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fast = True  # no memo (a checkpoint holds no self-references)

    module = types.ModuleType("csxa_content_pickle")
    module.Pickler = Pickler
    return module


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary sibling renamed into place: never a half-written checkpoint. If the
    write fails (a full disk, a file-size limit) the partial temporary file is removed and the
    previous checkpoint is left as it was."""
    buffer = io.BytesIO()
    torch.save(state, buffer, pickle_module=_content_pickle())  # in memory first: a failing write is a plain OSError
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise CsxaError(f"cannot write the checkpoint ({exc.strerror or exc}); the partial file was removed "
                        "and the previous checkpoint kept", path=path) from None


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


def checkpoint_config(state: dict, checkpoint: str | Path, **overrides) -> "TrainConfig":
    """The run's settings saved in a checkpoint, with ``overrides`` (those not None) on top, checked
    as params.yaml's are; a bad saved value is reported against the checkpoint, not params.yaml."""
    saved = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return TrainConfig.from_dict(saved)
    except CsxaError as exc:
        raise CsxaError(f"its saved settings: {exc.message}", path=checkpoint) from None


def restore_model(state: dict, config: "TrainConfig", checkpoint: str | Path, device) -> tuple:
    """(model, mean, std, threshold) of a loaded checkpoint on ``device``, each checked: weights that
    fit its model, three finite means and positive stds, a threshold within [0, 1], and a colour
    or grey training that matches the variant it will score. Anything else names the checkpoint."""
    import math

    model = build_model(config.model, "none")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CsxaError(f"its weights do not fit a {config.model} ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:160]})", path=checkpoint) from None
    norm = state.get("normalisation")
    pair = [norm.get(k) if isinstance(norm, dict) else None for k in ("mean", "std")]
    if not all(isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          and math.isfinite(x) for x in v) for v in pair) \
            or min(pair[1]) <= 0:
        raise CsxaError("its normalisation is not three finite means and three positive stds", path=checkpoint)
    threshold = state.get("threshold", 0.5)
    if not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and 0 <= threshold <= 1):
        raise CsxaError(f"its threshold {str(threshold)[:40]} is not a number within [0, 1]", path=checkpoint)
    colour = state.get("colour")
    if isinstance(colour, bool) and colour != is_colour_variant(config.variant):
        kinds = ("a grey", "a colour") if not colour else ("a colour", "a grey")
        raise CsxaError(f"it was trained on {kinds[0]} variant; {config.variant} is {kinds[1]} one", path=checkpoint)
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device).view(1, 3, 1, 1) for v in pair)
    return model.to(device), mean, std, float(threshold)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# --- training data -----------------------------------------------------------------------------

def swap_orders(images):
    """Channel order a <-> b of a colour batch (N x 3 x H x W): channels 1 and 2 swapped."""
    return images[:, [0, 2, 1]]


def is_colour_variant(source) -> bool:
    """Whether the variant stacks grey, equalised and inverted planes (two channel orders per case)."""
    spec = read_variant_json(source, "shards.json").get("spec") or {}
    return spec.get("colour") == "stacked"


def case_stem(key: str) -> str:
    """The case of a sample key: the 7-digit stem without a channel-order suffix (``_a``/``_b``)."""
    return re.sub(r"_[ab]$", "", key)


def one_sample_per_case(images: np.ndarray, labels: np.ndarray, keys: list[str], colour: bool,
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One image per case, sorted by case: a grey variant's own, a colour variant's order a (its
    ``STEM_a`` or ``STEM`` sample; order b is derived from it by swapping channels 1 and 2)."""
    first: dict[str, int] = {}      # the first sample of each case
    order_a: dict[str, int] = {}    # its order-a sample, where the shards hold one
    for i, key in enumerate(keys):
        stem = case_stem(key)
        if stem in first:
            if not colour:
                raise CsxaError(f"case {stem} has two samples in a grey variant's train split ({key})")
            if labels[first[stem]] != labels[i]:
                raise CsxaError(f"case {stem}'s samples disagree on its class ({keys[first[stem]]}, {key})")
        first.setdefault(stem, i)
        if not key.endswith("_b"):
            order_a.setdefault(stem, i)
    stems = sorted(first)
    out = np.stack([images[order_a[s]] if s in order_a else swap_orders(images[first[s]][None])[0] for s in stems])
    return out, labels[[first[s] for s in stems]], stems


def validation_cases(labels: np.ndarray, stems: list[str], fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the cases held out for validation: ``fraction`` of each class (rounded),
    drawn by a seeded permutation of the cases sorted by stem."""
    mask = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    order = np.argsort(np.asarray(stems), kind="mergesort")
    for cls in np.unique(labels):
        members = order[labels[order] == cls]
        take = int(round(fraction * len(members)))
        mask[rng.permutation(members)[:take]] = True
    return mask


def require_both_classes(labels: np.ndarray, where: str | None = None) -> None:
    """Refuse train cases of one class only. (Lowering ``val_fraction`` cannot mend that: holding out
    under half of each class always leaves some of every class the cases hold.)"""
    classes = np.unique(labels)
    if len(classes) < 2:
        which = f"all of class {int(classes[0])}" if len(classes) else "none at all"
        raise CsxaError(f"the train cases are {which} ({len(labels)} cases); a classifier needs both classes",
                        path=where)


@dataclass
class TrainData:
    """The train part (balanced, as tensors), the validation part (uint8, order a) and counts."""

    images: torch.Tensor
    labels: torch.Tensor
    val_images: np.ndarray
    val_labels: np.ndarray
    colour: bool
    counts: dict


def train_data(config: TrainConfig, test_cases=None) -> TrainData:
    """The train split in memory, one image per case, its validation part held out, then the
    colour orders laid out as ``train_orders`` says and the rest balanced by SMOTE if asked; none of
    ``test_cases`` (:func:`data.preflight`'s) may be among them."""
    colour = is_colour_variant(config.variant)
    images, labels, keys = load_split(config.variant, "train", test_cases)
    images, labels, stems = one_sample_per_case(images, labels, keys, colour)
    return cases_train_data(images, labels, stems, colour, config)


def cases_train_data(images: np.ndarray, labels: np.ndarray, stems: list[str], colour: bool,
                     config: TrainConfig) -> TrainData:
    """:func:`train_data` from cases in memory (one image per case, sorted by stem): the
    validation part held out, the colour orders laid out and SMOTE applied (cross-validation
    calls it with the cases of the training folds)."""
    if config.balance != "none":
        require_both_classes(labels, str(config.variant))
    held = validation_cases(labels, stems, config.val_fraction, config.seed)
    val_images, val_labels = images[held], labels[held]
    images, labels = images[~held], labels[~held]
    counts = {"train_cases": int(len(labels)), "validation_cases": int(len(val_labels)),
              "train_by_class": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))},
              "validation_by_class": {str(k): int(v) for k, v in zip(*np.unique(val_labels, return_counts=True))},
              "majority_class": int(np.bincount(labels).argmax()), "smote_synthetic": 0}
    if colour and config.train_orders == "both":
        images, labels = np.concatenate([images, swap_orders(images)]), np.concatenate([labels, labels])
    counts["train_samples"] = int(len(labels))
    if config.balance == "smote":
        extra, extra_labels = smote_oversample(images, labels, seed=config.seed, k_neighbors=config.smote_k,
                                               chunk=config.smote_chunk)
        images, labels = np.concatenate([images, extra]), np.concatenate([labels, extra_labels])
        counts["smote_synthetic"] = int(len(extra_labels))
    return TrainData(torch.from_numpy(images), torch.from_numpy(labels), val_images, val_labels, colour, counts)


def model_normalisation(source, colour: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The variant's train-only mean and std as the model sees its inputs: for a colour variant,
    whose model sees both channel orders, channels 1 and 2 take the statistics of the 50/50
    mixture of the two orders (``stats.json`` pooled over both orders already has them equal)."""
    return pool_orders(*normalisation(source), colour)


def pool_orders(mean: torch.Tensor, std: torch.Tensor, colour: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel statistics (1 x 3 x 1 x 1) as the model sees its inputs: unchanged for a grey
    variant; for a colour variant channels 1 and 2 take the 50/50 mixture of the two orders'."""
    if not colour:
        return mean, std
    m = mean[:, 1:3].mean(dim=1, keepdim=True)
    second = (std[:, 1:3] ** 2 + mean[:, 1:3] ** 2).mean(dim=1, keepdim=True)
    s = torch.sqrt(torch.clamp(second - m ** 2, min=1e-12))
    return torch.cat([mean[:, :1], m, m], dim=1), torch.cat([std[:, :1], s, s], dim=1)


# --- training ----------------------------------------------------------------------------------

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


def epoch_orders_drawn(n: int, config: TrainConfig, epoch: int) -> torch.Tensor:
    """Per sample, whether this epoch shows it in channel order b (seeded per epoch, the same on
    every rank): one order per case per epoch, each with probability 1/2."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch + 104729)
    return torch.rand(n, generator=generator) < 0.5


def train_one_epoch(model, optimizer, criterion, images, labels, order, mean, std, config: TrainConfig,
                    epoch: int, runtime: Runtime, swap: torch.Tensor | None = None) -> dict:
    """One pass over this rank's share; ``swap`` marks the samples shown in channel order b.
    Returns loss, accuracy, images/s."""
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
    return {"loss": stats[0].item() / max(stats[2].item(), 1), "accuracy": stats[1].item() / max(stats[2].item(), 1),
            "samples": int(stats[2].item()), "seconds": round(seconds, 3),
            "images_per_s": round(stats[2].item() / max(seconds, 1e-9), 1)}


def training_parts(model, labels: torch.Tensor, config: TrainConfig, device: torch.device):
    """The loss (class-weighted if ``balance`` says so), Adam and the step decay of a run."""
    weight = class_weights(labels.numpy()).to(device) if config.balance == "class_weighted_loss" else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    return nn.CrossEntropyLoss(weight=weight), optimizer, scheduler


def run_epoch(model, criterion, optimizer, scheduler, images, labels, colour: bool, mean, std, config: TrainConfig,
              epoch: int, runtime: Runtime) -> dict:
    """One seeded epoch (shuffle, drawn channel orders, dropout masks), then the scheduler's step;
    returns the log row."""
    torch.manual_seed(config.seed * 1000 + epoch + 7919 * runtime.rank)  # dropout: same masks after a resume
    order = epoch_order(labels, config, epoch, runtime)
    swap = epoch_orders_drawn(len(labels), config, epoch) if colour and config.train_orders == "draw" else None
    row = {"epoch": epoch + 1, "lr": scheduler.get_last_lr()[0],
           **train_one_epoch(model, optimizer, criterion, images, labels, order, mean, std, config, epoch, runtime,
                             swap)}
    scheduler.step()
    return row


# --- scoring -----------------------------------------------------------------------------------

def scoring_orders(colour: bool, config: TrainConfig) -> tuple[str, ...]:
    """The channel orders a case is scored in: ``("a", "b")`` for a colour variant under
    ``test_orders: both``, else ``("a",)``."""
    return ("a", "b") if colour and config.test_orders == "both" else ("a",)


@torch.no_grad()
def score_batch(model, images: torch.Tensor, mean, std, config: TrainConfig, device: torch.device,
                orders: tuple[str, ...]) -> np.ndarray:
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
def score_in_memory(model, images: np.ndarray, mean, std, config: TrainConfig, runtime: Runtime,
                    orders: tuple[str, ...]) -> np.ndarray:
    """Scores of in-memory uint8 images (the validation part), in batches."""
    model.eval()
    parts = [score_batch(model, torch.from_numpy(images[i:i + config.eval_batch_size]), mean, std, config,
                         runtime.device, orders) for i in range(0, len(images), config.eval_batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0)


@torch.no_grad()
def predict(model, source, mean, std, config: TrainConfig, runtime: Runtime,
            orders: tuple[str, ...] = ("a",)) -> pd.DataFrame:
    """Score every test sample exactly once (shards split over ranks and workers), gathered on all
    ranks and sorted by key; score = probability of spondylosis (mean over ``orders``)."""
    model.eval()
    rows = []
    for batch in guarded(eval_loader(source, config.eval_batch_size, config.workers), source):
        scores = score_batch(model, batch["image"], mean, std, config, runtime.device, orders)
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


EVALUATION_FILES = ("predictions.csv", "roc.csv", "confusion.csv", "calibration.csv", "metrics.json",
                    "evaluation.json", "report.png")
FIT_FILES = (CHECKPOINT, "train_log.csv", *EVALUATION_FILES, "MODEL_CARD.md")


def evaluation_files(predictions: pd.DataFrame, majority_class: int, title: str, extra: dict,
                     threshold: float = 0.5, calibration_bins: int = 10) -> tuple[dict, dict]:
    """The evaluation details, and a writer for each of ``EVALUATION_FILES``: metrics.json
    (headline), evaluation.json (details), predictions.csv, roc.csv, confusion.csv, calibration.csv
    and report.png."""
    from csxa_train.figures import evaluation_figure

    details = {**evaluate_predictions(predictions, majority_class, threshold, calibration_bins), **extra}
    predictions = predictions.assign(pred_at_threshold=(predictions.score >= threshold).astype(int))
    roc = roc_curve(predictions.label.to_numpy(), predictions.score.to_numpy())
    calibration = calibration_table(predictions.label.to_numpy(), predictions.score.to_numpy(), calibration_bins)
    writers = {
        "predictions.csv": lambda path: predictions.to_csv(path, index=False, float_format="%.8f"),
        "roc.csv": lambda path: roc.to_csv(path, index=False, float_format="%.6f"),
        "confusion.csv": lambda path: confusion_rows(predictions).to_csv(path, index=False),
        "calibration.csv": lambda path: calibration.to_csv(path, index=False, float_format="%.6f"),
        "metrics.json": lambda path: path.write_text(json.dumps(headline_metrics(details), indent=2) + "\n"),
        "evaluation.json": lambda path: path.write_text(json.dumps(details, indent=2) + "\n"),
        "report.png": lambda path: evaluation_figure(details, roc, calibration, title, path),
    }
    return details, writers


def write_evaluation(out: Path, predictions: pd.DataFrame, majority_class: int, title: str, extra: dict,
                     threshold: float = 0.5, calibration_bins: int = 10) -> dict:
    """The ``EVALUATION_FILES`` written into ``out`` together (see ``write_files_atomic``: a run
    failing or killed while it writes them leaves the old ones; only a kill within the final
    renames, microseconds, could mix them); returns the details."""
    details, writers = evaluation_files(predictions, majority_class, title, extra, threshold, calibration_bins)
    write_files_atomic(out, writers)
    return details


def fit(config: TrainConfig, out: str | Path, *, title: str | None = None) -> dict | None:
    """Train, checkpoint every epoch, choose the threshold on the validation part, evaluate on the
    test split; returns the evaluation details (on rank 0). A run that fails before writing
    anything leaves no empty output folder behind."""
    out = Path(out)
    created = not out.exists()
    runtime = start_runtime()
    try:
        return _fit(config, out, title or out.name, runtime)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        stop_runtime()


def _fit(config: TrainConfig, out: Path, title: str, runtime: Runtime) -> dict | None:
    test_cases = preflight(config.variant)  # the test split verified before anything is trained or written
    seed_everything(config.seed)
    data = train_data(config, test_cases)
    mean, std = (t.to(runtime.device) for t in model_normalisation(config.variant, data.colour))
    images, labels, counts = data.images, data.labels, data.counts
    if runtime.device.type == "cuda":
        images = images.pin_memory()
    out.mkdir(parents=True, exist_ok=True)
    if runtime.main:  # what a killed run left beside its files (also when this one fails before writing)
        for name in FIT_FILES:
            remove_stale_temporaries(out / name)
        (out / f".{CHECKPOINT}.tmp").unlink(missing_ok=True)  # the one name earlier versions used
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
    criterion, optimizer, scheduler = training_parts(model, labels, config, runtime.device)
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
        row = run_epoch(model, criterion, optimizer, scheduler, images, labels, data.colour, mean, std, config, epoch,
                        runtime)
        # timings go to the screen only: stored logs and checkpoints stay identical across reruns
        log_rows.append({k: v for k, v in row.items() if k not in ("seconds", "images_per_s")})
        if runtime.main:
            print(f"epoch {row['epoch']}/{config.epochs}: loss {row['loss']:.4f}, train accuracy "
                  f"{row['accuracy']:.3f}, lr {row['lr']:.2e}, {row['images_per_s']:.0f} images/s")
            state = {"model": _unwrap(model).state_dict(), "epoch": epoch, "config": config.to_dict(),
                     "digest": digest, "log": log_rows, "counts": counts, "colour": data.colour,
                     "normalisation": {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}}
            if epoch + 1 < config.epochs:  # what a resumed run needs; the final checkpoint is the model alone
                state |= {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            save_checkpoint(checkpoint_path, state)
        if dist.is_initialized():
            dist.barrier()
    orders = scoring_orders(data.colour, config)
    # the threshold comes from the validation part alone, never from the test split
    val_scores = score_in_memory(_unwrap(model), data.val_images, mean, std, config, runtime, orders)
    threshold, note = choose_threshold(data.val_labels, val_scores, config.threshold)
    if runtime.main and state is not None:  # evaluate_checkpoint then scores at the same threshold
        save_checkpoint(checkpoint_path, {**state, "threshold": threshold, "threshold_note": note})
    predictions = predict(_unwrap(model), config.variant, mean, std, config, runtime, orders)
    if not runtime.main:
        return None
    details, writers = evaluation_files(predictions, counts["majority_class"], title,
                                        {"experiment": title, "model": config.model, "balance": config.balance,
                                         "epochs": config.epochs, "world_size": runtime.world,
                                         "threshold_rule": str(config.threshold), "threshold_note": note,
                                         "colour_variant": data.colour,
                                         "train_orders": config.train_orders if data.colour else None,
                                         "test_orders": list(orders), **counts},
                                        threshold, config.calibration_bins)
    writers["train_log.csv"] = lambda path: pd.DataFrame(log_rows).to_csv(path, index=False, float_format="%.6f")
    writers["MODEL_CARD.md"] = lambda path: path.write_text(model_card_text(title, details, config), encoding="utf-8")
    write_files_atomic(out, writers)  # the results of one run, all together
    print(f"{title}: balanced accuracy {details['balanced_accuracy']:.3f}, sensitivity {details['sensitivity']:.3f}, "
          f"specificity {details['specificity']:.3f}, AUROC {_fmt(details['auroc'])}, accuracy {details['accuracy']:.3f} "
          f"(majority baseline {details['baseline']['accuracy']:.3f}); at threshold {threshold:.3f} ({note}): "
          f"balanced accuracy {details['at_threshold']['balanced_accuracy']:.3f}; wrote {out}")
    return details


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def model_card_text(title: str, details: dict, config: TrainConfig) -> str:
    """MODEL_CARD.md: the data version, protocol and metrics beside the majority baseline."""
    from csxa_data.cards import model_card

    report = read_variant_json(config.variant, "shards.json")
    data = {"variant": report.get("variant"), "source": str(config.variant),
            "shards_sha256": [s["sha256"] for s in report["shards"]]}
    return model_card(title, details, config.to_dict(), data)


def evaluate_checkpoint(checkpoint: str | Path, out: str | Path, *, variant: str | None = None,
                        workers: int | None = None) -> dict | None:
    """Score the test split with a saved checkpoint (at the threshold its run chose); writes the
    same evaluation files as fit."""
    runtime = start_runtime()
    try:
        state = load_checkpoint(checkpoint)
        missing = [k for k in ("config", "model", "normalisation", "counts") if k not in state]
        if missing:
            raise CsxaError(f"not a csxa-train checkpoint (no {missing})", path=checkpoint)
        config = checkpoint_config(state, checkpoint, variant=variant or None, workers=workers)
        model, mean, std, threshold = restore_model(state, config, checkpoint, runtime.device)
        counts = state["counts"]
        if not isinstance(counts, dict) or counts.get("majority_class") not in (0, 1):
            raise CsxaError("its counts name no majority class 0 or 1", path=checkpoint)
        if runtime.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        preflight(config.variant)  # the whole test split checked before any scoring
        orders = scoring_orders(bool(state.get("colour", False)), config)
        predictions = predict(model, config.variant, mean, std, config, runtime, orders)
        if not runtime.main:
            return None
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        return write_evaluation(out, predictions, state["counts"]["majority_class"], out.name,
                                {"checkpoint": str(checkpoint), "world_size": runtime.world,
                                 "threshold_note": state.get("threshold_note", "fixed at 0.5")},
                                threshold, config.calibration_bins)
    finally:
        stop_runtime()
