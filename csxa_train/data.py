"""Published shards -> tensors. Reads only a variant's shards, ``shards.json`` and ``stats.json``
(local folder or an ``http://`` base URL), never the raw release.

- The test split streams through WebDataset, split across DDP ranks and DataLoader workers at
  shard level, so an evaluation epoch scores every sample exactly once.
- The train split is streamed once into memory as uint8 (the whole 224 px split is about 0.6 GB,
  and in memory it can be balanced with SMOTE and augmented in batches, on the GPU where there is one).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from csxa_data.errors import CsxaError
from csxa_data.shards import decode_sample


def _is_url(source: str) -> bool:
    return str(source).startswith(("http://", "https://"))


def read_variant_json(source: str | Path, name: str) -> dict:
    """``shards.json`` or ``stats.json`` of a variant folder or URL."""
    source = str(source)
    where = f"{source.rstrip('/')}/{name}"
    try:
        if _is_url(source):
            with urllib.request.urlopen(where, timeout=30) as response:
                return json.loads(response.read().decode("utf-8"))
        return json.loads(Path(where).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CsxaError(f"not found; is {source} a built variant (csxa-data build)?", path=where) from None
    except (OSError, ValueError) as exc:
        raise CsxaError(f"cannot read ({exc})", path=where) from None


def shard_urls(source: str | Path, split: str) -> list[str]:
    """The split's shard paths or URLs, in order, as listed in ``shards.json``; local shards are
    checked against their sha256 there (a partial pull or a damaged copy stops here, clearly)."""
    from csxa_data.shards import file_sha256

    report = read_variant_json(source, "shards.json")
    try:
        shards = [(s["name"], s["sha256"]) for s in report["shards"] if s["split"] == split]
    except (KeyError, TypeError):
        raise CsxaError("not a csxa shards.json (each shard needs name, split and sha256)",
                        path=f"{source}/shards.json") from None
    if not shards:
        raise CsxaError(f"the variant has no {split} shards", path=f"{source}/shards.json")
    base = str(source).rstrip("/")
    if not _is_url(base):
        for name, sha in shards:
            path = Path(base) / name
            if not path.is_file():
                raise CsxaError("listed in shards.json but missing (an incomplete dvc pull?)", path=path)
            if file_sha256(path) != sha:
                raise CsxaError("sha256 differs from shards.json (a damaged or foreign shard)", path=path)
    return [f"{base}/{name}" for name, _ in shards]


def normalisation(source: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the variant's train split (pixel / 255), shaped 1 x 3 x 1 x 1."""
    stats = read_variant_json(source, "stats.json")
    try:
        mean, std = (torch.tensor(stats[k], dtype=torch.float32).view(1, 3, 1, 1) for k in ("mean", "std"))
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise CsxaError("not a csxa stats.json (mean and std of three channels)", path=f"{source}/stats.json") from None
    if not bool((std > 0).all()):
        raise CsxaError("a channel's std is 0: nothing to normalise by", path=f"{source}/stats.json")
    return mean, std


def _to_record(sample: dict) -> dict:
    decoded = decode_sample(sample)
    return {"key": decoded["key"], "image": torch.from_numpy(np.ascontiguousarray(decoded["image"].transpose(2, 0, 1))),
            "label": decoded["label"], "number": decoded["meta"]["number"]}


def stream(urls: list[str]):
    """A WebDataset over the shards, in order, split by DDP rank and by DataLoader worker; only
    png, cls and json members are decoded (anything else is refused)."""
    import webdataset as wds

    return wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node,
                          workersplitter=wds.split_by_worker, empty_check=False).map(_to_record)


def guarded(iterable, source):
    """Iterate, turning a damaged or unreachable shard into one clear error."""
    import tarfile

    try:
        yield from iterable
    except CsxaError as exc:  # raised in a DataLoader worker, it arrives wrapped in its traceback
        raise CsxaError(str(exc).strip().splitlines()[-1].split(": ", 1)[-1]) from None
    except (OSError, tarfile.TarError, ValueError, RuntimeError) as exc:
        raise CsxaError(f"cannot stream the shards ({type(exc).__name__}: {str(exc).strip().splitlines()[-1]})",
                        path=str(source)) from None


def _collate(records: list[dict]) -> dict:
    return {"key": [r["key"] for r in records], "number": torch.tensor([r["number"] for r in records]),
            "image": torch.stack([r["image"] for r in records]), "label": torch.tensor([r["label"] for r in records])}


def eval_loader(source: str | Path, batch_size: int, workers: int, split: str = "test"):
    """Batches of the split, each sample exactly once over all ranks and workers."""
    urls = shard_urls(source, split)
    return torch.utils.data.DataLoader(stream(urls), batch_size=batch_size, num_workers=workers,
                                       collate_fn=_collate)


def load_split(source: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The whole split in memory: images (N x 3 x H x W uint8), labels, keys; read in one pass."""
    import webdataset as wds

    images, labels, keys = [], [], []
    dataset = wds.WebDataset(shard_urls(source, split), shardshuffle=False, nodesplitter=None,
                             workersplitter=None, empty_check=False).map(_to_record)
    for record in guarded(dataset, source):
        images.append(record["image"].numpy())
        labels.append(record["label"])
        keys.append(record["key"])
    if not images:
        raise CsxaError(f"the {split} split is empty", path=str(source))
    return np.stack(images), np.asarray(labels, dtype=np.int64), keys


def prepare(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 batch -> float in [0, 1], resized (area) to ``size`` if given."""
    x = images.float().div_(255.0)
    if size and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area" if size < x.shape[-1] else "bilinear",
                          align_corners=None if size < x.shape[-1] else False)
    return x
