"""One verification for every source: ``shards.json`` and ``stats.json`` against their contracts,
each shard's sha256 and counts as it streams, and no case in two splits or twice in one."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Iterator
from typing import IO

from csxa_data.errors import SourceError
from csxa_data.shards.format import MEMBER_KINDS, ShardError, decode_sample, iter_tar_stream
from csxa_data.shards.http import HashingReader, one_line
from csxa_data.shards.sources import Source, open_source

SPLITS = ("train", "test")
SHARD_NAME = re.compile(r"(train|test)-[0-9]{6}\.tar", re.ASCII)
SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
SAMPLE_KEY = re.compile(r"[0-9]{7}(_[ab])?", re.ASCII)  # the stem, plus the colour order (schemas.SampleMeta)


def _json(source: Source, name: str) -> dict:
    data = source.read_bytes(name, source.params.max_json_bytes)
    published = source.published()
    if published is not None:  # before a byte of it is believed
        published.check(name, hashlib.md5(data).hexdigest(), source.where(name))  # noqa: S324
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SourceError(
            f"not valid JSON ({type(exc).__name__}: {one_line(str(exc))[:200]})", path=source.where(name)
        ) from None
    if not isinstance(value, dict):
        raise SourceError("must be a JSON object", path=source.where(name))
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _by_class(value) -> bool:
    return isinstance(value, dict) and all(k in ("0", "1") and _count(v) for k, v in value.items())


def check_shard_report(report: dict, where: str) -> dict:
    """``shards.json`` against its contract: every shard named, split, counted and hashed, each
    split's totals equal to the sum of its shards. Returns the report."""

    def fail(message: str):
        raise SourceError(f"not a valid csxa shards.json: {message}", path=where)

    shards, totals = report.get("shards"), report.get("totals")
    if not isinstance(shards, list) or not shards:
        fail("'shards' must be a non-empty list")
    if not isinstance(totals, dict) or any(not isinstance(totals.get(s), dict) for s in SPLITS):
        fail("'totals' must hold 'train' and 'test'")
    seen = set()
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict):
            fail(f"shards[{i}] is not an object")
        name = shard.get("name")
        if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
            fail(f"shards[{i}].name {name!r} is not SPLIT-NNNNNN.tar")
        if name in seen:
            fail(f"shard {name} is listed twice")
        seen.add(name)
        if shard.get("split") not in SPLITS or not name.startswith(f"{shard.get('split')}-"):
            fail(f"shard {name}: split {shard.get('split')!r} does not match its name")
        if not isinstance(shard.get("sha256"), str) or not SHA256.fullmatch(shard["sha256"]):
            fail(f"shard {name}: sha256 must be 64 lower-case hex digits")
        if (
            not _count(shard.get("samples"))
            or not _by_class(shard.get("by_class"))
            or sum(shard["by_class"].values()) != shard["samples"]
        ):
            fail(f"shard {name}: samples and by_class must be counts that agree")
    for split in SPLITS:
        total = totals[split]
        if not _count(total.get("samples")) or not _by_class(total.get("by_class")):
            fail(f"totals.{split} must hold counts 'samples' and 'by_class'")
        listed = [s for s in shards if s["split"] == split]
        summed = {c: sum(s["by_class"].get(c, 0) for s in listed) for c in ("0", "1")}
        if sum(s["samples"] for s in listed) != total["samples"] or {c: n for c, n in summed.items() if n} != {
            c: n for c, n in total["by_class"].items() if n
        }:
            fail(
                f"totals.{split} ({total['samples']} samples, {total['by_class']}) differ from the sum of its "
                f"shards ({sum(s['samples'] for s in listed)}, {summed})"
            )
        if not listed:
            fail(f"no {split} shards")
    spec = report.get("spec", {})
    if not isinstance(spec, dict) or not _count(spec.get("out_size")) or not spec["out_size"]:
        fail("'spec.out_size' must be a positive whole number")
    return report


def check_stats(stats: dict, where: str) -> dict:
    """``stats.json``: three finite per-channel means in [0, 1] and stds of at least 1e-6."""
    values = {}
    for key in ("mean", "std"):
        value = stats.get(key)
        if not (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        ):
            raise SourceError(f"{key} must be three finite numbers, one per channel, not {value!r}", path=where)
        values[key] = value
    if not all(0 <= m <= 1 for m in values["mean"]):
        raise SourceError(f"mean must lie within [0, 1] (pixel / 255), not {values['mean']}", path=where)
    if not all(s >= 1e-6 for s in values["std"]):
        raise SourceError(
            f"std must be at least 1e-6 per channel (nothing to normalise by), not {values['std']}", path=where
        )
    return stats


def shard_report(source: Source) -> dict:
    """The source's ``shards.json``, size-capped and checked."""
    return check_shard_report(_json(source, "shards.json"), source.where("shards.json"))


def stats_report(source: Source) -> dict:
    """The source's ``stats.json``, size-capped and checked."""
    return check_stats(_json(source, "stats.json"), source.where("stats.json"))


def read_json(source: Source, name: str) -> dict:
    """``shards.json`` or ``stats.json``, checked; any other small JSON file, capped."""
    if name == "shards.json":
        return shard_report(source)
    if name == "stats.json":
        return stats_report(source)
    return _json(source, name)


def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR, without decoding it."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


# What may follow a tar's end-of-archive block: zero padding to the end of its record (10,240 bytes for
# tarfile and WebDataset; GNU tar's largest blocking factor makes 1 MiB). Anything more is not read.
MAX_TRAILING_BYTES = 1 << 20
# After a broken archive, how much more is read to tell a damaged download (its hash differs) apart.
MAX_DRAIN_AFTER_ERROR = 64 << 20


def _read_to_end(stream: IO[bytes], limit: int) -> tuple[int, bool, bool]:
    """Read on to the end of ``stream`` in small pieces, at most ``limit`` bytes, keeping none of
    them: (bytes read, whether the end was reached, whether they were all zero)."""
    count, zeros = 0, True
    while count <= limit:
        piece = stream.read(min(1 << 16, limit + 1 - count))
        if not piece:
            return count, True, zeros
        count += len(piece)
        zeros = zeros and not piece.strip(b"\0")
    return count, False, zeros


def _hash_problem(source: Source, name: str, reader: HashingReader, shard: dict, where: str) -> SourceError | None:
    """Why the bytes read of a whole shard are not the published ones: its md5 against the
    registry's record, then its sha256 against ``shards.json``; None when both agree."""
    published = source.published()
    if published is not None:
        try:
            published.check(name, reader.md5.hexdigest(), where)
        except SourceError as exc:
            return exc
    if reader.digest.hexdigest() != shard["sha256"]:
        return SourceError(
            f"sha256 differs from shards.json ({reader.size:,} bytes read): a truncated, damaged or swapped shard",
            path=where,
        )
    return None


def shard_samples(source: Source, shard: dict, out_size: int, *, decode: bool = True) -> Iterator[dict]:
    """Samples of one shard as it streams, verified: members only png/cls/json, every image
    ``out_size`` square, every sample's ``split`` the shard's; after the archive's end nothing but
    its zero padding; at the end the md5 must be the registry's published one (where the source has
    a record) and the sha256, the sample count and the per-class counts ``shards.json``'s. Decoded
    samples (key, image, label, meta), or with ``decode=False`` only checked (the image is not
    decoded). Samples are yielded before the end is checked: callers hold results back until the
    whole split is read (``verify``, ``data.preflight``)."""
    name, split = shard["name"], shard["split"]
    where = source.where(name)
    by_class = {"0": 0, "1": 0}
    with source.open(name) as raw:
        reader = HashingReader(raw, source.params.max_shard_bytes, where)
        stream = io.BufferedReader(reader, buffer_size=1 << 20)
        try:
            yield from _checked_samples(
                iter_tar_stream(stream, where, source.params.max_member_bytes), split, out_size, where, by_class, decode
            )
        except ShardError:
            # a damaged download breaks the tar anywhere; its hashes name the cause better, when the
            # rest of it is short enough to read
            _, ended, _ = _read_to_end(stream, MAX_DRAIN_AFTER_ERROR)
            problem = _hash_problem(source, name, reader, shard, where) if ended else None
            if problem is not None:
                raise problem from None
            raise
        trailing, ended, zeros = _read_to_end(stream, MAX_TRAILING_BYTES)
        if not (ended and zeros):
            amount = f"{trailing:,} bytes" if ended else f"more than {MAX_TRAILING_BYTES:,} bytes"
            raise SourceError(
                f"{amount} {'' if zeros else 'other than zero padding '}follow the end of the archive "
                "(a shard ends with at most 1 MiB of zeros): a damaged or altered shard; not read further",
                path=where,
            )
    problem = _hash_problem(source, name, reader, shard, where)
    if problem is not None:
        raise problem
    counted = {c: n for c, n in by_class.items() if n}
    if sum(by_class.values()) != shard["samples"] or counted != {c: n for c, n in shard["by_class"].items() if n}:
        raise SourceError(
            f"holds {sum(by_class.values())} samples {counted}; shards.json lists {shard['samples']} "
            f"{shard['by_class']}",
            path=where,
        )


def _checked_samples(
    samples: Iterator[dict], split: str, out_size: int, where: str, by_class: dict, decode: bool
) -> Iterator[dict]:
    """The raw samples of one shard checked (key, image size, split) and decoded; counts by class."""
    for sample in samples:
        if not SAMPLE_KEY.fullmatch(sample["__key__"]):
            raise ShardError(f"sample key {sample['__key__']!r} is not a 7-digit stem (plus _a or _b)", path=where)
        size = _png_size(sample.get("png", b""))
        if size is None and all(k in sample for k in MEMBER_KINDS):
            raise ShardError(f"sample {sample['__key__']!r}: the .png member is not a PNG", path=where)
        if size is not None and size != (out_size, out_size):
            raise ShardError(
                f"sample {sample['__key__']!r} is {size[0]}x{size[1]} px; every image of this "
                f"variant is {out_size}x{out_size} (spec.out_size)",
                path=where,
            )
        decoded = decode_sample(sample, image=decode)
        split_of_sample = decoded["meta"].get("split")  # decode_sample: a JSON object, a class 0 or 1
        if split_of_sample != split:
            raise ShardError(
                f"sample {decoded['key']!r} belongs to the {split_of_sample!r} split but is in a "
                f"{split} shard: refused, so that no test case reaches training",
                path=where,
            )
        by_class[str(decoded["label"])] += 1
        yield decoded


def split_shards_of(report: dict, split: str) -> list[dict]:
    """The shards.json entries of one split, in order."""
    return [s for s in report["shards"] if s["split"] == split]


class CaseLedger:
    """The case behind every sample key read so far, over shards and splits: a key twice, a case in
    two splits (its test label would leak into training), or a case twice in one split (scored or
    trained twice) is a ShardError naming the shard. A case may have two samples only in train, as
    the two channel orders ``STEM_a`` and ``STEM_b`` of a colour variant."""

    def __init__(self):
        self.where_key: dict[str, str] = {}
        self.cases: dict[int, tuple[str, str, str]] = {}  # number -> (a key, split, where)

    def add(self, key: str, number: int, split: str, where: str) -> None:
        """Record sample ``key`` of case ``number`` (its .json's), read from ``split`` at ``where``."""
        if not 1 <= number <= 9999 or int(key[:4]) != number:
            raise ShardError(f"sample {key!r}: its .json says case {number}, its key case {int(key[:4])}", path=where)
        other, other_split, other_where = self.cases.get(number, (None, split, None))
        if other_split != split:
            raise ShardError(
                f"case {number} is in the {other_split} split ({other_where}, {other!r}) and in the "
                f"{split} split ({key!r}): refused, so that no test case reaches training",
                path=where,
            )
        if key in self.where_key:
            raise ShardError(f"sample {key!r} appears twice (first in {self.where_key[key]})", path=where)
        self.where_key[key] = where
        if other is None:
            self.cases[number] = (key, split, where)
            return
        if split != "train" or {other[-2:], key[-2:]} != {"_a", "_b"} or other[:-2] != key[:-2]:
            raise ShardError(
                f"case {number} has two samples in the {split} split ({other!r} in {other_where}, and "
                f"{key!r}); a case has one (two in train only as the channel orders _a and _b)",
                path=where,
            )


def split_samples(
    source: Source, report: dict, split: str, *, decode: bool = True, cases: CaseLedger | None = None
) -> Iterator[dict]:
    """Every verified sample of a split, shard after shard, each case checked in ``cases`` (a new
    ledger if None: no case twice within the split)."""
    cases = cases if cases is not None else CaseLedger()
    for shard in split_shards_of(report, split):
        seen = []
        for decoded in shard_samples(source, shard, report["spec"]["out_size"], decode=decode):
            seen.append((decoded["key"], decoded["meta"]["number"]))
            yield decoded
        for key, number in seen:  # once the shard's own bytes are verified: a swapped shard is named as one
            cases.add(key, number, split, source.where(shard["name"]))


def verify(
    source: Source | str, splits: tuple[str, ...] = SPLITS, *, decode: bool = False, cases: CaseLedger | None = None
) -> dict:
    """Stream every shard of ``splits`` once (sha256, counts, splits, image headers, or with
    ``decode`` the whole images; no case twice, none in two splits, in ``cases``) and check both
    JSON files; returns shards.json. Run before training so that a bad test shard stops the run
    before hours of work, not after."""
    source = open_source(source)
    report = shard_report(source)
    stats_report(source)
    cases = cases if cases is not None else CaseLedger()
    for split in splits:
        for _ in split_samples(source, report, split, decode=decode, cases=cases):
            pass
    return report
