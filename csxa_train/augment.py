"""Training augmentation, applied to whole batches (on the GPU where there is one). The paper's
recipe: horizontal and vertical flips with p = 0.5 each, then two sequential random rotations,
uniform in +-20 and then +-60 degrees, corners filled black. Two rotations about the same centre
compose into one by the sum of the angles, so the image is resampled once; the angle keeps the
paper's peaked distribution on +-80. Smaller angles, no vertical flip and ``reflection`` padding keep
training films like the upright test films (the demo's setting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentParams:
    """Probabilities and angle ranges (degrees) of the train-time augmentation."""

    hflip: float = 0.5
    vflip: float = 0.5
    rotate_first: float = 20.0
    rotate_second: float = 60.0
    padding: str = "zeros"  # what a rotation brings into the corners: zeros (the paper's) | border | reflection


def draw_params(n: int, config: AugmentParams, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-sample flips (+-1 scales) and the two rotation angles, from ``generator``."""
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    first = (2 * u[:, 2] - 1) * config.rotate_first
    second = (2 * u[:, 3] - 1) * config.rotate_second
    return {
        "flip_x": torch.where(u[:, 0] < config.hflip, -1.0, 1.0).double(),
        "flip_y": torch.where(u[:, 1] < config.vflip, -1.0, 1.0).double(),
        "angle_first": first,
        "angle_second": second,
        "angle": first + second,
    }


def affine_matrices(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """N x 2 x 3 sampling matrices: flip, then rotate by the summed angle."""
    theta = params["angle"] * math.pi / 180
    cos, sin = torch.cos(theta), torch.sin(theta)
    sx, sy = params["flip_x"], params["flip_y"]
    zero = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos * sx, -sin * sy, zero], 1), torch.stack([sin * sx, cos * sy, zero], 1)], 1)


def augment_batch(x: torch.Tensor, config: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Flip and rotate a float batch (N x C x H x W, square images); the corners a rotation uncovers
    are filled as ``config.padding`` says: black (``zeros``, the paper's), the nearest edge pixel
    (``border``) or the image mirrored at its edge (``reflection``)."""
    params = draw_params(x.shape[0], config, generator)
    theta = affine_matrices(params).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=config.padding, align_corners=False)
