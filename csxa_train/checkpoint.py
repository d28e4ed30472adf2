"""Checkpoints: saved whole or not at all, loaded without running code from the file
(``weights_only``), and checked to be what fit writes before a model is rebuilt from one."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import torch

from csxa_data.atomic import atomic_path
from csxa_data.errors import CsxaError
from csxa_train.data import is_colour_variant
from csxa_train.models import build_model
from csxa_train.params import TrainParams


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
        raise CsxaError(
            f"cannot write the checkpoint ({exc.strerror or exc}); the partial file was removed "
            "and the previous checkpoint kept",
            path=path,
        ) from None


CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("model", "epoch", "config", "digest", "log", "counts", "normalisation")


def load_problem(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to retry unsafely:
    the global it blocked (code the file would run) where it names one, else its first line."""
    text = str(exc)
    blocked = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", text)
    if blocked:
        return (
            f"it asks to run {blocked.group(1)}, which is not model weights; refused, nothing of it ran "
            "(a csxa checkpoint holds tensors, numbers and text only)"
        )
    lines = [line for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return f"{type(exc).__name__}: {' '.join((lines or [text])[0].split())[:200]}"


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint loaded with ``weights_only=True`` (no code runs from the file) and checked to be
    what ``fit`` writes: a dict with the model's state dict and the run's settings."""
    path = Path(path)
    if not path.is_file():
        raise CsxaError("checkpoint not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad or unsafe file
        raise CsxaError(f"cannot load checkpoint safely ({load_problem(exc)})", path=path) from None
    if not isinstance(state, dict):
        raise CsxaError(
            f"not a csxa-train checkpoint: it holds a {type(state).__name__}, not a dict with {list(CHECKPOINT_KEYS)}",
            path=path,
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CsxaError(f"not a csxa-train checkpoint (no {missing})", path=path)
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CsxaError("not a csxa-train checkpoint: 'model' is not a state dict of tensors", path=path)
    if not isinstance(state["config"], dict) or not isinstance(state["epoch"], int):
        raise CsxaError("not a csxa-train checkpoint: 'config' is not a dict or 'epoch' not a whole number", path=path)
    return state


def checkpoint_config(state: dict, checkpoint: str | Path, **overrides) -> TrainParams:
    """The run's settings saved in a checkpoint, with ``overrides`` (those not None) on top, checked
    as params.yaml's are; a bad saved value is reported against the checkpoint, not params.yaml."""
    saved = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return TrainParams.from_dict(saved)
    except CsxaError as exc:
        raise CsxaError(f"its saved settings: {exc.message}", path=checkpoint) from None


def restore_model(state: dict, config: TrainParams, checkpoint: str | Path, device) -> tuple:
    """(model, mean, std, threshold) of a loaded checkpoint on ``device``, each checked: weights that
    fit its model, three finite means and positive stds, a threshold within [0, 1], and a colour
    or grey training that matches the variant it will score. Anything else names the checkpoint."""
    import math

    model = build_model(config.model, "none")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CsxaError(
            f"its weights do not fit a {config.model} ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})",
            path=checkpoint,
        ) from None
    norm = state.get("normalisation")
    pair = [norm.get(k) if isinstance(norm, dict) else None for k in ("mean", "std")]
    if (
        not all(
            isinstance(v, list)
            and len(v) == 3
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
            for v in pair
        )
        or min(pair[1]) <= 0
    ):
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
