"""The registry keeps its promise: what a team reads is what was published. A remote whose files are
rewritten under their own md5 names (train labels flipped, shards.json rewritten to match) is
refused by `csxa-data pull`, plain `dvc pull`, training on a `dvc import` and training from a
registry revision; `publish` asks the remote itself whether every file is there. Real git, DVC, a
folder remote and the CLI, on the session's tiny registry (restored after each test)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from csxa_data.shards.format import write_shard

pytest.register_assert_rewrite("registry_fixture")
from registry_fixture import ENV, consumer_dir, csxa_data, csxa_train, sh  # noqa: E402

pytest_plugins = ["registry_fixture"]
pytestmark = pytest.mark.slow  # end to end with git, dvc and gto (one shared registry)

VARIANT = "data/variants/wide_cropped"
TAG = "wide_cropped@v1.0.0"
FIT = ("--model", "smallcnn", "--weights", "none", "--epochs", "1", "--image-size", "32", "--workers", "0")


def remote_object(remote: Path, md5: str) -> Path:
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def published_listing(registry, rev: str = TAG) -> tuple[str, dict[str, str]]:
    """The variant folder's .dir md5 at ``rev`` and its listing (relpath -> md5), from the remote."""
    lock = yaml.safe_load(sh("git", "show", f"{rev}:dvc.lock", cwd=registry.root).stdout)
    dir_md5 = next(o["md5"] for s in lock["stages"].values() for o in s.get("outs", []) if o["path"] == VARIANT)
    entries = json.loads(remote_object(registry.remote, dir_md5).read_text())
    return dir_md5, {e["relpath"]: e["md5"] for e in entries}


@contextlib.contextmanager
def rewritten(remote: Path, replacements: dict[str, bytes | None]):
    """Replace (or, for None, delete) remote objects by md5; every one restored afterwards."""
    saved = {md5: remote_object(remote, md5).read_bytes() for md5 in replacements}
    try:
        for md5, data in replacements.items():
            path = remote_object(remote, md5)
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
            if data is None:
                path.unlink()
            else:
                path.write_bytes(data)
        yield
    finally:
        for md5, data in saved.items():
            path = remote_object(remote, md5)
            if path.exists():
                path.chmod(stat.S_IRUSR | stat.S_IWUSR)
            path.write_bytes(data)
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def poisoned(remote: Path, listing: dict[str, str], tmp_path: Path) -> dict[str, bytes]:
    """A train shard with every label flipped and a shards.json rewritten to match it (sha256,
    counts): what an attacker who can write to the remote, but not to git, can do."""
    shard = next(name for name in sorted(listing) if name.startswith("train-"))
    samples: dict[str, list[tuple[str, bytes]]] = {}
    flipped = {"0": 0, "1": 0}
    with tarfile.open(remote_object(remote, listing[shard])) as archive:
        for member in archive.getmembers():
            data = archive.extractfile(member).read()
            key, kind = member.name.split(".", 1)
            if kind == "cls":
                data = b"1" if data.strip() == b"0" else b"0"
                flipped[data.decode()] += 1
            samples.setdefault(key, []).append((member.name, data))
    path = tmp_path / shard
    sha = write_shard(path, samples.values())
    report = json.loads(remote_object(remote, listing["shards.json"]).read_text())
    for entry in report["shards"]:
        if entry["name"] == shard:
            old = entry["by_class"]
            entry.update(sha256=sha, by_class={c: n for c, n in flipped.items() if n})
            train = report["totals"]["train"]["by_class"]
            for c in ("0", "1"):
                train[c] = train.get(c, 0) - old.get(c, 0) + flipped[c]
    assert sum(flipped.values()) > 0
    return {listing[shard]: path.read_bytes(), listing["shards.json"]: (json.dumps(report, indent=2) + "\n").encode()}


def one_error_line(result: subprocess.CompletedProcess, prog: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{prog}: ")]
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def clone_at(registry, where: Path, rev: str = TAG) -> Path:
    """A consumer's clone of the registry at ``rev`` (no DVC cache: every byte comes from the remote)."""
    sh("git", "clone", "-q", registry.root, where, cwd=registry.base)
    sh("git", "checkout", "-q", rev, cwd=where)
    return where


def test_a_remote_rewritten_under_its_own_hashes_is_refused_on_every_consumer_path(registry, tmp_path):
    dir_md5, listing = published_listing(registry)
    shard = next(name for name in sorted(listing) if name.startswith("train-"))
    home = consumer_dir(registry, "tampered")
    with rewritten(registry.remote, poisoned(registry.remote, listing, tmp_path)):
        # csxa-data pull: DVC's verify (committed .dvc/config) refuses, csxa-data names file and hashes
        clone = clone_at(registry, home / "clone")
        assert "verify = true" in (clone / ".dvc/config").read_text()
        pulled = csxa_data("pull", VARIANT, cwd=clone, check=False)
        line = one_error_line(pulled, "csxa-data")
        assert re.search(
            rf"holds {VARIANT}/(shards\.json|{shard}) with md5 [0-9a-f]{{32}}, not the published "
            r"[0-9a-f]{32}",
            line,
        ), line
        assert "nothing of it is in the workspace" in line
        assert not (clone / VARIANT).exists()
        # plain dvc pull under the repository's configuration refuses too
        plain = clone_at(registry, home / "plain")
        assert sh("dvc", "pull", VARIANT, cwd=plain, check=False).returncode != 0
        assert not (plain / VARIANT / shard).exists()

        # dvc import does not re-hash (DVC ignores verify there): training on the import refuses it
        project = home / "project"
        project.mkdir()
        sh("git", "init", "-q", cwd=project)
        sh("dvc", "init", "-q", cwd=project)
        sh("dvc", "import", clone, VARIANT, "-o", "wide_cropped", "--rev", TAG, cwd=project)
        fitted = csxa_train(
            "fit", "--variant", "wide_cropped", "--out", "results/check", *FIT, cwd=project, check=False
        )
        line = one_error_line(fitted, "csxa-train")
        assert re.search(
            r"wide_cropped/shards\.json: md5 [0-9a-f]{32} differs from the published [0-9a-f]{32} "
            r"\(wide_cropped\.dvc of wide_cropped\): a tampered or damaged copy",
            line,
        ), line
        assert not (project / "results").exists()

        # training straight from the registry revision: no clone, no pull
        streamed = csxa_train(
            "fit",
            "--registry",
            clone,
            "--variant",
            "wide_cropped",
            "--rev",
            "v1.0.0",
            "--out",
            "streamed",
            *FIT,
            cwd=home,
            check=False,
        )
        line = one_error_line(streamed, "csxa-train")
        assert re.search(
            r"shards\.json: md5 [0-9a-f]{32} differs from the published [0-9a-f]{32} \(dvc\.lock at "
            rf"{re.escape(TAG)} \(commit [0-9a-f]{{7}}\)\)",
            line,
        ), line
        assert not (home / "streamed").exists()
    # the untouched remote serves the same consumers again
    again = clone_at(registry, home / "again")
    csxa_data("pull", VARIANT, cwd=again)
    assert (again / VARIANT / shard).is_file()


def test_only_the_shard_rewritten_is_named_with_both_hashes(registry, tmp_path):
    """With shards.json left alone (an attacker who only swapped a shard), the shard itself is named."""
    _, listing = published_listing(registry)
    shard = next(name for name in sorted(listing) if name.startswith("train-"))
    swap = {listing[shard]: poisoned(registry.remote, listing, tmp_path)[listing[shard]]}
    home = consumer_dir(registry, "tampered-shard")
    clone = clone_at(registry, home / "clone")
    with rewritten(registry.remote, swap):
        streamed = csxa_train(
            "fit",
            "--registry",
            clone,
            "--variant",
            "wide_cropped",
            "--rev",
            "v1.0.0",
            "--out",
            "streamed",
            *FIT,
            cwd=home,
            check=False,
        )
    line = one_error_line(streamed, "csxa-train")
    assert f"{shard}: md5 " in line and f"differs from the published {listing[shard]}" in line, line


def test_a_rewritten_listing_is_refused_before_any_file_is_believed(registry, tmp_path):
    """The folder's .dir listing, rewritten under its own name to point at other files, is named."""
    dir_md5, listing = published_listing(registry)
    entries = [{"md5": md5, "relpath": name} for name, md5 in sorted(listing.items())]
    entries[0]["md5"] = "0" * 32
    home = consumer_dir(registry, "tampered-listing")
    clone = clone_at(registry, home / "clone")
    with rewritten(registry.remote, {dir_md5: json.dumps(entries).encode()}):
        streamed = csxa_train(
            "fit",
            "--registry",
            clone,
            "--variant",
            "wide_cropped",
            "--rev",
            "v1.0.0",
            "--out",
            "streamed",
            *FIT,
            cwd=home,
            check=False,
        )
    line = one_error_line(streamed, "csxa-train")
    assert "the folder's listing has md5 " in line and f"the published {dir_md5}" in line, line


def test_publish_asks_the_remote_itself_and_names_what_it_lacks(registry, tmp_path):
    """A shard deleted from the remote after `dvc push`: DVC's local record still says "in sync";
    publish asks the remote, refuses, names the file and makes no tag."""
    head_lock = yaml.safe_load((registry.root / "dvc.lock").read_text())
    dir_md5 = next(o["md5"] for s in head_lock["stages"].values() for o in s.get("outs", []) if o["path"] == VARIANT)
    listing = {e["relpath"]: e["md5"] for e in json.loads(remote_object(registry.remote, dir_md5).read_text())}
    shard = next(name for name in sorted(listing) if name.startswith("test-"))
    with rewritten(registry.remote, {listing[shard]: None}):
        published = csxa_data("publish", "wide_cropped", "v9.9.9", cwd=registry.root, check=False)
    line = one_error_line(published, "csxa-data")
    assert f"lacks 1 of its files ({VARIANT}/{shard}); run `dvc push {VARIANT}`; nothing was tagged" in line, line
    assert sh("git", "tag", "-l", "wide_cropped@v9.9.9", cwd=registry.root).stdout == ""


# --- the registry fault suite: kills at seeded random moments, a remote that goes away --------------


def listing_at(registry, rev: str) -> dict[str, str]:
    return published_listing(registry, rev)[1]


def state_of(folder: Path, versions: dict[str, dict[str, str]]) -> str:
    """Which version a variant folder holds whole ("none" if absent); anything else fails the test."""
    if not folder.exists():
        return "none"
    present = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    for name, files in versions.items():
        if set(present) == set(files) and all(
            hashlib.md5(present[f].read_bytes()).hexdigest() == md5 for f, md5 in files.items()
        ):
            return name
    raise AssertionError(f"{folder} holds a mix: {sorted(present)}")


def killed(command: list[str], cwd: Path, delay: float) -> None:
    """Start ``command`` in a session of its own, kill the whole session after ``delay`` seconds."""
    process = subprocess.Popen(
        command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_killed_pulls_and_a_vanishing_remote_leave_the_previous_version_or_none(registry, second_version):
    """A consumer on wide_cropped@v1.0.0 moves to v1.1.0: `csxa-data pull` killed at seeded random
    moments, and a remote renamed away part-way, leave v1.0.0 whole or no folder, never part of one
    or a mix; the next pull completes v1.1.0 and clears what the killed ones left."""
    versions = {"v1.0.0": listing_at(registry, TAG), "v1.1.0": listing_at(registry, "wide_cropped@v1.1.0")}
    assert versions["v1.0.0"] != versions["v1.1.0"]
    home = consumer_dir(registry, "killed-pull")
    clone = clone_at(registry, home / "clone")
    started = time.monotonic()
    first = csxa_data("pull", VARIANT, cwd=clone)
    whole_pull = time.monotonic() - started
    tagged = sh("git", "rev-parse", "HEAD", cwd=clone).stdout.strip()[:12]
    assert f"csxa-data pull: commit {tagged}, published as wide_cropped@v1.0.0" in first.stdout  # which version
    assert state_of(clone / VARIANT, versions) == "v1.0.0"
    sh("git", "checkout", "-q", "wide_cropped@v1.1.0", cwd=clone)
    pull = [sys.executable, "-m", "csxa_data", "pull", VARIANT]
    rng = random.Random(23)
    seen = []
    for delay in sorted(rng.uniform(0.2, whole_pull) for _ in range(3)):
        killed(pull, clone, delay)
        seen.append(state_of(clone / VARIANT, versions))
        assert seen[-1] in ("v1.0.0", "none", "v1.1.0"), seen
        if seen[-1] == "v1.1.0":  # the pull had finished: back to v1.0.0 for the next kill
            break
    # the remote goes away part-way (renamed), then comes back
    away = registry.remote.with_name("remote-away")
    shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
    process = subprocess.Popen(pull, cwd=clone, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(rng.uniform(0.0, 0.5) * whole_pull)
    registry.remote.rename(away)
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        away.rename(registry.remote)
    if process.returncode:
        lines = [line for line in stderr.splitlines() if line.startswith("csxa-data: ")]
        assert process.returncode == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
        assert "the workspace is as it was" in lines[0] or "cannot be reached" in lines[0], lines[0]
    assert state_of(clone / VARIANT, versions) in ("v1.0.0", "none", "v1.1.0")
    csxa_data("pull", VARIANT, cwd=clone)
    assert state_of(clone / VARIANT, versions) == "v1.1.0"
    assert temporaries(clone / "data/variants") == []


def test_a_killed_push_is_completed_by_the_next_and_publish_checks_every_object(registry, tmp_path):
    """`dvc push` killed at seeded random moments into an empty remote, then run again: every object
    on the remote is whole (its md5 is its name), and publish finds nothing missing. Publish killed
    at random moments and run again tags the version once."""
    steward = tmp_path / "steward"
    shutil.copytree(registry.root, steward, symlinks=True)
    remote = tmp_path / "remote"
    sh("dvc", "remote", "modify", "storage", "url", remote, cwd=steward)  # committed: publish refuses a --local one
    sh("git", "commit", "-qam", "the team's remote", cwd=steward)
    push = ["dvc", "push", VARIANT]
    rng = random.Random(29)
    for delay in sorted(rng.uniform(0.3, 3.0) for _ in range(4)):
        killed(push, steward, delay)
        for path in remote.rglob("*") if remote.exists() else []:
            if path.is_file() and ".tmp" not in path.name and len(path.parent.name) == 2:
                name = path.parent.name + path.name
                digest = hashlib.md5(path.read_bytes()).hexdigest()
                assert name.startswith(digest), f"{path}: a half-written object under its final name"
    sh(*push, cwd=steward)
    sh(
        "git", "commit", "-q", "--allow-empty", "-m", "a new commit to publish", cwd=steward
    )  # gto: one version a commit
    version = "v7.0.0"
    publish = [sys.executable, "-m", "csxa_data", "publish", "wide_cropped", version]
    for delay in sorted(rng.uniform(0.5, 4.0) for _ in range(3)):
        killed(publish, steward, delay)
    again = csxa_data("publish", "wide_cropped", version, cwd=steward, check=False)
    tags = sh("git", "tag", "-l", f"wide_cropped@{version}", cwd=steward).stdout.split()
    assert tags == [f"wide_cropped@{version}"], again.stderr
    assert again.returncode == 0 or "is already published" in again.stderr, again.stderr
    assert sh("git", "cat-file", "-t", f"wide_cropped@{version}", cwd=steward).stdout.strip() == "tag"


def test_load_variant_reads_a_version_verified_and_refuses_a_tampered_shard(registry, tmp_path):
    """Another team's one call: a published version as a PyTorch dataset, with fit's checks."""
    import torch

    from csxa_data import load_variant
    from csxa_data.errors import SourceError

    _, listing = published_listing(registry)
    home = consumer_dir(registry, "load-variant")
    clone = clone_at(registry, home / "clone")
    test = load_variant("wide_cropped", registry=str(clone), rev="v1.0.0", split="test")
    commit = sh("git", "rev-parse", f"{TAG}^{{commit}}", cwd=registry.root).stdout.strip()
    assert (test.provenance.rev, test.provenance.commit) == (TAG, commit)
    assert test.provenance.variant == "wide_cropped"
    assert test.provenance.describe() == f"{TAG} (commit {commit[:12]}) from {clone}"
    samples = list(torch.utils.data.DataLoader(test, batch_size=None, num_workers=2))
    report = json.loads(remote_object(registry.remote, listing["shards.json"]).read_text())
    assert len(samples) == len(test) == report["totals"]["test"]["samples"]
    size = report["spec"]["out_size"]
    assert all(s["image"].shape == (3, size, size) and s["image"].dtype == torch.float32 for s in samples)
    assert {s["meta"]["split"] for s in samples} == {"test"} and {s["label"] for s in samples} <= {0, 1}
    assert len({s["key"] for s in samples}) == len(samples)  # each sample once over both workers

    shard = next(name for name in sorted(listing) if name.startswith("train-"))
    swapped = poisoned(registry.remote, listing, tmp_path)
    del swapped[listing["shards.json"]]  # the shard alone: its own sha256 no longer matches either
    with rewritten(registry.remote, swapped):
        fresh = clone_at(registry, home / "fresh")
        train = load_variant("wide_cropped", registry=str(fresh), rev="v1.0.0", split="train")
        seen = []
        with pytest.raises(SourceError) as refused:
            for sample in train:
                seen.append(sample["key"])
    message = str(refused.value)
    assert "\n" not in message and shard in message and "differs from the published" in message, message
    assert seen == []  # the first train shard is the tampered one: none of its samples was handed out
