"""The data registry: named artifacts (``dvc.yaml`` ``artifacts:``), published versions (annotated
git tags ``NAME@vX.Y.Z`` made by ``gto``), and the checks around them.

A version is published only when what it names can be fetched by anyone with the repository: the
artifact's stage is up to date with ``dvc.lock``, ``dvc.lock`` and the stage's git-tracked inputs are
committed, and every file of the output is present in the DVC remote. Versions are read back with
gto's API, from a local clone or a git URL.
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


def _gto_error(exc: Exception) -> str:
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
    stopped), CsxaError with git's own last line when it fails."""
    process = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    try:
        out, err = process.communicate(input=input, timeout=timeout)
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
    while at < len(batch):
        end = batch.index("\n", at)
        header = batch[at:end].split()
        if len(header) < 3:
            break
        size = int(header[2])
        body = batch[end + 1 : end + 1 + size]  # tag objects are text: characters count as bytes here
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


def published_versions(repo: str | Path, name: str, timeout: float = VERSIONS_TIMEOUT, *, warn=None) -> list[dict]:
    """Published versions of artifact ``name`` in ``repo`` (a path or a git URL), oldest first by
    semantic version: every annotated tag ``NAME@vX.Y.Z`` on a commit that no deregistration tag
    ``NAME@vX.Y.Z!#N`` (gto's) cancels. Each is a dict with ``version``, ``tag``, ``commit_hexsha``,
    ``created_at`` and ``message``. Tags are read as git stores them (``git for-each-ref``, no
    object built per tag); a tag that is not annotated, or points at a tree or a blob, is left out
    with one warning naming it (``warn``: a function of one line; stderr by default). Reading them
    must end within ``timeout`` seconds."""
    from gto.versions import SemVer

    warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))
    try:
        text = _tag_records(repo, name, timeout)
    except NoAnswer:
        raise CsxaError(
            f"cannot read versions of {name!r}: no answer within {timeout:g} s", path=registry_where(repo)
        ) from None
    except CsxaError as exc:
        raise CsxaError(f"cannot read versions of {name!r}: {exc.message}", path=registry_where(repo)) from None
    found, withdrawn = {}, set()
    for record in text.split("\x1e"):
        record = record.lstrip("\n")
        if not record:
            continue
        tag, kind, target_kind, commit, date, message = (record.split("\0") + [""] * 6)[:6]
        rest = tag[len(name) + 1 :]
        version, _, cancel = rest.partition("!")
        if not VERSION_TAG.fullmatch(version) or not SemVer.is_valid(version):
            continue  # another action of gto's (a stage, a deprecation), or another artifact's prefix
        if cancel:
            if cancel.startswith("#"):
                withdrawn.add(version)
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
    versions = [entry for version, entry in found.items() if version not in withdrawn]
    return sorted(versions, key=lambda entry: SemVer(entry["version"]))


def require_version(repo: str | Path, name: str, version: str, timeout: float = VERSIONS_TIMEOUT) -> dict:
    """The published version ``version`` of ``name``, or one error line naming those that exist."""
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


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise CsxaError(f"git {' '.join(args)} failed: {result.stderr.strip()}", path=root)
    return result.stdout


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


# a remote that accepts connections and never answers must not hang a publish
REMOTE_TIMEOUT = 120.0


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


def missing_on_remote(repo, outs, remote: str) -> list[tuple[str, str]]:
    """(path, md5) of the objects of ``outs`` that the remote itself does not hold: each object
    asked of the remote's file system, not of DVC's local record of what was pushed."""
    odb = repo.cloud.get_remote_odb(remote)
    objects = [entry for out in outs for entry in output_objects(out)]
    present = set(odb.list_oids_exists([md5 for _, md5 in objects]))
    return [(path, md5) for path, md5 in objects if md5 not in present]


def check_publishable(root: str | Path, artifact: ArtifactInfo, remote: str | None = None) -> str:
    """Refuse unless ``artifact``'s output is committed (stage up to date with a committed
    ``dvc.lock``) and pushed (every file in the remote). Returns the remote's name."""
    from dvc.exceptions import DvcException

    root = Path(root).resolve()
    with open_repo(root) as repo:
        outs = [out for out in repo.index.outs if out.def_path == artifact.path]
        if not outs or outs[0].stage is None:
            raise CsxaError(
                f"artifact {artifact.name!r}: {artifact.path} is not an output of any stage", path="dvc.yaml"
            )
        stage = outs[0].stage
        try:
            changed = repo.status(targets=[stage.addressing])
        except DvcException as exc:
            raise CsxaError(f"artifact {artifact.name!r}: dvc status failed: {exc}", path=root) from None
        if changed:
            raise CsxaError(
                f"artifact {artifact.name!r}: stage {stage.addressing} is not up to date with dvc.lock "
                f"(`dvc status {stage.addressing}`); run `dvc repro {stage.addressing}` and commit dvc.lock",
                path=root,
            )
        # git reports only tracked paths here: the stage's code, params and dvc files, not its data
        tracked = ["dvc.yaml", "dvc.lock", *sorted({dep.def_path for dep in stage.deps})]
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *tracked).splitlines()
        if dirty:
            raise CsxaError(
                f"artifact {artifact.name!r}: uncommitted changes in {', '.join(line[3:] for line in dirty)}; "
                "commit them first",
                path=root,
            )
        name, url = default_remote(repo, remote)
        try:
            missing = within(REMOTE_TIMEOUT, lambda: missing_on_remote(repo, outs, name))
        except NoAnswer:
            raise CsxaError(
                f"artifact {artifact.name!r}: remote {name!r} ({url}) gave no answer within "
                f"{REMOTE_TIMEOUT:g} s; nothing was tagged",
                path=root,
            ) from None
        except CsxaError:
            raise
        except Exception as exc:  # noqa: BLE001 - each remote's file system raises its own kinds
            raise CsxaError(
                f"artifact {artifact.name!r}: cannot ask remote {name!r} ({url}) what it holds "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); nothing was tagged",
                path=root,
            ) from None
        if missing:
            shown = ", ".join(path for path, _ in missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            raise CsxaError(
                f"artifact {artifact.name!r}: remote {name!r} ({url}) lacks {len(missing)} of its files "
                f"({shown}); run `dvc push {artifact.path}`; nothing was tagged",
                path=root,
            )
        return name


def publish(root: str | Path, name: str, version: str, *, message: str | None = None, remote: str | None = None) -> str:
    """Tag the current commit as ``NAME@VERSION`` (annotated, with gto) after the checks above.

    Refuses an artifact not named in ``dvc.yaml``, a malformed or already published version, and an
    output that is not committed and pushed. Returns the tag name.
    """
    from gto.api import register
    from gto.exceptions import GTOException
    from scmrepo.exceptions import SCMError

    root = Path(root)
    artifacts = read_artifacts(root)
    if name not in artifacts:
        raise CsxaError(f"no artifact {name!r}; known: {', '.join(sorted(artifacts))}", path=root / "dvc.yaml")
    check_version_name(version)
    existing = published_versions(root, name)
    if any(v["version"] == version for v in existing):
        raise CsxaError(
            f"{name}@{version} is already published; published versions of {name}: "
            f"{', '.join(v['version'] for v in existing)}",
            path=root,
        )
    if existing and not _newer(version, existing[-1]["version"]):
        raise CsxaError(f"{name}@{version} is not newer than the latest published {existing[-1]['version']}", path=root)
    check_publishable(root, artifacts[name], remote)
    try:
        register(
            str(root),
            name,
            "HEAD",
            version=version,
            message=message or f"Publish {artifacts[name].type} {name} {version}",
        )
    except (GTOException, SCMError) as exc:
        raise CsxaError(f"cannot publish {name}@{version}: {_gto_error(exc)}", path=root) from None
    return f"{name}@{version}"


def _newer(version: str, than: str) -> bool:
    from gto.versions import SemVer

    return SemVer(version) > SemVer(than)
