"""The shard format: WebDataset tars written byte-for-byte reproducibly, read safely.

A sample is three members ``KEY.cls`` (ASCII class), ``KEY.json`` (metadata) and ``KEY.png``;
keys are 7-digit stems, with ``_a``/``_b`` where a variant writes two images of one case. Tars carry
no timestamps, owners or permissions of the machine that wrote them. The reader decodes only these
three kinds: shards pulled from another team's remote are untrusted, so nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from csxa_data.errors import CsxaError
from csxa_data.release.images import ImageProblem, open_png, png_header, to_grey

MEMBER_KINDS = ("cls", "json", "png")
SHARD_PATTERN = "{split}-{index:06d}.tar"


class ShardError(CsxaError):
    """A shard that is not in the published format (an unknown member kind, a bad sample)."""


def sample_members(key: str, png: bytes, label: int, meta: dict) -> list[tuple[str, bytes]]:
    """The tar members of one sample, in a fixed order."""
    if "." in key:
        raise ValueError(f"sample key {key!r} contains a dot")
    return [
        (f"{key}.cls", str(int(label)).encode()),
        (f"{key}.json", json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()),
        (f"{key}.png", png),
    ]


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_shard(path: Path, samples: Iterable[list[tuple[str, bytes]]]) -> str:
    """Write the samples' members to a plain tar at ``path``; returns its sha256.

    The bytes are exactly those of ``tarfile`` in USTAR format (tested): each member's header,
    its data padded to 512-byte blocks, then two zero blocks and zeros to a whole 10,240-byte
    record. Written here in one pass, hashed on the way, instead of through ``tarfile.addfile``
    and a second read of the file for its hash."""
    digest, written = hashlib.sha256(), 0
    with open(path, "wb") as handle:
        for members in samples:
            for name, data in members:
                header = _tar_info(name, len(data)).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
                for block in (header, data, bytes(-len(data) % tarfile.BLOCKSIZE)):
                    handle.write(block)
                    digest.update(block)
                    written += len(block)
        end = bytes(2 * tarfile.BLOCKSIZE + -(written + 2 * tarfile.BLOCKSIZE) % tarfile.RECORDSIZE)
        handle.write(end)
        digest.update(end)
    return digest.hexdigest()


def shard_counts(total: int, per_shard: int, min_shards: int) -> list[int]:
    """Samples per shard: at least ``min_shards`` shards (so every loader worker gets some), at most
    ``per_shard`` samples each, sizes differing by at most one."""
    if total == 0:
        return []
    shards = min(total, max(min_shards, -(-total // per_shard)))
    base, extra = divmod(total, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


# --- reading -----------------------------------------------------------------------------------


def check_sample(sample: dict) -> dict:
    """Refuse a sample with any member other than png, cls and json (a pickle, a torch file, ...)."""
    url = sample.get("__url__", "?")
    key = sample.get("__key__", "?")
    unknown = sorted(k for k in sample if not k.startswith("__") and k not in MEMBER_KINDS)
    if unknown:
        raise ShardError(
            f"sample {key!r} has member(s) {['.' + k for k in unknown]}; a csxa shard holds only "
            f".png, .cls and .json, and nothing else is decoded (untrusted input)",
            path=url,
        )
    missing = [k for k in MEMBER_KINDS if k not in sample]
    if missing:
        raise ShardError(f"sample {key!r} lacks member(s) {['.' + k for k in missing]}", path=url)
    return sample


# A variant's images are at most 2048 px square (variants.*.out_size); anything larger in a shard is
# refused before it is decoded (a 60000 x 60000 PNG is a few hundred kB on disk).
MAX_SAMPLE_SIDE = 2048
MAX_SAMPLE_PIXELS = MAX_SAMPLE_SIDE * MAX_SAMPLE_SIDE
LABELS = (0, 1)


def decode_sample(sample: dict, *, image: bool = True) -> dict:
    """A checked raw sample -> key, image (H x W x 3 uint8), label (0 or 1), meta (a JSON object with
    a case ``number``). Anything else, or any decoder complaint, is a ShardError naming the sample.
    With ``image=False`` the .png member is left undecoded (checks before training) and the result
    has no image."""
    check_sample(sample)
    url, key = sample.get("__url__", "?"), sample["__key__"]
    try:
        decoded = {"key": key, "label": _label(sample["cls"]), "meta": _meta(sample["json"])}
        if image:
            decoded["image"] = _image(sample["png"])
        else:  # checked, not decoded: the bytes' hash tells a version's images apart (csxa_data.diff)
            decoded["png_sha256"] = hashlib.sha256(sample["png"]).hexdigest()
    except ShardError as exc:
        raise ShardError(f"sample {key!r}: {exc}", path=url) from None
    except Exception as exc:  # noqa: BLE001 - an untrusted shard may break a decoder in any way
        raise ShardError(f"sample {key!r} does not decode ({type(exc).__name__}: {str(exc)[:200]})", path=url) from None
    return decoded


def _label(data: bytes) -> int:
    text = data.decode("ascii").strip()
    if text not in ("0", "1"):
        raise ShardError(f".cls is {text[:20]!r}; a class must be 0 (asymptomatic) or 1 (spondylosis)")
    return int(text)


def _meta(data: bytes) -> dict:
    meta = json.loads(data.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ShardError(f".json is a {type(meta).__name__}, not an object")
    number = meta.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise ShardError(f".json has no whole case 'number' (got {str(number)[:40]})")
    return meta


def _image(data: bytes) -> np.ndarray:
    """The .png member as H x W x 3 uint8: grey (8- or 16-bit, scaled to its 8 high bits) repeated
    into three channels, colour as RGB (alpha dropped)."""

    header = png_header(data)
    # 262144 x 16 px is within the pixel cap (checked first, by open_png), but no variant's image
    if header is not None and header[0] * header[1] <= MAX_SAMPLE_PIXELS and max(header[:2]) > MAX_SAMPLE_SIDE:
        raise ShardError(
            f".png member is {header[0]}x{header[1]} px; a shard image has at most {MAX_SAMPLE_SIDE} px a side"
        )
    try:
        img = open_png(data, MAX_SAMPLE_PIXELS)
    except ImageProblem as exc:
        raise ShardError(f".png member: {exc}") from None
    if max(img.size) > MAX_SAMPLE_SIDE:
        raise ShardError(
            f".png member is {img.width}x{img.height} px; a shard image has at most {MAX_SAMPLE_SIDE} px a side"
        )
    if img.mode in ("L", "I;16", "I;16B", "I;16L", "I", "LA"):
        grey, _ = to_grey(img)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


# One member larger than this is refused before it is read (sources.max_member_bytes sets it for
# a source); a 224 px sample's members are about 100 kB.
MAX_MEMBER_BYTES = 256 << 20


_BLOCK = 512
_TYPES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"5": "a folder",
    b"6": "a FIFO",
    b"7": "a contiguous file",
    b"x": "a pax extended header",
    b"g": "a pax global header",
    b"L": "a GNU long name",
    b"K": "a GNU long link name",
    b"S": "a GNU sparse file",
    b"M": "a GNU multi-volume part",
    b"V": "a GNU volume label",
}


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _octal(field: bytes) -> int | None:
    """A tar header's number: octal digits (NUL or space terminated), or base-256; None if neither."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text and all(48 <= c <= 55 for c in text) else None


_PAX_CAP = 64 << 10  # a pax record block of a few names and times; tarfile's parser is quadratic in it
_PAX_KEPT = ("path", "size")
_PAX_IGNORED = ("mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment", "hdrcharset")


def _pax_records(data: bytes, offset: int, where: str) -> dict[str, str]:
    """The ``path`` and ``size`` records of a pax extended header (``LEN key=value\\n`` each, in one
    linear pass); times and owners are ignored, any other key (sparse maps, link names) refused."""
    records, pos = {}, 0
    while pos < len(data) and data[pos : pos + 1] != b"\0":
        space = data.find(b" ", pos, pos + 21)
        length = int(data[pos:space]) if space > pos and data[pos:space].isdigit() else 0
        record = data[pos : pos + length]
        if length <= space - pos + 1 or len(record) < length or not record.endswith(b"\n") or b"=" not in record:
            raise ShardError(f"not a readable tar (a malformed pax record at byte {offset:,})", path=where)
        key, _, value = record[space - pos + 1 : -1].partition(b"=")
        key = key.decode("ascii", "replace")
        if key in _PAX_KEPT:
            records[key] = value.decode("utf-8", "replace")
        elif key not in _PAX_IGNORED:
            raise ShardError(
                f"a pax record {key[:40]!r} at byte {offset:,}: a csxa shard holds plain files only", path=where
            )
        pos += length
    return records


def _check_checksum(block: bytes, offset: int, where: str) -> None:
    checksum = _octal(block[148:156])
    if checksum is None or checksum != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        raise ShardError(f"not a readable tar (the header at byte {offset:,} has a bad checksum)", path=where)


def _member_header(block: bytes, offset: int, where: str, pax: dict | None = None) -> tuple[str, int]:
    """(name, size) of a regular file's 512-byte USTAR header (``pax`` records applied), or a
    ShardError saying why not."""
    _check_checksum(block, offset, where)
    try:
        name = block[:100].split(b"\0", 1)[0].decode("utf-8")
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8") if block[257:262] == b"ustar" else ""
    except UnicodeDecodeError:
        raise ShardError(f"the member name at byte {offset:,} is not UTF-8", path=where) from None
    name = f"{prefix}/{name}" if prefix else name
    pax = pax or {}
    name = pax.get("path", name)
    kind = block[156:157]
    if kind not in (b"0", b"\0"):
        what = _TYPES.get(kind, f"of tar type {kind!r}")
        raise ShardError(
            f"member {name!r} is not a regular file ({what}); a csxa shard holds plain USTAR files only", path=where
        )
    size = (
        int(pax["size"]) if pax.get("size", "").isascii() and pax.get("size", "").isdigit() else _octal(block[124:136])
    )
    if size is None:
        raise ShardError(f"member {name!r} has no readable size", path=where)
    return name, size


def iter_tar_stream(stream: IO[bytes], where: str, member_cap: int = MAX_MEMBER_BYTES) -> Iterator[dict]:
    """Raw samples (member kind -> bytes) of a tar read front to back as a stream, grouped by key
    as WebDataset does. The one tar reader of both packages, and deliberately not ``tarfile``: a
    shard is plain USTAR (``write_shard``), so every header is checked here before anything it
    declares is read. A member that is not a regular file (links, folders, pax and GNU extension
    headers, sparse files), not named KEY.KIND with a known kind, larger than ``member_cap``, or a
    second member of a kind in one sample is a ShardError naming ``where``; nothing is followed,
    extracted to disk or read past the cap."""
    current: dict | None = None
    offset, pax = 0, None
    while True:
        block = _read_exactly(stream, _BLOCK)
        if not block or block == bytes(_BLOCK):  # the end (two zero blocks; what follows is not read)
            break
        if len(block) < _BLOCK:
            raise ShardError(f"not a readable tar (it ends inside the header at byte {offset:,})", path=where)
        if block[156:157] == b"x" and pax is None:  # tarfile and WebDataset write one for a float mtime
            _check_checksum(block, offset, where)
            size = _octal(block[124:136])
            if size is None or size > _PAX_CAP:
                raise ShardError(
                    f"not a readable tar (a pax header of {size or 0:,} bytes at byte {offset:,}, over "
                    f"the {_PAX_CAP:,} a shard's may have)",
                    path=where,
                )
            data = _read_exactly(stream, size + (-size % _BLOCK))
            if len(data) < size:
                raise ShardError(f"not a readable tar (it ends inside the pax header at byte {offset:,})", path=where)
            pax = _pax_records(data[:size], offset, where)
            offset += _BLOCK + len(data)
            continue
        name, size = _member_header(block, offset, where, pax)
        pax = None
        if size > member_cap:
            raise ShardError(
                f"member {name!r} is {size:,} bytes, more than the {member_cap:,}-byte member cap "
                "(sources.max_member_bytes)",
                path=where,
            )
        key, dot, kind = name.partition(".")
        if not dot or "/" in name:
            raise ShardError(f"member {name!r} is not KEY.KIND", path=where)
        if kind not in MEMBER_KINDS:
            raise ShardError(
                f"sample {key!r} has member(s) {['.' + kind]}; a csxa shard holds only .png, .cls "
                "and .json, and nothing else is decoded (untrusted input)",
                path=where,
            )
        if current is None or current["__key__"] != key:
            if current is not None:
                yield current
            current = {"__key__": key, "__url__": where}
        if kind in current:
            raise ShardError(f"sample {key!r} has two .{kind} members", path=where)
        data = _read_exactly(stream, size)
        padding = -size % _BLOCK
        if len(data) < size or len(_read_exactly(stream, padding)) < padding:
            raise ShardError(f"not a readable tar (it ends inside member {name!r})", path=where)
        current[kind] = data
        offset += _BLOCK + size + padding
    if current is not None:
        yield current


def open_regular_file(path: str | Path, error: type[CsxaError] = CsxaError) -> IO[bytes]:
    """``path`` opened for reading only if it is a regular file: a FIFO would block the reader for
    ever and a device never ends, so those (and folders) are ``error`` naming the path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not wait for a writer
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"cannot read ({exc.strerror or exc})", path=path) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error("is not a regular file (a FIFO, a device or a folder); not read", path=path)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def iter_tar_samples(path: str | Path, member_cap: int = MAX_MEMBER_BYTES) -> Iterator[dict]:
    """Raw samples of one local shard, in stored order (:func:`iter_tar_stream` on the file)."""
    with open_regular_file(path, ShardError) as handle:
        yield from iter_tar_stream(handle, str(path), member_cap)


def read_shards(paths: Iterable[str | Path]) -> Iterator[dict]:
    """Decoded samples of local shards, in order: the reader both packages use for checks,
    statistics and previews (training streams the same ``decode_sample`` through WebDataset)."""
    for path in paths:
        for sample in iter_tar_samples(path):
            yield decode_sample(sample)


def split_shards(variant_dir: str | Path, split: str) -> list[Path]:
    """The shards of one split of a variant, in order."""
    return sorted(Path(variant_dir).glob(f"{split}-[0-9][0-9][0-9][0-9][0-9][0-9].tar"))
