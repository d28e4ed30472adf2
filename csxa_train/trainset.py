"""The train split in memory as training sees it: one sample per case, the validation part held out,
the colour orders laid out, and the rest balanced."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from csxa_data.errors import CsxaError
from csxa_data.splits import validation_cases
from csxa_train.balance import smote_oversample
from csxa_train.data import is_colour_variant, load_split, swap_orders
from csxa_train.params import TrainParams


def case_stem(key: str) -> str:
    """The case of a sample key: the 7-digit stem without a channel-order suffix (``_a``/``_b``)."""
    return re.sub(r"_[ab]$", "", key)


def one_sample_per_case(
    images: np.ndarray, labels: np.ndarray, keys: list[str], colour: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One image per case, sorted by case: a grey variant's own, a colour variant's order a (its
    ``STEM_a`` or ``STEM`` sample; order b is derived from it by swapping channels 1 and 2)."""
    first: dict[str, int] = {}  # the first sample of each case
    order_a: dict[str, int] = {}  # its order-a sample, where the shards hold one
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


def require_both_classes(labels: np.ndarray, where: str | None = None) -> None:
    """Refuse train cases of one class only. (Lowering ``val_fraction`` cannot mend that: holding out
    under half of each class always leaves some of every class the cases hold.)"""
    classes = np.unique(labels)
    if len(classes) < 2:
        which = f"all of class {int(classes[0])}" if len(classes) else "none at all"
        raise CsxaError(
            f"the train cases are {which} ({len(labels)} cases); a classifier needs both classes", path=where
        )


@dataclass
class TrainData:
    """The train part (balanced, as tensors), the validation part (uint8, order a) and counts."""

    images: torch.Tensor
    labels: torch.Tensor
    val_images: np.ndarray
    val_labels: np.ndarray
    colour: bool
    counts: dict


def train_data(config: TrainParams, test_cases=None) -> TrainData:
    """The train split in memory, one image per case, its validation part held out, then the
    colour orders laid out as ``train_orders`` says and the rest balanced by SMOTE if asked; none of
    ``test_cases`` (:func:`data.preflight`'s) may be among them."""
    colour = is_colour_variant(config.variant)
    images, labels, keys = load_split(config.variant, "train", test_cases)
    images, labels, stems = one_sample_per_case(images, labels, keys, colour)
    return cases_train_data(images, labels, stems, colour, config)


def cases_train_data(
    images: np.ndarray, labels: np.ndarray, stems: list[str], colour: bool, config: TrainParams
) -> TrainData:
    """:func:`train_data` from cases in memory (one image per case, sorted by stem): the
    validation part held out, the colour orders laid out and SMOTE applied (cross-validation
    calls it with the cases of the training folds)."""
    if config.balance != "none":
        require_both_classes(labels, str(config.variant))
    held = validation_cases(labels, stems, config.val_fraction, config.seed)
    val_images, val_labels = images[held], labels[held]
    images, labels = images[~held], labels[~held]
    counts = {
        "train_cases": int(len(labels)),
        "validation_cases": int(len(val_labels)),
        "train_by_class": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))},
        "validation_by_class": {str(k): int(v) for k, v in zip(*np.unique(val_labels, return_counts=True))},
        "majority_class": int(np.bincount(labels).argmax()),
        "smote_synthetic": 0,
    }
    if colour and config.train_orders == "both":
        images, labels = np.concatenate([images, swap_orders(images)]), np.concatenate([labels, labels])
    counts["train_samples"] = int(len(labels))
    if config.balance == "smote":
        extra, extra_labels = smote_oversample(
            images, labels, seed=config.seed, k_neighbors=config.smote_k, chunk=config.smote_chunk
        )
        images, labels = np.concatenate([images, extra]), np.concatenate([labels, extra_labels])
        counts["smote_synthetic"] = int(len(extra_labels))
    return TrainData(torch.from_numpy(images), torch.from_numpy(labels), val_images, val_labels, colour, counts)
