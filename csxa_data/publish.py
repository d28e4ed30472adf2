"""A steward's actions on the registry: publish a version (after checking that everyone can fetch it,
with release notes in its tag) and withdraw one. Reading versions is :mod:`csxa_data.registry`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from csxa_data.errors import CsxaError
from csxa_data.registry import (
    VERSION_TAG,
    ArtifactInfo,
    NoAnswer,
    check_version_name,
    default_remote,
    gto_message,
    is_newer,
    open_repo,
    output_objects,
    print_warning,
    read_artifacts,
    read_versions,
    registry_where,
    within,
)
from csxa_data.stamp import Stamp, data_fingerprint, one_line, write_stamp


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise CsxaError(f"git {' '.join(args)} failed: {said[-1] if said else 'no message'}", path=root)
    return result.stdout


# what the release commit rewrites in a variant: the files that name its version
CARD_FILES = {"README.md", "croissant.json"}

# a remote that accepts connections and never answers must not hang a publish
REMOTE_TIMEOUT = 120.0


def missing_on_remote(repo, outs, remote: str) -> list[tuple[str, str]]:
    """(path, md5) of the objects of ``outs`` that the remote itself does not hold: each object
    asked of the remote's file system, not of DVC's local record of what was pushed."""
    odb = repo.cloud.get_remote_odb(remote)
    objects = [entry for out in outs for entry in output_objects(out)]
    present = set(odb.list_oids_exists([md5 for _, md5 in objects]))
    return [(path, md5) for path, md5 in objects if md5 not in present]


def shared_remote(root: Path, repo, remote: str | None) -> tuple[str, str]:
    """(name, url) of the remote a version is published to, refused unless every consumer reaches the
    same place: named in the committed ``.dvc/config`` (not only in ``config.local``, which is this
    machine's) and absolute (a relative path would be resolved inside each consumer's own clone)."""
    from configobj import ConfigObj

    name, url = default_remote(repo, remote)
    how = "set a shared one with `dvc remote add -d NAME URL` (an absolute path or a URL, without --local) and commit .dvc/config"
    shown = subprocess.run(["git", "show", "HEAD:.dvc/config"], cwd=root, capture_output=True, text=True)
    committed = ConfigObj(shown.stdout.splitlines()) if shown.returncode == 0 else {}
    section = committed.get(f'remote "{name}"', {})
    if remote is None and committed.get("core", {}).get("remote") != name:
        raise CsxaError(
            f"the default remote {name!r} is not the one in the committed .dvc/config (set with --local, this "
            f"machine only): consumers could not fetch the version; {how}",
            path=root,
        )
    if section.get("url") != url and not (url and section.get("url") and _same_place(root, section["url"], url)):
        raise CsxaError(
            f"remote {name!r} ({url}) is not the one in the committed .dvc/config (a --local setting is this "
            f"machine's only): consumers could not fetch the version; {how}",
            path=root,
        )
    if "://" not in section["url"] and not Path(section["url"]).is_absolute():
        raise CsxaError(
            f"remote {name!r} is {section['url']!r}, a path relative to the clone: each consumer's DVC would "
            f"look for it beside its own clone; {how}",
            path=root,
        )
    return name, url


def _same_place(root: Path, committed: str, url: str) -> bool:
    """DVC reports a local remote's path resolved against .dvc/; the committed text may differ in form."""
    if "://" in committed or "://" in url:
        return committed.rstrip("/") == url.rstrip("/")
    return (root / ".dvc" / committed).resolve() == Path(url).resolve()


def _lock_entries(text: str) -> dict:
    import yaml

    try:
        return (yaml.safe_load(text) or {}).get("stages", {}) or {}
    except yaml.YAMLError:
        return {}


@dataclass(frozen=True)
class Publishable:
    """What the checks found: the remote to publish to, the artifact's stage, and the params file
    whose ``variants.<name>`` the stage reads (where its version is stamped), if any."""

    remote: str
    stage: str
    stamp_file: str | None
    validation: str | None = None  # the ingest report the stage's card reads (part of the stamp's fingerprint)


def check_publishable(root: str | Path, artifact: ArtifactInfo, remote: str | None = None, *, warn=None) -> Publishable:
    """Refuse unless ``artifact``'s output is committed (its stage and every stage it depends on up
    to date, their ``dvc.lock`` entries committed) and pushed (every file in a shared remote, asked of
    the remote itself). Warns, naming them, of other stages left stale."""
    import networkx as nx
    from dvc.exceptions import DvcException

    warn = warn or print_warning
    root = Path(root).resolve()
    with open_repo(root) as repo:
        outs = [out for out in repo.index.outs if out.def_path == artifact.path]
        if not outs or outs[0].stage is None:
            raise CsxaError(
                f"artifact {artifact.name!r}: {artifact.path} is not an output of any stage", path="dvc.yaml"
            )
        stage = outs[0].stage
        graph = repo.index.graph
        upstream = [stage, *nx.descendants(graph, stage)]
        try:
            changed = repo.status(targets=[stage.addressing], with_deps=True)
        except DvcException as exc:
            raise CsxaError(f"artifact {artifact.name!r}: dvc status failed: {exc}", path=root) from None
        if changed:
            names = ", ".join(sorted(changed))
            raise CsxaError(
                f"artifact {artifact.name!r}: stage {names} not up to date with dvc.lock (`dvc status "
                f"{stage.addressing} --with-deps`); run `dvc repro {stage.addressing}` and commit dvc.lock",
                path=root,
            )
        # only what this artifact is built from must be committed: the stages' dvc.lock entries and
        # their git-tracked deps (code, params); other stages may be mid-work
        names = {s.addressing for s in upstream}
        shown = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=root, capture_output=True, text=True)
        committed = _lock_entries(shown.stdout)
        workspace = _lock_entries((root / "dvc.lock").read_text()) if (root / "dvc.lock").is_file() else {}
        dirty = sorted(f"dvc.lock ({n})" for n in names if committed.get(n) != workspace.get(n))
        tracked = ["dvc.yaml", *sorted({dep.def_path for s in upstream for dep in s.deps})]
        dirty += _git(root, "status", "--porcelain", "--untracked-files=no", "--", *tracked).splitlines()
        if dirty:
            raise CsxaError(
                f"artifact {artifact.name!r}: uncommitted changes in "
                f"{', '.join(line if line.startswith('dvc.lock') else line[3:] for line in dirty)}; commit them first",
                path=root,
            )
        name, url = shared_remote(root, repo, remote)
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
            shown_paths = ", ".join(path for path, _ in missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            raise CsxaError(
                f"artifact {artifact.name!r}: remote {name!r} ({url}) lacks {len(missing)} of its files "
                f"({shown_paths}); run `dvc push {artifact.path}`; nothing was tagged",
                path=root,
            )
        downstream = sorted(s.addressing for s in nx.ancestors(graph, stage))
        if downstream:
            try:
                stale = sorted(repo.status(targets=downstream))
            except DvcException:
                stale = []
            if stale:
                warn(
                    f"stages built on {artifact.name} are not up to date with it in this commit: "
                    f"{', '.join(stale)} (they are not part of {artifact.name}'s version)"
                )
        validation = next((d.def_path for d in stage.deps if str(d.def_path).endswith("validation.json")), None)
        return Publishable(name, stage.addressing, _stamp_file(stage, artifact.name), validation)


def _stamp_file(stage, name: str) -> str | None:
    from dvc.dependency.param import ParamsDependency

    for dep in stage.deps:
        if isinstance(dep, ParamsDependency) and f"variants.{name}" in (dep.params or []):
            return dep.def_path
    return None


def publish(
    root: str | Path, name: str, version: str, *, message: str | None = None, remote: str | None = None, warn=None
) -> tuple[str, str | None]:
    """Tag the current commit as ``NAME@VERSION`` (annotated, with gto) after the checks above, with
    release notes (what changed since the previous version, :mod:`csxa_data.diff`) in its annotation.

    A dataset whose stage reads ``variants.<name>`` gets a release commit first (:func:`release_commit`):
    its card names the version and carries the notes, and the tag goes on that commit.

    Refuses an artifact not named in ``dvc.yaml``, a malformed or already published version, one not
    newer than the latest of its ``MAJOR.MINOR`` line (a patch to an older line is allowed; a new line
    must be newer than every version), and an output that is not committed and pushed. Returns the tag
    and the release commit (None for an artifact without one).
    """
    from gto.api import register
    from gto.exceptions import GTOException
    from scmrepo.exceptions import SCMError

    root = Path(root)
    artifacts = read_artifacts(root)
    if name not in artifacts:
        raise CsxaError(f"no artifact {name!r}; known: {', '.join(sorted(artifacts))}", path=root / "dvc.yaml")
    check_version_name(version)
    existing = read_versions(root, name, warn=warn)
    if any(v["version"] == version for v in existing):
        raise CsxaError(
            f"{name}@{version} is already published; published versions of {name}: "
            f"{', '.join(v['version'] for v in existing)}",
            path=root,
        )
    check_version_order(name, version, [v["version"] for v in existing], root)
    checked = check_publishable(root, artifacts[name], remote, warn=warn)
    notes = release_notes(root, artifacts[name], version, existing)
    title = message or f"Publish {artifacts[name].type} {name} {version}"
    stamped = checked.stamp_file is not None
    if stamped:
        folder = root / artifacts[name].path
        print_of = data_fingerprint(
            (folder / "shards.json").read_bytes(),
            _json_file(folder / "stats.json"),
            _json_file(root / checked.validation) if checked.validation else {},
        )
        release_commit(root, artifacts[name], checked, Stamp(version, one_line(title), notes, print_of))
    try:
        register(str(root), name, "HEAD", version=version, message=f"{title}\n\n{notes}".strip())
    except BaseException as exc:
        if stamped:  # the release commit goes with the tag that failed
            try:
                _git(root, "reset", "--keep", "HEAD~1")
                _dvc(root, "checkout", "--force", checked.stage)
            except CsxaError as undo:
                print_warning(f"could not undo the release commit ({undo}); undo it with `git reset --keep HEAD~1`")
        if isinstance(exc, (GTOException, SCMError)):
            raise CsxaError(f"cannot publish {name}@{version}: {gto_message(exc)}", path=root) from None
        raise
    return f"{name}@{version}", (_git(root, "rev-parse", "HEAD").strip() if stamped else None)


def _json_file(path: Path):
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CsxaError(f"cannot read it for the version stamp ({type(exc).__name__})", path=path) from None


def _dvc(root: Path, *args: str, what: str = "") -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise CsxaError(f"{what or 'dvc ' + ' '.join(args)} failed: {said[-1] if said else 'no message'}", path=root)


def _digests(folder: Path, ignore: set[str]) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in ignore
    }


def release_commit(root: Path, artifact: ArtifactInfo, checked: Publishable, stamp: Stamp) -> None:
    """Stamp ``stamp`` into the variant's params, rebuild its stage (the card and Croissant metadata
    change, every other file must come out byte-identical), push it and commit params and dvc.lock
    as "Release NAME vX.Y.Z": the commit the tag goes on. On any failure the workspace is put back."""
    folder = root / artifact.path
    before = _digests(folder, CARD_FILES)
    # the release commit holds params and dvc.lock whole: other work in them, or staged, is refused
    # rather than swept into it (or lost if it fails)
    pending = _git(root, "status", "--porcelain", "--untracked-files=no", "--", checked.stamp_file, "dvc.lock")
    staged = _git(root, "diff", "--cached", "--name-only")
    if pending.strip() or staged.strip():
        names = sorted({line[3:] for line in pending.splitlines()} | set(staged.split()))
        raise CsxaError(
            f"the release commit of {artifact.name} writes {checked.stamp_file} and dvc.lock: commit or stash the "
            f"changes in {', '.join(names)} first",
            path=root,
        )
    try:
        write_stamp(root / checked.stamp_file, artifact.name, stamp)
        _dvc(root, "repro", "--single-item", checked.stage, what=f"rebuilding {checked.stage} with its version")
        after = _digests(folder, CARD_FILES)
        changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
        if changed:
            raise CsxaError(
                f"rebuilding {checked.stage} with its version changed {', '.join(changed[:3])}"
                f"{f' and {len(changed) - 3} more' if len(changed) > 3 else ''}, not only its card: the build "
                "is not byte-reproducible here; nothing was published",
                path=folder,
            )
        _dvc(root, "push", "--remote", checked.remote, checked.stage, what=f"pushing {checked.stage}")
        message = f"Release {artifact.name} {stamp.version}: {stamp.title}"
        _git(root, "commit", "-q", "-m", message, "--only", "--", checked.stamp_file, "dvc.lock")
    except BaseException:
        try:
            _git(root, "checkout", "HEAD", "--", checked.stamp_file, "dvc.lock")
            _dvc(root, "checkout", "--force", checked.stage)
        except CsxaError as exc:
            print_warning(
                f"could not restore the workspace ({exc}); run `git checkout HEAD -- "
                f"{checked.stamp_file} dvc.lock && dvc checkout {checked.stage}`"
            )
        raise


def check_version_order(name: str, version: str, existing: list[str], root) -> None:
    """A new version is newer than the latest of its MAJOR.MINOR line, or, opening a new line, than
    every published version: ``v1.0.5`` after ``v1.1.0`` patches the 1.0 line."""
    from gto.versions import SemVer

    line = lambda v: tuple(int(part) for part in VERSION_TAG.fullmatch(v).groups()[:2])  # noqa: E731
    same_line = [v for v in existing if line(v) == line(version)]
    latest = max(same_line or existing, key=SemVer, default=None)
    if latest is not None and not is_newer(version, latest):
        where = f"of the {line(version)[0]}.{line(version)[1]} line " if same_line else ""
        raise CsxaError(f"{name}@{version} is not newer than the latest published {where}{latest}", path=root)


def release_notes(root: Path, artifact: ArtifactInfo, version: str, existing: list[dict]) -> str:
    """What changed since the previous version (the newest older one, not withdrawn), as Markdown;
    a dataset only (a model's notes are its card). A comparison that fails is said, not fatal."""
    from csxa_data.diff import diff_markdown, variant_diff

    older = [v for v in existing if not v["withdrawn"] and is_newer(version, v["version"])]
    if artifact.type != "dataset":
        return ""
    if not older:
        return f"First version of {artifact.name}."
    previous = older[-1]
    try:
        change = variant_diff(
            str(root), artifact.name, previous["tag"], "HEAD", path=artifact.path, labels=(previous["version"], version)
        )
    except CsxaError as exc:
        return f"Changes since {previous['version']}: could not compare ({exc})."
    return diff_markdown(change, title=f"Changes since {previous['version']}")


def withdraw(root: str | Path, name: str, version: str, reason: str) -> str:
    """Withdraw a published version: gto's deregistration tag ``NAME@VERSION!#N`` with ``reason``.
    ``latest`` then skips it; a consumer who names it still gets it, with a warning."""
    from gto.api import deregister
    from gto.exceptions import GTOException
    from scmrepo.exceptions import SCMError

    if not reason.strip():
        raise CsxaError("a withdrawal needs a --reason (consumers see it when they meet the version)")
    entry = next((v for v in read_versions(root, name) if v["version"] == version), None)
    if entry is None:
        raise CsxaError(f"{name}@{version} is not published; nothing to withdraw", path=registry_where(root))
    if entry["withdrawn"]:
        raise CsxaError(f"{name}@{version} is already withdrawn ({entry['withdrawn']})", path=registry_where(root))
    try:
        deregister(str(root), name, version=version, message=reason.strip())
    except (GTOException, SCMError) as exc:
        raise CsxaError(f"cannot withdraw {name}@{version}: {gto_message(exc)}", path=root) from None
    return f"{name}@{version}"
