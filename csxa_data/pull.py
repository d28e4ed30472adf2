"""A consumer's pull: DVC's fetch with its verify on, the folders put in place whole from the verified cache, and, when it fails, the real reason in one line."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
import socket
import subprocess
import sys
from pathlib import Path

from csxa_data.atomic import atomic_path
from csxa_data.errors import CsxaError
from csxa_data.registry import VERSION_TAG, NoAnswer, default_remote, open_repo, output_objects, read_artifacts, within


def connection_problem(exc: BaseException) -> str:
    """Why a remote could not be asked, in words, from an exception and its causes: connection
    refused, host unknown, unreachable, timed out, authentication refused, or the error itself."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 20:
        chain.append(seen)
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    for error in chain:
        name = type(error).__name__
        code = getattr(error, "code", None) or getattr(error, "status", None)
        if isinstance(error, ConnectionRefusedError):
            return "connection refused (nothing listens at that address and port)"
        if isinstance(error, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "unreachable (no route to that host)"
        if isinstance(error, (TimeoutError, socket.timeout)) or "Timeout" in name:
            return "timed out waiting for an answer"
        if code in (401, 403) or any(
            word in name
            for word in ("Credential", "AccessDenied", "Forbidden", "InvalidAccessKey", "SignatureDoesNotMatch")
        ):
            return f"authentication refused ({name}{f' {code}' if code else ''}); check the remote's credentials"
        if "NoSuchBucket" in name or "NoSuchBucket" in str(error) or code == 404:
            return "nothing there (the folder or bucket does not exist)"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def _http_probe(url: str, timeout: float) -> str | None:
    """None when an HTTP(S) remote's server answers at all (any status but 401 and 407), else why not."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url.rstrip("/") + "/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (401, 407):
            return f"authentication refused (HTTP {exc.code}); check the remote's credentials"
        return None  # it answers: whether each file is there is asked file by file
    except urllib.error.URLError as exc:
        return connection_problem(exc.reason if isinstance(exc.reason, BaseException) else exc)
    except (OSError, ValueError) as exc:
        return connection_problem(exc)


def probe_remote(
    root: str | Path = ".", remote: str | None = None, timeout: float = 20.0
) -> tuple[str, str, str | None]:
    """(name, url, problem) for ``remote`` or the default one: ``problem`` is None when the remote
    answers within ``timeout`` seconds, else the reason in words (refused, unknown host,
    unreachable, timed out, authentication, nothing there)."""
    with open_repo(root) as repo:
        name, url = default_remote(repo, remote)
        try:
            fs_remote = repo.cloud.get_remote(name)
        except Exception as exc:  # noqa: BLE001 - any config or plugin error is the answer
            return name, url, f"{type(exc).__name__}: {exc}"
    if url.lower().startswith(("http://", "https://")):
        try:
            return name, url, within(timeout, lambda: _http_probe(url, timeout))
        except NoAnswer:
            return name, url, f"no answer within {timeout:g} s"

    def ask() -> tuple[bool, bool]:
        exists = fs_remote.fs.exists(fs_remote.path)
        local = getattr(fs_remote.fs, "protocol", None) in ("local", "file", ("file", "local"))
        return exists, bool(local and exists and not fs_remote.fs.isdir(fs_remote.path))

    try:
        exists, is_file = within(timeout, ask)
    except NoAnswer:
        return name, url, f"no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - connection errors differ by file system
        return name, url, connection_problem(exc)
    if is_file:
        return name, url, "it is a file, not a folder"
    return name, url, None if exists else "nothing there (the folder or bucket does not exist)"


def ensure_verify(root: str | Path, remote: str | None = None) -> str | None:
    """Make DVC re-hash what it downloads from the remote a pull reads (its ``verify`` option), so
    that a file replaced under its own name on the remote is refused; returns a note when this
    turned it on (in ``.dvc/config.local``, this clone only), None when it was on already."""
    with open_repo(root) as repo:
        name, _ = default_remote(repo, remote)
        if repo.config["remote"][name].get("verify") is True:
            return None
    _git_free_dvc(root, "remote", "modify", "--local", name, "verify", "true")
    return (
        f"turned on DVC's verify for remote {name!r} in .dvc/config.local: every file pulled from it is "
        "re-hashed against the published md5"
    )


def _git_free_dvc(root: str | Path, *args: str) -> None:
    result = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True)
    if result.returncode:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise CsxaError(f"dvc {' '.join(args)} failed: {lines[-1] if lines else result.returncode}", path=root)


def _target_outs(repo, targets: list[str]) -> list:
    """The outputs that ``dvc pull TARGETS`` fetches (every output, without targets), as DVC
    resolves a target: a path in an output, an output, a ``.dvc`` file or a stage."""
    if not targets:
        return list(repo.index.outs)
    outs, root = [], Path(repo.root_dir)
    for target in targets:
        for stage, within_path in repo.stage.collect_granular(target, with_deps=False):
            for out in stage.outs:
                path = (root / out.def_path).resolve()
                if (
                    within_path is None
                    or Path(within_path) == path
                    or path in Path(within_path).parents
                    or Path(within_path) in path.parents
                ):
                    if out not in outs:
                        outs.append(out)
    return outs


def remote_damage(root: str | Path, targets: list[str], remote: str | None = None) -> list[tuple[str, str, str | None]]:
    """(path, published md5, md5 the remote holds or None if it holds nothing) of each object of
    the targets that the local cache lacks after a pull and that the remote holds wrongly or not
    at all: why a verified pull failed."""
    problems = []
    with open_repo(root) as repo:
        name, _ = default_remote(repo, remote)
        odb = repo.cloud.get_remote_odb(name)
        cache = repo.cache.local
        for out in _target_outs(repo, targets):
            value = out.hash_info.value if out.hash_info else None
            if not value:
                continue
            objects = [(out.def_path, value)]
            if out.hash_info.isdir:
                listing = _remote_bytes(odb, value) if not cache.exists(value) else None
                if listing is not None and hashlib.md5(listing).hexdigest() + ".dir" != value:  # noqa: S324
                    problems.append((f"{out.def_path} (its listing)", value, hashlib.md5(listing).hexdigest() + ".dir"))  # noqa: S324
                    continue
                try:
                    objects = output_objects(out)
                except CsxaError:
                    if listing is None:
                        problems.append((f"{out.def_path} (its listing)", value, None))
                    continue
            for path, md5 in objects:
                if cache.exists(md5):
                    continue
                held = _remote_md5(odb, md5)
                if held != md5.removesuffix(".dir"):
                    problems.append((path, md5, held))
    return problems


def _remote_bytes(odb, md5: str, cap: int = 64 << 20) -> bytes | None:
    path = odb.oid_to_path(md5)
    if not odb.fs.exists(path):
        return None
    with odb.fs.open(path, mode="rb") as handle:
        return handle.read(cap)


def _remote_md5(odb, md5: str) -> str | None:
    """The md5 of what the remote holds under the name of ``md5``, read in pieces; None if nothing."""
    path = odb.oid_to_path(md5)
    if not odb.fs.exists(path):
        return None
    digest = hashlib.md5()  # noqa: S324 - DVC's content address
    with odb.fs.open(path, mode="rb") as handle:
        while piece := handle.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


VERSION_AT = re.compile(r"[A-Za-z0-9_.-]+@" + VERSION_TAG.pattern, re.ASCII)  # NAME@vX.Y.Z, not gto's NAME@vX.Y.Z!


def versions_here(root: str | Path, targets: list[str] | None = None) -> str:
    """Which published versions the pulled files are: the version tags on the checked-out commit of
    the artifacts pulled (all, without targets), a withdrawn one marked (a commit cannot name itself,
    so the tag says it), or that none is published there."""
    shown = subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%H%x00%D"], capture_output=True, text=True, check=False
    )
    commit, _, refs = shown.stdout.strip().partition("\0")
    if not commit:
        return "not a git commit: which version these files are is not known"
    names = {ref.removeprefix("tag: ") for ref in refs.split(", ") if ref.startswith("tag: ")}
    wanted = None
    if targets:
        paths = {target.strip("/") for target in targets}
        wanted = {a.name for a in read_artifacts(root).values() if a.path.strip("/") in paths}
    tags = sorted(
        tag + (" (withdrawn)" if any(other.startswith(f"{tag}!") for other in names) else "")
        for tag in names
        if VERSION_AT.fullmatch(tag) and (wanted is None or tag.split("@", 1)[0] in wanted)
    )
    if not tags:
        return f"commit {commit[:12]}, on which no version of what was pulled is published (unpublished files)"
    return f"commit {commit[:12]}, published as {', '.join(tags)}"


def pull(root: str | Path, targets: list[str], *, remote: str | None = None, timeout: float = 600.0) -> None:
    """What ``dvc pull TARGETS`` does, made safe for a consumer: ``dvc fetch`` with DVC's ``verify``
    on for the remote it reads (DVC's own output passes through), so that only the published bytes
    reach the cache; then each output put in place whole from the cache (:func:`place_outputs`), so
    that a pull that fails or is killed leaves the previous complete version or none, never part of
    a version. On failure or after ``timeout`` seconds, one error line with the real reason: the
    remote cannot be reached (and why), it holds a file that is not the published one (both md5s),
    or it lacks files."""
    if not Path(root).is_dir():
        raise CsxaError(
            "not found" if not Path(root).exists() else "not a folder (give the repository's root)", path=root
        )
    note = ensure_verify(root, remote)
    if note:
        print(f"csxa-data pull: {note}", file=sys.stderr)
    command = ["dvc", "fetch", *(["--remote", remote] if remote else []), *targets]
    try:
        result = subprocess.run(command, cwd=root, timeout=timeout)
        failed = f"dvc pull failed (fetch, exit {result.returncode})" if result.returncode else None
    except subprocess.TimeoutExpired:
        failed = f"dvc pull gave no result within {timeout:g} s and was stopped"
    except FileNotFoundError:
        raise CsxaError("the dvc command is not on PATH (pip install csxa installs it)") from None
    if failed is None:
        gaps = cache_gaps(root, targets)  # dvc fetch exits 0 when a remote it cannot reach "lacks" files
        if gaps:
            failed = f"dvc pull failed: {len(gaps)} of the files could not be fetched ({gaps[0]} first)"
    if failed is None:
        placed = place_outputs(root, targets)
        print(f"csxa-data pull: {placed} in place, each whole and checked against its published md5")
        print(f"csxa-data pull: {versions_here(root, targets)}")
        return
    name, url, problem = probe_remote(root, remote, timeout=min(timeout, 20.0))
    if problem:
        hint = (
            f"remote {name!r} ({url}) cannot be reached: {problem}; check the URL with `dvc remote list`, "
            f"or point it at the registry's storage with `dvc remote modify --local {name} url URL` "
            "(docs/registry.md, 'Remotes'); the workspace is as it was"
        )
        raise CsxaError(f"{failed}: {hint}", path=Path(root).resolve())
    try:
        damage = within(timeout, lambda: remote_damage(root, targets, remote))
    except Exception:  # noqa: BLE001 - the pull's failure is the error; the diagnosis is a courtesy
        damage = []
    tampered = [entry for entry in damage if entry[2] is not None]
    if tampered:
        path, published, held = tampered[0]
        more = f" (and {len(tampered) - 1} more files)" if len(tampered) > 1 else ""
        raise CsxaError(
            f"{failed}: remote {name!r} ({url}) holds {path} with md5 {held}, not the published {published}"
            f"{more}: a tampered or damaged remote; DVC's verify refused it and nothing of it is in the "
            "workspace; tell the data steward",
            path=Path(root).resolve(),
        )
    if damage:
        path = damage[0][0]
        more = f" and {len(damage) - 1} more files" if len(damage) > 1 else ""
        raise CsxaError(
            f"{failed}: remote {name!r} ({url}) answers but lacks {path}{more}: ask the data steward to "
            "`dvc push` them, or check that you are on a published commit; the workspace is as it was",
            path=Path(root).resolve(),
        )
    raise CsxaError(
        f"{failed}: remote {name!r} ({url}) answers and holds every file; see DVC's message above",
        path=Path(root).resolve(),
    )


def cache_gaps(root: str | Path, targets: list[str]) -> list[str]:
    """The workspace paths of the targets' objects that the local cache does not hold."""
    gaps = []
    with open_repo(root) as repo:
        cache = repo.cache.local
        for out in _target_outs(repo, targets):
            if out.hash_info and out.hash_info.isdir and not cache.exists(out.hash_info.value):
                gaps.append(f"{out.def_path} (its listing)")
                continue
            gaps += [path for path, md5 in output_objects(out) if not cache.exists(md5)]
    return gaps


def place_outputs(root: str | Path, targets: list[str]) -> str:
    """Put each output of ``targets`` in the workspace from the local cache, whole: a folder is
    assembled beside its place, every file checked against the md5 its listing publishes, then
    renamed into place (:func:`csxa_data.atomic.atomic_path`). An output already as published is
    left alone. Returns a summary (how many outputs and files)."""
    placed, files = 0, 0
    with open_repo(root) as repo:
        outs = _target_outs(repo, targets)
        cache = Path(repo.cache.local.path)
        for out in outs:
            objects = output_objects(out)
            target = Path(repo.root_dir) / out.def_path
            wanted = objects[1:] if out.hash_info.isdir else objects
            if _as_published(target, out.def_path, wanted, out.hash_info.isdir):
                continue
            with atomic_path(target, directory=out.hash_info.isdir) as tmp:
                for path, md5 in wanted:
                    destination = tmp / Path(path).relative_to(out.def_path) if out.hash_info.isdir else tmp
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    source = cache / md5[:2] / md5[2:]
                    if _copy_md5(source, destination) != md5:
                        raise CsxaError(
                            f"{path}: the cache's copy is not the published {md5}; run the pull again", path=source
                        )
            placed, files = placed + 1, files + len(wanted)
    return f"{placed} output(s), {files} file(s) placed" if placed else "every output already"


def _as_published(target: Path, def_path: str, wanted: list[tuple[str, str]], folder: bool) -> bool:
    """Whether ``target`` already holds exactly the published files (by size and md5)."""
    if folder:
        if not target.is_dir() or target.is_symlink():
            return False
        present = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
        if present != sorted(Path(path).relative_to(def_path).as_posix() for path, _ in wanted):
            return False
    elif not target.is_file():
        return False
    for path, md5 in wanted:
        file = target / Path(path).relative_to(def_path) if folder else target
        if _copy_md5(file, None) != md5:
            return False
    return True


def _copy_md5(source: Path, destination: Path | None) -> str:
    """The md5 of ``source``, copying it to ``destination`` on the way (none: only hashed)."""
    digest = hashlib.md5()  # noqa: S324 - DVC's content address
    with open(source, "rb") as reader, open(destination, "wb") if destination else contextlib.nullcontext() as writer:
        while piece := reader.read(1 << 20):
            digest.update(piece)
            if writer is not None:
                writer.write(piece)
    return digest.hexdigest()
