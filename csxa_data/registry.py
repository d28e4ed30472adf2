"""The data registry, read side: named artifacts (``dvc.yaml`` ``artifacts:``), published versions
(annotated git tags ``NAME@vX.Y.Z`` made by ``gto``, withdrawn by gto's deregistration tags), and what
``latest`` or ``vX.Y.Z`` means. Tags are read as git stores them, from a local clone or a git URL.
Publishing and withdrawing are :mod:`csxa_data.publish`.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from csxa_data.errors import CsxaError


@dataclass(frozen=True)
class ArtifactInfo:
    """One entry of ``dvc.yaml`` ``artifacts:``."""

    name: str
    type: str
    path: str
    desc: str
    labels: tuple[str, ...]


def open_repo(root: str | Path):
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise CsxaError("not a DVC repository (no .dvc folder)", path=root) from None
    except DvcException as exc:  # a damaged .dvc/config or config.local, above all
        raise CsxaError(
            f"cannot open as a DVC repository ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})", path=root
        ) from None


def read_artifacts(root: str | Path = ".") -> dict[str, ArtifactInfo]:
    """The artifacts named in the top-level ``dvc.yaml`` of the repository at ``root``."""
    from dvc.exceptions import DvcException

    with open_repo(root) as repo:
        try:
            entries = repo.artifacts.read().get("dvc.yaml", {})
        except DvcException as exc:
            raise CsxaError(f"cannot read artifacts ({exc})", path=Path(root) / "dvc.yaml") from None
    return {
        name: ArtifactInfo(name, a.type or "", a.path, a.desc or "", tuple(a.labels or ()))
        for name, a in entries.items()
    }


def registry_where(repo: str | Path) -> str:
    """A registry named for messages: a URL as given, a local path made absolute."""
    return str(repo) if "://" in str(repo) or str(repo).startswith("git@") else str(Path(repo).resolve())


def gto_message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc).strip().splitlines()[0]


# reading tags may clone a git URL: a server that accepts and never answers must not hang the command
VERSIONS_TIMEOUT = 300.0


class NoAnswer(Exception):
    """``within`` ran out of time."""


def within(timeout: float, ask):
    """``ask()``'s result, or its exception raised here, or ``NoAnswer`` after ``timeout`` seconds.
    It runs in a daemon thread: a server that never answers must not keep this process alive at exit."""
    import threading

    answer: dict = {}

    def run() -> None:
        try:
            answer["value"] = ask()
        except Exception as exc:  # noqa: BLE001 - handed to the caller, whatever its kind
            answer["error"] = exc

    asking = threading.Thread(target=run, daemon=True)
    asking.start()
    asking.join(timeout)
    if asking.is_alive():
        raise NoAnswer
    if "error" in answer:
        raise answer["error"]
    return answer["value"]


TAG_FIELDS = (
    "%(refname:strip=2)",
    "%(objecttype)",
    "%(*objecttype)",
    "%(*objectname)",
    "%(taggerdate:iso-strict)",
    "%(contents)",
)
VERSION_TAG = re.compile(r"v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:[-+][0-9A-Za-z.+-]*)?", re.ASCII)


def _stop(process: subprocess.Popen) -> None:
    """End a command and everything it started (git fetch runs helpers of its own)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _git_within(args: list[str], timeout: float, cwd: str | None = None, input: str | None = None) -> str:
    """A git command's standard output; ``NoAnswer`` after ``timeout`` seconds (git and its helpers
    stopped), CsxaError with git's own last line when it fails. Bytes are kept as git wrote them (no
    newline translation; bytes that are not UTF-8 carried as surrogates), so that the sizes
    ``cat-file --batch`` states still count them."""
    process = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    try:
        raw_out, raw_err = process.communicate(
            input=input.encode("utf-8", "surrogateescape") if input is not None else None, timeout=timeout
        )
        out, err = raw_out.decode("utf-8", "surrogateescape"), raw_err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        _stop(process)
        raise NoAnswer from None
    except BaseException:
        _stop(process)
        raise
    if process.returncode:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        raise CsxaError(lines[-1] if lines else f"git {args[0]} failed (exit {process.returncode})")
    return out


def _tag_records(repo: str | Path, name: str, timeout: float) -> str:
    """``git for-each-ref`` over the tags ``NAME@*`` of ``repo``: of a local repository directly, of
    a git URL after fetching those tags alone (no history, no files) into a temporary repository that
    is removed whatever happens."""
    pattern = f"refs/tags/{name}@*"
    listing = ["for-each-ref", f"--format={'%00'.join(TAG_FIELDS)}%1e", pattern]
    deadline = time.monotonic() + timeout
    local = Path(str(repo))
    if "://" not in str(repo) and not str(repo).startswith("git@") and local.exists():
        if not local.is_dir():
            raise CsxaError("not a folder (give the registry's git repository or URL)", path=registry_where(repo))
        return _git_within(["-C", str(local), *listing], timeout)
    return _remote_tag_records(str(repo), pattern, deadline)


def _remote_tag_records(url: str, pattern: str, deadline: float) -> str:
    """What ``_tag_records`` reads, for a git URL: the tags named by ``git ls-remote``, their tag
    objects fetched by id into a temporary repository (no ref written per tag, no history, no
    files) and read with ``git cat-file``; the temporary repository is removed whatever happens."""
    left = lambda: max(deadline - time.monotonic(), 0.1)  # noqa: E731
    advertised = _git_within(["ls-remote", url, pattern], left())
    targets, names = {}, {}
    for line in advertised.splitlines():
        sha, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            targets[name[:-3]] = sha
        else:
            names[name] = sha
    records = [f"{name}\0commit\0\0{sha}\0\0" for name, sha in names.items() if name not in targets]  # lightweight
    annotated = {name: sha for name, sha in names.items() if name in targets}
    if not annotated:
        return "\x1e".join(records)
    with tempfile.TemporaryDirectory(prefix="csxa-versions-", ignore_cleanup_errors=True) as tmp:
        _git_within(["init", "--bare", "-q", tmp], left())
        _git_within(
            ["-C", tmp, "fetch", "--quiet", "--no-tags", "--depth=1", "--stdin", url],
            left(),
            input="\n".join(sorted(set(annotated.values()))) + "\n",
        )
        batch = _git_within(["-C", tmp, "cat-file", "--batch"], left(), input="\n".join(annotated.values()) + "\n")
    objects = _tag_objects(batch)
    for name, sha in annotated.items():
        tag = objects.get(sha, {})
        records.append(
            f"{name}\0tag\0{tag.get('type', '')}\0{tag.get('object', '')}\0{tag.get('date', '')}\0"
            f"{tag.get('message', '')}"
        )
    return "\x1e".join(records)


def _tag_objects(batch: str) -> dict[str, dict]:
    """Tag objects from ``git cat-file --batch`` output: id -> object, type, date (ISO), message."""
    out, at = {}, 0
    raw = batch.encode("utf-8", "surrogateescape")  # sizes count bytes: a message may hold any UTF-8
    while at < len(raw):
        end = raw.index(b"\n", at)
        header = raw[at:end].decode("ascii", "replace").split()
        if len(header) < 3:
            break
        size = int(header[2])
        body = raw[end + 1 : end + 1 + size].decode("utf-8", "replace")
        at = end + 1 + size + 1
        head, _, message = body.partition("\n\n")
        fields = dict(line.split(" ", 1) for line in head.splitlines() if " " in line)
        stamp = re.search(r"> (\d+) ([+-]\d{4})$", fields.get("tagger", ""))
        date = ""
        if stamp:
            zone = datetime.timezone(
                datetime.timedelta(hours=int(stamp.group(2)[:3]), minutes=int(stamp.group(2)[0] + stamp.group(2)[3:]))
            )
            date = datetime.datetime.fromtimestamp(int(stamp.group(1)), zone).isoformat()
        out[header[0]] = {
            "object": fields.get("object", ""),
            "type": fields.get("type", ""),
            "date": date,
            "message": message,
        }
    return out


def read_versions(repo: str | Path, name: str, timeout: float = VERSIONS_TIMEOUT, *, warn=None) -> list[dict]:
    """Every version of artifact ``name`` in ``repo`` (a path or a git URL) that was published, oldest
    first by semantic version: each annotated tag ``NAME@vX.Y.Z`` on a commit, as a dict with
    ``version``, ``tag``, ``commit_hexsha``, ``created_at``, ``message`` and ``withdrawn`` (None, or
    the reason given when gto's deregistration tag ``NAME@vX.Y.Z!#N`` withdrew it). Tags are read as
    git stores them (``git for-each-ref``, no object built per tag); a tag that is not annotated, or
    points at a tree or a blob, is left out with one warning naming it (``warn``: a function of one
    line; stderr by default). Reading them must end within ``timeout`` seconds."""
    from gto.versions import SemVer

    warn = warn or print_warning
    try:
        text = _tag_records(repo, name, timeout)
    except NoAnswer:
        raise CsxaError(
            f"cannot read versions of {name!r}: no answer within {timeout:g} s", path=registry_where(repo)
        ) from None
    except CsxaError as exc:
        raise CsxaError(f"cannot read versions of {name!r}: {exc.message}", path=registry_where(repo)) from None
    found, withdrawn = {}, {}
    for record in text.split("\x1e"):
        record = record.lstrip("\n").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if not record:
            continue
        tag, kind, target_kind, commit, date, message = (record.split("\0") + [""] * 6)[:6]
        rest = tag[len(name) + 1 :]
        version, bang, cancel = rest.partition("!")
        if not VERSION_TAG.fullmatch(version) or not SemVer.is_valid(version):
            continue  # another action of gto's (a stage, a deprecation), or another artifact's prefix
        if bang:  # gto's deregistration: NAME@vX.Y.Z! (simple) or NAME@vX.Y.Z!#N
            if cancel == "" or cancel.startswith("#"):
                withdrawn[version] = message.strip() or "no reason given"
            continue
        if kind != "tag":
            warn(f"tag {tag} is not annotated (DVC and gto see only annotated tags); left out")
            continue
        if target_kind != "commit":
            warn(f"tag {tag} points at a {target_kind or 'missing object'}, not a commit; left out")
            continue
        found[version] = {
            "version": version,
            "tag": tag,
            "commit_hexsha": commit,
            "created_at": date,
            "message": message.strip(),
        }
    for version, entry in found.items():
        entry["withdrawn"] = withdrawn.get(version)
    return sorted(found.values(), key=lambda entry: SemVer(entry["version"]))


def published_versions(repo: str | Path, name: str, timeout: float = VERSIONS_TIMEOUT, *, warn=None) -> list[dict]:
    """The versions of ``read_versions`` that are not withdrawn."""
    return [entry for entry in read_versions(repo, name, timeout, warn=warn) if not entry["withdrawn"]]


def print_warning(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def resolve_version(
    repo: str | Path, name: str, rev: str, timeout: float = VERSIONS_TIMEOUT, *, warn=None
) -> tuple[str, dict | None]:
    """(git revision, version entry or None) for what a user named: ``latest`` (the newest version
    not withdrawn), a version ``vX.Y.Z`` (its tag ``NAME@vX.Y.Z``; a withdrawn one is still read,
    as pinned, with a warning giving the reason), or any other tag, branch or commit as it is."""
    warn = warn or print_warning
    if rev != "latest" and not VERSION_TAG.fullmatch(rev):
        return rev, None
    versions = read_versions(repo, name, timeout, warn=warn)
    if rev == "latest":  # the newest release: not withdrawn, not a pre-release (v2.0.0-rc.1)
        live = [entry for entry in versions if not entry["withdrawn"] and "-" not in entry["version"]]
        if not live:
            raise CsxaError(f"{name} has no published version to call latest", path=registry_where(repo))
        for entry in versions:
            if entry["withdrawn"] and is_newer(entry["version"], live[-1]["version"]):
                warn(f"{name}@{entry['version']} is withdrawn ({entry['withdrawn']}); latest is {live[-1]['version']}")
        return live[-1]["tag"], live[-1]
    for entry in versions:
        if entry["version"] == rev:
            if entry["withdrawn"]:
                warn(f"{name}@{rev} is withdrawn ({entry['withdrawn']}); reading it because it was named")
            return entry["tag"], entry
    known = ", ".join(v["version"] for v in versions if not v["withdrawn"]) or "none"
    raise CsxaError(f"{name}@{rev} is not published; published versions of {name}: {known}", path=registry_where(repo))


def require_version(repo: str | Path, name: str, version: str, timeout: float = VERSIONS_TIMEOUT) -> dict:
    """The published version ``version`` of ``name``, or one error line naming those that exist (or
    saying it was withdrawn, and why)."""
    for entry in read_versions(repo, name, timeout):
        if entry["version"] == version and entry["withdrawn"]:
            raise CsxaError(
                f"{name}@{version} is withdrawn ({entry['withdrawn']}); its files can still be read by naming it",
                path=registry_where(repo),
            )
    versions = published_versions(repo, name, timeout)
    for entry in versions:
        if entry["version"] == version:
            return entry
    known = ", ".join(v["version"] for v in versions) or "none"
    raise CsxaError(
        f"{name}@{version} is not published; published versions of {name}: {known}", path=registry_where(repo)
    )


def check_version_name(version: str) -> None:
    """``vMAJOR.MINOR.PATCH`` (semantic versioning with a leading ``v``, as gto and DVC expect)."""
    from gto.versions import SemVer

    if not SemVer.is_valid(version):
        raise CsxaError(f"version {version!r} is not of the form vMAJOR.MINOR.PATCH (for example v1.0.0)")


def default_remote(repo, remote: str | None) -> tuple[str, str]:
    """(name, url) of ``remote`` or of the repository's default remote."""
    config = repo.config
    name = remote or config["core"].get("remote")
    if not name:
        raise CsxaError(
            "no DVC remote given and no default remote in .dvc/config "
            "(see README 'Remotes': dvc remote add -d NAME URL)",
            path=repo.root_dir,
        )
    if name not in config["remote"]:
        raise CsxaError(f"no DVC remote named {name!r}; known: {sorted(config['remote'])}", path=repo.root_dir)
    return name, str(config["remote"][name].get("url", ""))


def output_objects(out) -> list[tuple[str, str]]:
    """(path in the workspace, md5) of every object of a DVC output: a file's own; a folder's
    listing and each file in it (the listing read from the local cache)."""
    if not out.hash_info or not out.hash_info.value:
        raise CsxaError(f"{out.def_path} has no recorded hash (run dvc repro or dvc commit)", path="dvc.lock")
    if not out.hash_info.isdir:
        return [(out.def_path, out.hash_info.value)]
    tree = out.get_obj()
    if tree is None:
        raise CsxaError(
            f"the listing of {out.def_path} is not in the local cache; `dvc pull {out.def_path}` or `dvc repro` first",
            path=out.def_path,
        )
    files = [(f"{out.def_path}/{'/'.join(key)}", info.value) for key, _, info in tree]
    return [(f"{out.def_path} (its listing)", out.hash_info.value), *files]


def is_newer(version: str, than: str) -> bool:
    from gto.versions import SemVer

    return SemVer(version) > SemVer(than)
