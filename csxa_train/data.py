"""Published shards -> tensors. Reads only a variant's shards, ``shards.json`` and ``stats.json``
from any source that ``csxa_data.sources`` knows (a folder, an ``http(s)://`` mirror, a registry
revision ``dvc://REPO?rev=..&path=..``), never the raw release, and verifies every byte it uses.

- The train split is streamed once into memory as uint8 (the whole 224 px split is about 0.6 GB,
  and in memory it can be balanced with SMOTE and augmented in batches, on the GPU where there is one).
- The test split streams through a WebDataset pipeline, split across DDP ranks and DataLoader
  workers at shard level, so an evaluation epoch scores every sample exactly once.
- Each shard is checked as it streams (sha256, per-class counts, every sample in its own split,
  every image the variant's size) in both cases; :func:`preflight` checks the test split before
  training starts.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from csxa_data.errors import CsxaError
from csxa_data.shards.sources import Source, open_source
from csxa_data.shards.verify import CaseLedger, read_json, shard_samples, split_samples, split_shards_of, verify


def source_of(source: str | Path | Source) -> Source:
    """A :class:`~csxa_data.sources.Source` for a folder, URL or registry spec."""
    return open_source(source)


def read_variant_json(source: str | Path | Source, name: str) -> dict:
    """``shards.json`` or ``stats.json`` of a variant, size-capped and checked against its contract."""
    return read_json(source_of(source), name)


def shard_urls(source: str | Path | Source, split: str) -> list[str]:
    """Where the split's shards are, in order, as listed in ``shards.json`` (for messages and tools;
    reading goes through the source so that every byte is verified)."""
    src = source_of(source)
    return [src.where(s["name"]) for s in split_shards_of(read_variant_json(src, "shards.json"), split)]


def preflight(source: str | Path | Source) -> CaseLedger:
    """Verify both JSON files and the test split (every shard's bytes, counts, splits, cases and
    decoded images) before any training or scoring, so a bad test shard stops the run before
    hours of work rather than after; returns the test cases, for :func:`load_split` to refuse any
    of them in train. The train split needs no such pass: it is verified as :func:`load_split`
    reads it, before training starts."""
    cases = CaseLedger()
    verify(source_of(source), ("test",), decode=True, cases=cases)
    return cases


def normalisation(source: str | Path | Source) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the variant's train split (pixel / 255), shaped 1 x 3 x 1 x 1."""
    stats = read_variant_json(source, "stats.json")
    return tuple(torch.tensor(stats[k], dtype=torch.float32).view(1, 3, 1, 1) for k in ("mean", "std"))


def _to_record(decoded: dict) -> dict:
    return {
        "key": decoded["key"],
        "image": torch.from_numpy(np.ascontiguousarray(decoded["image"].transpose(2, 0, 1))),
        "label": decoded["label"],
        "number": decoded["meta"]["number"],
    }


class _VerifiedShards:
    """Pipeline stage: shard entries in, their verified, decoded samples out."""

    def __init__(self, source: Source, out_size: int):
        self.source, self.out_size = source, out_size

    def __call__(self, shards):
        for shard in shards:
            yield from shard_samples(self.source, shard, self.out_size)


def stream(source: str | Path | Source, split: str = "test"):
    """A WebDataset pipeline over the split's shards, in order, split by DDP rank and by DataLoader
    worker; each shard verified as it streams and only png, cls and json members decoded."""
    import webdataset as wds

    src = source_of(source)
    report = read_variant_json(src, "shards.json")
    return wds.DataPipeline(
        partial(iter, split_shards_of(report, split)),
        wds.split_by_node,
        wds.split_by_worker,
        _VerifiedShards(src, report["spec"]["out_size"]),
        wds.map(_to_record),
    )


def guarded(iterable, source):
    """Iterate, turning a damaged or unreachable shard into one clear error."""
    import tarfile

    try:
        yield from iterable
    except CsxaError as exc:
        if "Original Traceback" not in str(exc):  # raised here: already one line naming the file
            raise
        # raised in a DataLoader worker, it arrives wrapped in its traceback: keep its last line,
        # less the exception's class name ("csxa_data.shards.ShardError: FILE: what is wrong")
        raise CsxaError(str(exc).strip().splitlines()[-1].split(": ", 1)[-1]) from None
    except (OSError, tarfile.TarError, ValueError, RuntimeError) as exc:
        raise CsxaError(
            f"cannot stream the shards ({type(exc).__name__}: {str(exc).strip().splitlines()[-1]})", path=str(source)
        ) from None


def _collate(records: list[dict]) -> dict:
    return {
        "key": [r["key"] for r in records],
        "number": torch.tensor([r["number"] for r in records]),
        "image": torch.stack([r["image"] for r in records]),
        "label": torch.tensor([r["label"] for r in records]),
    }


def eval_loader(source: str | Path | Source, batch_size: int, workers: int, split: str = "test"):
    """Batches of the split, each sample exactly once over all ranks and workers."""
    src = source_of(source)
    shards = split_shards_of(read_variant_json(src, "shards.json"), split)
    return torch.utils.data.DataLoader(
        stream(src, split), batch_size=batch_size, collate_fn=_collate, num_workers=min(workers, len(shards))
    )


def load_split(
    source: str | Path | Source, split: str = "train", cases: CaseLedger | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The whole split in memory: images (N x 3 x H x W uint8), labels, keys; read and verified in
    one pass (a bad shard stops here, before any training), no case in it twice or among
    ``cases`` (:func:`preflight`'s test cases)."""
    src = source_of(source)
    report = read_variant_json(src, "shards.json")
    images, labels, keys = [], [], []
    for decoded in split_samples(src, report, split, cases=cases):
        images.append(np.ascontiguousarray(decoded["image"].transpose(2, 0, 1)))
        labels.append(decoded["label"])
        keys.append(decoded["key"])
    if not images:
        raise CsxaError(f"the {split} split is empty", path=src.location)
    return np.stack(images), np.asarray(labels, dtype=np.int64), keys


def prepare(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 batch -> float in [0, 1], resized (area) to ``size`` if given."""
    x = images.float().div_(255.0)
    if size and x.shape[-1] != size:
        x = F.interpolate(
            x,
            size=(size, size),
            mode="area" if size < x.shape[-1] else "bilinear",
            align_corners=None if size < x.shape[-1] else False,
        )
    return x


def swap_orders(images):
    """Channel order a <-> b of a colour batch (N x 3 x H x W): channels 1 and 2 swapped."""
    return images[:, [0, 2, 1]]


def is_colour_variant(source) -> bool:
    """Whether the variant stacks grey, equalised and inverted planes (two channel orders per case)."""
    spec = read_variant_json(source, "shards.json").get("spec") or {}
    return spec.get("colour") == "stacked"


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
    s = torch.sqrt(torch.clamp(second - m**2, min=1e-12))
    return torch.cat([mean[:, :1], m, m], dim=1), torch.cat([std[:, :1], s, s], dim=1)
