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

import logging
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from csxa_data.atomic import remove_stale_temporaries, write_files_atomic
from csxa_data.errors import CsxaError
from csxa_train.card import model_card_text
from csxa_train.checkpoint import CHECKPOINT, checkpoint_config, load_checkpoint, restore_model, save_checkpoint
from csxa_train.data import model_normalisation, preflight
from csxa_train.loop import predict, run_epoch, score_in_memory, scoring_orders, training_parts
from csxa_train.metrics import choose_threshold
from csxa_train.models import build_model
from csxa_train.params import TrainParams
from csxa_train.results import EVALUATION_FILES, evaluation_files, write_evaluation
from csxa_train.runtime import Runtime, seed_everything, start_runtime, stop_runtime, unwrap
from csxa_train.trainset import train_data

log = logging.getLogger("csxa_train")
FIT_FILES = (CHECKPOINT, "train_log.csv", *EVALUATION_FILES, "MODEL_CARD.md")


def fit(config: TrainParams, out: str | Path, *, title: str | None = None) -> dict | None:
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


def _fit(config: TrainParams, out: Path, title: str, runtime: Runtime) -> dict | None:
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
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device] if runtime.device.type == "cuda" else None
        )
    for epoch in range(start_epoch, config.epochs):
        row = run_epoch(
            model, criterion, optimizer, scheduler, images, labels, data.colour, mean, std, config, epoch, runtime
        )
        # timings go to the screen only: stored logs and checkpoints stay identical across reruns
        log_rows.append({k: v for k, v in row.items() if k not in ("seconds", "images_per_s")})
        if runtime.main:
            print(
                f"epoch {row['epoch']}/{config.epochs}: loss {row['loss']:.4f}, train accuracy "
                f"{row['accuracy']:.3f}, lr {row['lr']:.2e}, {row['images_per_s']:.0f} images/s"
            )
            state = {
                "model": unwrap(model).state_dict(),
                "epoch": epoch,
                "config": config.to_dict(),
                "digest": digest,
                "log": log_rows,
                "counts": counts,
                "colour": data.colour,
                "normalisation": {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()},
            }
            if epoch + 1 < config.epochs:  # what a resumed run needs; the final checkpoint is the model alone
                state |= {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            save_checkpoint(checkpoint_path, state)
        if dist.is_initialized():
            dist.barrier()
    orders = scoring_orders(data.colour, config)
    # the threshold comes from the validation part alone, never from the test split
    val_scores = score_in_memory(unwrap(model), data.val_images, mean, std, config, runtime, orders)
    threshold, note = choose_threshold(data.val_labels, val_scores, config.threshold)
    if runtime.main and state is not None:  # evaluate_checkpoint then scores at the same threshold
        save_checkpoint(checkpoint_path, {**state, "threshold": threshold, "threshold_note": note})
    predictions = predict(unwrap(model), config.variant, mean, std, config, runtime, orders)
    if not runtime.main:
        return None
    details, writers = evaluation_files(
        predictions,
        counts["majority_class"],
        title,
        {
            "experiment": title,
            "model": config.model,
            "balance": config.balance,
            "epochs": config.epochs,
            "world_size": runtime.world,
            "threshold_rule": str(config.threshold),
            "threshold_note": note,
            "colour_variant": data.colour,
            "train_orders": config.train_orders if data.colour else None,
            "test_orders": list(orders),
            **counts,
        },
        threshold,
        config.calibration_bins,
    )
    writers["train_log.csv"] = lambda path: pd.DataFrame(log_rows).to_csv(path, index=False, float_format="%.6f")
    writers["MODEL_CARD.md"] = lambda path: path.write_text(model_card_text(title, details, config), encoding="utf-8")
    write_files_atomic(out, writers)  # the results of one run, all together
    print(
        f"{title}: balanced accuracy {details['balanced_accuracy']:.3f}, sensitivity {details['sensitivity']:.3f}, "
        f"specificity {details['specificity']:.3f}, AUROC {'n/a' if details['auroc'] is None else format(details['auroc'], '.3f')}, accuracy {details['accuracy']:.3f} "
        f"(majority baseline {details['baseline']['accuracy']:.3f}); at threshold {threshold:.3f} ({note}): "
        f"balanced accuracy {details['at_threshold']['balanced_accuracy']:.3f}; wrote {out}"
    )
    return details


def evaluate_checkpoint(
    checkpoint: str | Path, out: str | Path, *, variant: str | None = None, workers: int | None = None
) -> dict | None:
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
        return write_evaluation(
            out,
            predictions,
            state["counts"]["majority_class"],
            out.name,
            {
                "checkpoint": str(checkpoint),
                "world_size": runtime.world,
                "threshold_note": state.get("threshold_note", "fixed at 0.5"),
            },
            threshold,
            config.calibration_bins,
        )
    finally:
        stop_runtime()
