"""One call for another team: a published variant as a verified PyTorch dataset.

    from csxa_data import load_variant
    test = load_variant("wide_cropped", registry="https://github.com/org/csxa", rev="v1.1.0", split="test")
    loader = torch.utils.data.DataLoader(test, batch_size=32)

Every byte is checked as ``csxa-train fit`` checks it: each shard's md5 against the revision's
published hashes (a registry source) and its sha256 and counts against ``shards.json``; a shard's
samples are handed out only once the whole shard has passed, and no case may appear twice or in two
splits. A damaged or tampered shard is one :class:`~csxa_data.errors.SourceError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from csxa_data.errors import CsxaError
from csxa_data.shards.sources import RegistrySource, Source, SourceParams, open_source, registry_variant
from csxa_data.shards.verify import CaseLedger, read_json, shard_samples, split_shards_of

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Provenance:
    """Where a variant's bytes came from: enough to fetch the same bytes again."""

    variant: str
    source: str  # the folder, URL or dvc:// spec read
    registry: str | None = None
    rev: str | None = None  # as resolved: NAME@vX.Y.Z for a version, else as given
    commit: str | None = None  # the registry commit that revision named

    def describe(self) -> str:
        """``wide_cropped@v1.1.0 (commit 1a2b3c4d5e6f) from REGISTRY``, or ``unpublished, workspace``."""
        if self.registry is None:
            return f"unpublished, workspace ({self.source})"
        rev = self.rev if self.rev and "@" in self.rev else f"{self.variant} at {self.rev or 'HEAD'}"
        return f"{rev} (commit {(self.commit or '?')[:12]}) from {self.registry}"


class VariantDataset(torch.utils.data.IterableDataset):
    """The samples of one split of a variant: dicts with ``image`` (3 x H x W float32, normalised
    with the variant's train-split mean and std, unless ``normalise=False``: then uint8), ``label``
    (0 asymptomatic, 1 spondylotic), ``key`` and ``meta`` (the sample's JSON: case number, split,
    age, gender, crop box...). Shards are shared out among DataLoader workers; ``len`` is the
    split's sample count as ``shards.json`` publishes it."""

    def __init__(self, source: Source, split: str, provenance: Provenance, normalise: bool = True):
        self.source, self.split, self.provenance, self.normalise = source, split, provenance, normalise
        self.report = read_json(source, "shards.json")
        stats = read_json(source, "stats.json")
        self.mean = torch.tensor(stats["mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(stats["std"], dtype=torch.float32).view(3, 1, 1)
        self.shards = split_shards_of(self.report, split)

    def __len__(self) -> int:
        return sum(shard["samples"] for shard in self.shards)

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        mine = self.shards if worker is None else self.shards[worker.id :: worker.num_workers]
        cases = CaseLedger()
        size = self.report["spec"]["out_size"]
        for shard in mine:
            held = list(shard_samples(self.source, shard, size))  # handed out once the shard has passed
            where = self.source.where(shard["name"])
            for decoded in held:
                cases.add(decoded["key"], decoded["meta"]["number"], self.split, where)
            for decoded in held:
                yield self._record(decoded)

    def _record(self, decoded: dict) -> dict:
        image = torch.from_numpy(decoded["image"].transpose(2, 0, 1).copy())
        if self.normalise:
            image = (image.float() / 255.0 - self.mean) / self.std
        return {"image": image, "label": decoded["label"], "key": decoded["key"], "meta": decoded["meta"]}


def provenance_of(source: Source | str, *, registry: str | None = None) -> Provenance:
    """Where a variant's bytes come from: for a registry source, the revision and the commit it
    resolved to; for a folder that ``dvc import`` made, the registry, revision and commit its ``.dvc``
    file records; otherwise unpublished (a workspace folder, a mirror)."""
    import yaml

    source = open_source(source) if isinstance(source, str) else source
    location = source.spec if isinstance(source, RegistrySource) else str(source.location)
    path = source.path if isinstance(source, RegistrySource) else location
    variant = path.rstrip("/").rsplit("/", 1)[-1]
    if isinstance(source, RegistrySource):
        source.published()  # resolves the revision (and refuses one that publishes nothing) before any read
        commit = source.filesystem().repo.get_rev()
        return Provenance(variant, location, registry or source.repo, source.rev, commit)
    record = Path(str(source.location).rstrip("/") + ".dvc")
    if "://" not in location and record.is_file():
        try:
            dep = (yaml.safe_load(record.read_text()) or {}).get("deps", [{}])[0]
            repo = dep.get("repo") or {}
        except (yaml.YAMLError, AttributeError, IndexError, OSError):
            repo = {}
        if repo.get("url"):
            return Provenance(variant, location, repo["url"], repo.get("rev"), repo.get("rev_lock"))
    return Provenance(variant, location)


def load_variant(
    name: str,
    *,
    rev: str | None = None,
    registry: str | Path | None = None,
    split: str = "train",
    normalise: bool = True,
    params: SourceParams | None = None,
) -> VariantDataset:
    """A verified dataset of one split of variant ``name``.

    With ``registry`` (a csxa registry's git URL or path): the variant published there at ``rev``
    (a version ``vX.Y.Z``, ``latest``, the default, for its newest version not withdrawn, or any
    tag or commit), read through DVC without a clone. Without: ``name`` is a variant folder (or an
    ``http(s)://`` mirror), or a name under ``data/variants/`` of the current directory.
    """
    if split not in SPLITS:
        raise CsxaError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if registry is not None:
        spec = registry_variant(str(registry), name, rev or "latest")
    elif rev is not None:
        raise CsxaError("rev needs registry (the registry's git URL or path)")
    elif "://" in name or "/" in name or Path(name).is_dir():
        spec = name
    else:
        spec = f"data/variants/{name}"
    source = open_source(spec, params)
    provenance = provenance_of(source, registry=str(registry) if registry is not None else None)
    return VariantDataset(source, split, provenance, normalise)
