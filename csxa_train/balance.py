"""Class balance for the train split: SMOTE (the paper's), a weighted sampler, class-weighted loss, or none.

Only the train split is ever balanced. SMOTE runs on float32 (never uint8, whose arithmetic wraps
around), is fed only the minority class plus one majority sample (SMOTE's neighbours are drawn
within the minority class anyway), and generates in chunks that are rounded back to uint8 at once,
so peak memory stays near one chunk.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from csxa_data.errors import CsxaError

BALANCE_MODES = ("smote", "weighted_sampler", "class_weighted_loss", "none")
log = logging.getLogger("csxa_train")


def smote_oversample(
    images: np.ndarray, labels: np.ndarray, *, seed: int, k_neighbors: int = 5, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic minority images until the classes are equal, as uint8 (N x C x H x W).

    Returns only the new samples and their labels; the caller appends them to the train split.
    """
    from imblearn.over_sampling import SMOTE

    if images.dtype != np.uint8:
        raise CsxaError(f"smote expects uint8 images, got {images.dtype}")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) != 2:
        raise CsxaError(f"smote needs both classes in the train split; it has {dict(zip(classes, counts))}")
    minority, majority = classes[np.argmin(counts)], classes[np.argmax(counts)]
    n_min, n_new = int(counts.min()), int(counts.max() - counts.min())
    if n_new == 0:
        return images[:0], labels[:0]
    if n_min < 2:
        raise CsxaError(f"smote needs at least 2 minority samples in the train split, found {n_min}")
    k = min(k_neighbors, n_min - 1)
    shape = images.shape[1:]
    minority_rows = images[labels == minority].reshape(n_min, -1).astype(np.float32)
    anchor = images[labels == majority][:1].reshape(1, -1).astype(np.float32)
    features = np.concatenate([minority_rows, anchor])
    targets = np.r_[np.full(n_min, minority), majority]
    out = np.empty((n_new,) + shape, dtype=np.uint8)
    done = 0
    while done < n_new:
        size = min(chunk, n_new - done)
        sampler = SMOTE(
            sampling_strategy={int(minority): n_min + size},
            k_neighbors=k,
            random_state=np.random.RandomState(seed + done),
        )
        resampled, _ = sampler.fit_resample(features, targets)
        synthetic = resampled[len(features) :]  # imblearn appends the new samples after the input
        out[done : done + size] = np.clip(np.rint(synthetic), 0, 255).astype(np.uint8).reshape((size,) + shape)
        done += size
    log.info("smote: %d synthetic samples of class %d added to the train split (%d real)", n_new, minority, n_min)
    return out, np.full(n_new, minority, dtype=labels.dtype)


def class_weights(labels: np.ndarray, num_classes: int = 2) -> torch.Tensor:
    """Inverse-frequency weights, normalised so that they average 1 over the train samples."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def sample_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights for a weighted sampler: each class drawn equally often."""
    counts = np.bincount(labels)
    return (1.0 / counts[labels]).astype(np.float64)
