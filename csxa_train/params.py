"""Everything that decides a training run: the ``train`` section of params.yaml plus one experiment,
checked, and the run's identity (its settings, its data and the code that trains it)."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from csxa_data.errors import CsxaError
from csxa_data.params import dataclass_from_section, require
from csxa_train.augment import AugmentParams
from csxa_train.balance import BALANCE_MODES
from csxa_train.data import read_variant_json
from csxa_train.metrics import parse_threshold_rule
from csxa_train.models import MODELS

TRAIN_ORDERS = ("draw", "both")
TEST_ORDERS = ("both", "a")
ROOT = Path(__file__).resolve().parents[1]  # the folder holding the csxa packages
PACKAGES = ("csxa_data", "csxa_train", "schemas")
# The training code: the command's module and every module that fit imports, directly or not. It is
# the code a checkpoint's identity covers (an edit elsewhere neither stops a resume nor changes a
# retrained checkpoint's bytes) and, listed in dvc.yaml, the train stage's code dependencies.
TRAINING_COMMAND = "csxa_train/cli.py"
TRAINING_ENTRY = ("csxa_train.fit",)


def _module_file(name: str, root: Path) -> str | None:
    """The repository path of project module ``name`` (a module file or a package's __init__.py)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate.as_posix()
    return None


def module_closure(entries: tuple[str, ...], root: Path = ROOT) -> tuple[str, ...]:
    """The repository paths of ``entries`` and of every project module they import, directly or
    through others: imports anywhere in a module count (lazy ones inside functions too), and so do
    the ``__init__.py`` of every package on the way. Read from the source; nothing is imported."""
    found: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts)):  # the packages a module's import runs first
            package = _module_file(".".join(parts[:depth]), root)
            if package and package not in found:
                todo.append(".".join(parts[:depth]))
        path = _module_file(name, root)
        if path is None or path in found:
            continue
        found.add(path)
        for node in ast.walk(ast.parse((root / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                todo.append(node.module)
                todo += [
                    f"{node.module}.{alias.name}"
                    for alias in node.names
                    if _module_file(f"{node.module}.{alias.name}", root)
                ]
    return tuple(sorted(found))


@cache
def training_code(root: Path = ROOT) -> tuple[str, ...]:
    """The training code's repository paths (see ``TRAINING_ENTRY``), sorted."""
    return tuple(sorted({TRAINING_COMMAND, *module_closure(TRAINING_ENTRY, root)}))


@dataclass(frozen=True)
class TrainParams:
    """Everything that decides a training run (the ``train`` section plus one experiment)."""

    variant: str  # a variant folder or http:// URL (its shards.json, stats.json)
    model: str = "resnet50"
    weights: str = "imagenet"  # imagenet | none | path to a local state dict
    balance: str = "smote"  # smote | weighted_sampler | class_weighted_loss | none
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-4
    lr_step: int = 5  # epochs between halvings
    lr_gamma: float = 0.5
    image_size: int | None = None  # resize the variant's images for training (None: as stored)
    seed: int = 2024
    augment: AugmentParams = field(default_factory=AugmentParams)
    eval_batch_size: int = 64
    workers: int = 2  # DataLoader workers for the streamed test split
    smote_k: int = 5
    smote_chunk: int = 256
    val_fraction: float = 0.1  # of the train split's cases, per class: held out, chooses the threshold
    threshold: str | float = 0.5  # a number in (0, 1) | youden | sensitivity@X (chosen on validation)
    train_orders: str = "draw"  # colour variants: draw (one order per case per epoch) | both (paper's literal)
    test_orders: str = "both"  # colour variants: both (mean of the two orders' probabilities) | a
    calibration_bins: int = 10

    @classmethod
    def from_dict(cls, data: dict) -> TrainParams:
        """From merged params; unknown keys and values are errors naming the key."""

        if "variant" not in (data or {}):
            raise CsxaError("no variant given (--variant or experiments.<name>.variant)")
        config = dataclass_from_section(cls, data, "train", nested={"augment": AugmentParams})
        require(config.model in MODELS, f"train.model must be one of {list(MODELS)}, not {config.model!r}")
        require(
            config.balance in BALANCE_MODES,
            f"train.balance must be one of {list(BALANCE_MODES)}, not {config.balance!r}",
        )
        require(0 <= config.val_fraction < 0.5, "train.val_fraction must be within [0, 0.5)")
        parse_threshold_rule(config.threshold)
        require(
            config.train_orders in TRAIN_ORDERS,
            f"train.train_orders must be one of {list(TRAIN_ORDERS)}, not {config.train_orders!r}",
        )
        require(
            config.test_orders in TEST_ORDERS,
            f"train.test_orders must be one of {list(TEST_ORDERS)}, not {config.test_orders!r}",
        )
        require(2 <= config.calibration_bins <= 100, "train.calibration_bins must be within 2..100")
        require(
            config.epochs >= 1 and config.batch_size >= 1 and config.eval_batch_size >= 1,
            "train.epochs, train.batch_size and train.eval_batch_size must be at least 1",
        )
        require(
            config.lr > 0 and config.lr_step >= 1 and 0 < config.lr_gamma <= 1,
            "train.lr must be positive, train.lr_step at least 1 and train.lr_gamma within (0, 1]",
        )
        require(config.image_size is None or 8 <= config.image_size <= 2048, "train.image_size must be null or 8..2048")
        require(
            0 <= config.workers <= 64 and config.smote_k >= 1 and config.smote_chunk >= 1,
            "train.workers must be within 0..64; train.smote_k and train.smote_chunk must be at least 1",
        )
        require(
            config.batch_size <= 65536 and config.eval_batch_size <= 65536,
            "train.batch_size and train.eval_batch_size must be at most 65536",
        )
        require(0 <= config.seed < 2**32, f"train.seed must be within 0..2**32-1, not {config.seed}")
        a = config.augment
        require(
            0 <= a.hflip <= 1 and 0 <= a.vflip <= 1 and 0 <= a.rotate_first <= 180 and 0 <= a.rotate_second <= 180,
            "train.augment: flip probabilities must be within 0..1 and rotation ranges within 0..180 degrees",
        )
        require(
            a.padding in ("zeros", "border", "reflection"),
            f"train.augment.padding must be zeros, border or reflection, not {a.padding!r}",
        )
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        """Identity of the run: the configuration, the variant's shard hashes and the training code
        (:func:`training_code`), so that only a checkpoint of the same settings, data and code is resumed."""
        shards = [s["sha256"] for s in read_variant_json(self.variant, "shards.json")["shards"]]
        code = hashlib.sha256()
        for name in training_code():
            code.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
        identity = {**self.to_dict(), "variant": None, "shards": shards, "code": code.hexdigest()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
