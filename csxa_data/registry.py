"""The data registry: named artifacts (``dvc.yaml`` ``artifacts:``), published versions (annotated
git tags ``NAME@vX.Y.Z`` made by ``gto``), and the checks around them.

A version is published only when what it names can be fetched by anyone with the repository: the
artifact's stage is up to date with ``dvc.lock``, ``dvc.lock`` and the stage's git-tracked inputs are
committed, and every file of the output is present in the DVC remote. Versions are read back with
gto's API, from a local clone or a git URL.
"""

from __future__ import annotations

import subprocess
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


def _open_repo(root: str | Path):
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

    with _open_repo(root) as repo:
        try:
            entries = repo.artifacts.read().get("dvc.yaml", {})
        except DvcException as exc:
            raise CsxaError(f"cannot read artifacts ({exc})", path=Path(root) / "dvc.yaml") from None
    return {
        name: ArtifactInfo(name, a.type or "", a.path, a.desc or "", tuple(a.labels or ()))
        for name, a in entries.items()
    }


def _where(repo: str | Path) -> str:
    """A registry named for messages: a URL as given, a local path made absolute."""
    return str(repo) if "://" in str(repo) or str(repo).startswith("git@") else str(Path(repo).resolve())


def _gto_error(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc).strip().splitlines()[0]


# reading tags may clone a git URL: a server that accepts and never answers must not hang the command
VERSIONS_TIMEOUT = 300.0


class _NoAnswer(Exception):
    """``_within`` ran out of time."""


def _within(timeout: float, ask):
    """``ask()``'s result, or its exception raised here, or ``_NoAnswer`` after ``timeout`` seconds.
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
        raise _NoAnswer
    if "error" in answer:
        raise answer["error"]
    return answer["value"]


def published_versions(repo: str | Path, name: str, timeout: float = VERSIONS_TIMEOUT) -> list[dict]:
    """Registered, active versions of artifact ``name`` in ``repo`` (a path or a git URL), oldest
    first by semantic version; each a dict with ``version``, ``commit_hexsha``, ``created_at``.
    Reading them (a clone, for a URL) must end within ``timeout`` seconds."""
    from gto.api import show
    from gto.exceptions import ArtifactNotFound
    from gto.versions import SemVer

    try:
        versions = _within(timeout, lambda: show(str(repo), name, registered_only=True))
    except ArtifactNotFound:
        versions = []  # no tag names it yet
    except _NoAnswer:
        raise CsxaError(
            f"cannot read versions of {name!r}: no answer within {timeout:g} s", path=_where(repo)
        ) from None
    except Exception as exc:  # noqa: BLE001 - gto, scmrepo and git raise many kinds for one bad tag or URL
        # gto's and scmrepo's own errors say what is wrong; anything else is a tag gto trips on
        known = type(exc).__module__.startswith(("gto", "scmrepo"))
        reason = (
            _gto_error(exc)
            if known
            else (
                f"{type(exc).__name__}: {_gto_error(exc)}; a tag naming {name} "
                "that points at something other than a commit?"
            )
        )
        raise CsxaError(f"cannot read versions of {name!r}: {reason}", path=_where(repo)) from None
    return sorted((v for v in versions if v.get("is_active", True)), key=lambda v: SemVer(v["version"]))


def require_version(repo: str | Path, name: str, version: str, timeout: float = VERSIONS_TIMEOUT) -> dict:
    """The published version ``version`` of ``name``, or one error line naming those that exist."""
    versions = published_versions(repo, name, timeout)
    for entry in versions:
        if entry["version"] == version:
            return entry
    known = ", ".join(v["version"] for v in versions) or "none"
    raise CsxaError(f"{name}@{version} is not published; published versions of {name}: {known}", path=_where(repo))


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


def _default_remote(repo, remote: str | None) -> tuple[str, str]:
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


def check_publishable(root: str | Path, artifact: ArtifactInfo, remote: str | None = None) -> str:
    """Refuse unless ``artifact``'s output is committed (stage up to date with a committed
    ``dvc.lock``) and pushed (every file in the remote). Returns the remote's name."""
    from dvc.exceptions import DvcException

    root = Path(root).resolve()
    with _open_repo(root) as repo:
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
        name, url = _default_remote(repo, remote)
        try:
            missing = repo.status(targets=[artifact.path], cloud=True, remote=name)
        except DvcException as exc:
            raise CsxaError(
                f"artifact {artifact.name!r}: cannot check remote {name!r} ({url}): {exc}", path=root
            ) from None
        if missing:
            states = sorted(set(missing.values()))
            raise CsxaError(
                f"artifact {artifact.name!r}: {artifact.path} is not pushed to remote {name!r} ({url}): "
                f"{len(missing)} entries {'/'.join(states)}; run `dvc push {artifact.path}`",
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


def probe_remote(
    root: str | Path = ".", remote: str | None = None, timeout: float = 20.0
) -> tuple[str, str, str | None]:
    """(name, url, problem) for ``remote`` or the default one: ``problem`` is None when the remote's
    root answers within ``timeout`` seconds, else why not (one line)."""
    with _open_repo(root) as repo:
        name, url = _default_remote(repo, remote)
        try:
            fs_remote = repo.cloud.get_remote(name)
        except Exception as exc:  # noqa: BLE001 - any config or plugin error is the answer
            return name, url, f"{type(exc).__name__}: {exc}"

    def ask() -> tuple[bool, bool]:
        exists = fs_remote.fs.exists(fs_remote.path)
        local = getattr(fs_remote.fs, "protocol", None) in ("local", "file", ("file", "local"))
        return exists, bool(local and exists and not fs_remote.fs.isdir(fs_remote.path))

    try:
        exists, is_file = _within(timeout, ask)
    except _NoAnswer:
        return name, url, f"no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - connection errors differ by file system
        return name, url, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    if is_file:
        return name, url, "it is a file, not a folder"
    return name, url, None if exists else "nothing there (the folder or bucket does not exist)"


def pull(root: str | Path, targets: list[str], *, remote: str | None = None, timeout: float = 600.0) -> None:
    """``dvc pull TARGETS`` (DVC's own output passes through); on failure or after ``timeout``
    seconds, one error line saying whether the remote answers, and what to do."""
    command = ["dvc", "pull", *(["--remote", remote] if remote else []), *targets]
    if not Path(root).is_dir():
        raise CsxaError(
            "not found" if not Path(root).exists() else "not a folder (give the repository's root)", path=root
        )
    try:
        result = subprocess.run(command, cwd=root, timeout=timeout)
        failed = f"dvc pull failed (exit {result.returncode})" if result.returncode else None
    except subprocess.TimeoutExpired:
        failed = f"dvc pull gave no result within {timeout:g} s and was stopped"
    except FileNotFoundError:
        raise CsxaError("the dvc command is not on PATH (pip install csxa installs it)") from None
    if failed is None:
        return
    name, url, problem = probe_remote(root, remote, timeout=min(timeout, 20.0))
    if problem:
        hint = (
            f"remote {name!r} ({url}) cannot be reached: {problem}; check the URL with `dvc remote list`, "
            f"or point it at the registry's storage with `dvc remote modify --local {name} url URL` "
            "(README, 'Remotes')"
        )
    else:
        hint = (
            f"remote {name!r} ({url}) answers, so it lacks some of these files: ask the data steward to "
            f"`dvc push` them, or check that you are on a published commit"
        )
    raise CsxaError(f"{failed}: {hint}", path=Path(root).resolve())
