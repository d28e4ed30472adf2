"""What a registry published for a variant: the md5 of every file in it, as git holds it.

A registry's promise is that what a team reads is what was published. DVC names the files of a
remote by their md5 but does not re-hash what it reads back unless asked, so anyone who can write to
the remote can replace a file under its own name. The chain that cannot be rewritten without git
noticing starts in git: ``dvc.lock`` (or an import's ``.dvc`` file) names the variant folder's
``.dir`` listing by its md5; the listing, checked against that md5 here, names each file's md5.
Every reader compares the bytes it streams with these (see ``verify.shard_samples``).

- A registry revision (``dvc://``): ``dvc.lock`` at that revision, the listing from the registry's
  cache or remote.
- A folder in a DVC workspace (a ``dvc pull``, a ``dvc import``, a ``dvc repro``): the record of the
  output that is exactly that folder (``FOLDER.dvc`` or ``dvc.lock``), the listing from the local
  cache. A folder no record names (a build outside DVC, an HTTP mirror) has no published hashes; its
  ``shards.json`` is all there is to check against.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from csxa_data.errors import SourceError

MD5 = re.compile(r"[0-9a-f]{32}", re.ASCII)
DIR_MD5 = re.compile(r"[0-9a-f]{32}\.dir", re.ASCII)
MAX_LISTING_BYTES = 64 << 20  # a variant's listing: about 100 bytes a file


@dataclass(frozen=True)
class Published:
    """The md5 of every file of a published folder, and where that promise is written."""

    files: dict[str, str]  # path within the folder -> md5
    record: str  # for messages: "dvc.lock at wide_cropped@v1.0.0 (commit 1a2b3c4)"
    hint: str = "a tampered or damaged copy"

    def check(self, name: str, md5: str, where: str) -> None:
        """Refuse bytes of ``name`` whose ``md5`` is not the published one (one line, both hashes)."""
        expected = self.files.get(name)
        if expected is None:
            raise SourceError(f"not among the files {self.record} publishes for this folder; refused", path=where)
        if md5 != expected:
            raise SourceError(
                f"md5 {md5} differs from the published {expected} ({self.record}): {self.hint}; refused, "
                "nothing was trained on or written",
                path=where,
            )


def out_md5(record_text: str, path: str, where: str) -> str | None:
    """The md5 that a ``dvc.lock`` or ``.dvc`` file records for output ``path``, or None."""
    try:
        document = yaml.safe_load(record_text)
    except yaml.YAMLError as exc:
        raise SourceError(f"not readable YAML ({' '.join(str(exc).split())[:160]})", path=where) from None
    outs = []
    if isinstance(document, dict):
        stages = document.get("stages")
        if isinstance(stages, dict):
            outs += [o for s in stages.values() if isinstance(s, dict) for o in s.get("outs") or []]
        outs += document.get("outs") or []
    for out in outs:
        if isinstance(out, dict) and str(out.get("path", "")).strip("/") == path.strip("/"):
            md5 = out.get("md5")
            return md5 if isinstance(md5, str) else None
    return None


def listing(data: bytes, dir_md5: str, where: str) -> dict[str, str]:
    """A DVC ``.dir`` listing's files and md5s, once the listing's own md5 is ``dir_md5``."""
    actual = hashlib.md5(data).hexdigest()  # noqa: S324 - DVC's content address, not a password hash
    if f"{actual}.dir" != dir_md5:
        raise SourceError(
            f"the folder's listing has md5 {actual}.dir, the published {dir_md5}: a tampered or damaged copy; refused",
            path=where,
        )
    try:
        entries = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SourceError("the folder's listing is not DVC's JSON list", path=where) from None
    files = {}
    for entry in entries if isinstance(entries, list) else [None]:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("relpath"), str)
            and isinstance(entry.get("md5"), str)
            and MD5.fullmatch(entry["md5"])
        ):
            raise SourceError("the folder's listing is not DVC's JSON list of relpath and md5", path=where)
        files[entry["relpath"]] = entry["md5"]
    return files


def object_path(cache: Path, md5: str) -> Path:
    """Where a DVC 3 cache (or a local remote) keeps the object of ``md5``."""
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def workspace_record(folder: Path) -> tuple[Path, str, str] | None:
    """(repository root, the folder's path in it, its recorded md5) where a DVC workspace above
    ``folder`` records exactly that folder as an output; None otherwise."""
    folder = folder.resolve()
    for root in folder.parents:
        if (root / ".dvc").is_dir():
            break
    else:
        return None
    relative = folder.relative_to(root).as_posix()
    candidates = [folder.parent / f"{folder.name}.dvc", root / "dvc.lock"]
    for record in candidates:
        if record.is_file():
            path = folder.name if record.suffix == ".dvc" else relative
            md5 = out_md5(record.read_text(encoding="utf-8"), path, str(record))
            if md5 is not None:
                return root, relative, md5
    return None


def _cache_dir(root: Path) -> Path:
    """The workspace's DVC cache: ``.dvc/cache`` unless its configuration moves it."""
    default = root / ".dvc" / "cache"
    if default.is_dir():
        return default
    from dvc.repo import Repo  # only where the cache was moved (dvc exp run --temp, a shared cache)

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.path).parent.parent


def local_published(folder: str | Path) -> Published | None:
    """The published hashes of a folder in a DVC workspace (see :func:`workspace_record`), read
    from the local cache; None where no record names the folder or the cache lacks its listing."""
    folder = Path(folder)
    found = workspace_record(folder)
    if found is None:
        return None
    root, relative, md5 = found
    if not DIR_MD5.fullmatch(md5):
        return None
    path = object_path(_cache_dir(root), md5)
    if not path.is_file():
        return None
    where = str(path)
    if path.stat().st_size > MAX_LISTING_BYTES:
        raise SourceError(f"the folder's listing is over {MAX_LISTING_BYTES:,} bytes; not read", path=where)
    if (folder.parent / f"{folder.name}.dvc").is_file():  # an import (or dvc add): nothing rebuilds it here
        record, hint = f"{folder.name}.dvc", "a tampered or damaged copy"
    else:
        record = "dvc.lock"
        hint = "a tampered or damaged copy, or a rebuild that dvc.lock does not record yet (`dvc status`)"
    return Published(listing(path.read_bytes(), md5, where), f"{record} of {relative}", hint)


def _read_object(odb, oid: str, where: str) -> bytes | None:
    """An object's bytes from a DVC object database (a cache or a remote), at most the listing cap."""
    path = odb.oid_to_path(oid)
    if not odb.fs.exists(path):
        return None
    with odb.fs.open(path, mode="rb") as handle:
        data = handle.read(MAX_LISTING_BYTES + 1)
    if len(data) > MAX_LISTING_BYTES:
        raise SourceError(f"the folder's listing is over {MAX_LISTING_BYTES:,} bytes; not read", path=where)
    return data


def registry_published(fs, path: str, where: str, rev: str | None = None) -> Published:
    """The published hashes of output ``path`` at the revision a ``DVCFileSystem`` reads: ``dvc.lock``
    from git at that revision, the listing from the registry's cache or its default remote."""
    repo = fs.repo
    root = repo.root_dir.rstrip("/")
    md5, name = None, None
    for name in (f"{path}.dvc", "dvc.lock"):
        try:
            with repo.fs.open(f"{root}/{name}", mode="rb") as handle:
                text = handle.read(MAX_LISTING_BYTES).decode("utf-8", "replace")
        except FileNotFoundError:
            continue
        md5 = out_md5(text, path if name == "dvc.lock" else path.rsplit("/", 1)[-1], f"{where} ({name})")
        if md5 is not None:
            break
    commit = (repo.get_rev() or "")[:7]
    record = f"{name} at {rev or 'HEAD'} (commit {commit})"
    if md5 is None or not DIR_MD5.fullmatch(md5):
        raise SourceError(
            f"{path} is not a folder that the registry publishes at {rev or 'HEAD'} (commit {commit}): "
            "no dvc.lock or .dvc record names it",
            path=where,
        )
    data = None
    for odb in (repo.cache.local, None):
        if odb is None:
            odb = repo.cloud.get_remote_odb()
        data = _read_object(odb, md5, where)
        if data is not None:
            break
    if data is None:
        raise SourceError(f"the listing {md5} of {path} is in neither the registry's cache nor its remote", path=where)
    return Published(listing(data, md5, where), record)
