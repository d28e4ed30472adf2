"""Versions that explain themselves, with the real git, dvc and gto: a steward publishes two versions
of a variant whose release differs by one added, one removed and one relabelled case and one
parameter; `csxa-data diff` reports exactly those, the second tag's annotation carries them, a
machine-only remote is refused, a patch goes to an older line, and a withdrawn version is skipped by
`latest`."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from helpers import column, edit_sheet, fresh_clone, tiny_params

pytest.register_assert_rewrite("registry_fixture")
from registry_fixture import csxa_data, sh  # noqa: E402

VARIANT = "wide_cropped"


def release_with(root, original, *, without=(), relabel=()):
    """releases/csxa: the synthetic release with the sheet rows of cases ``without`` deleted and the
    class of cases ``relabel`` flipped; tracked with `dvc add` as a real release is."""
    release = root / "releases" / "csxa"
    shutil.rmtree(release, ignore_errors=True)
    shutil.copytree(original, release)

    def change(sheet):
        number, label = column(sheet, "Number"), column(sheet, "Class")
        for row in reversed(range(3, sheet.max_row + 1)):
            value = sheet.cell(row, number).value
            if value is not None and int(value) in without:
                sheet.delete_rows(row)
            elif value is not None and int(value) in relabel:
                cell = sheet.cell(row, label)
                cell.value = "asymptomatic" if cell.value == "symptomatic" else "symptomatic"

    edit_sheet(release, change)
    sh("dvc", "add", "releases/csxa", cwd=root)


def set_params(root, change):
    params = yaml.safe_load((root / "params.yaml").read_text())
    change(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def steward(tmp_path_factory):
    """A registry with wide_cropped v1.0.0 and v1.1.0 published from two states of the release."""
    base = tmp_path_factory.mktemp("versions")
    root, remote = base / "csxa", base / "remote"
    fresh_clone(root)
    tiny_params(root, experiments=("original_resnet",))
    sh("dvc", "remote", "modify", "storage", "url", remote, cwd=root)
    sh("dvc", "repro", "synth", cwd=root, timeout=600)
    original = base / "original-release"
    shutil.copytree(root / "data" / "synthetic" / "release", original)
    sh("dvc", "repro", "ingest", cwd=root)
    manifest = pd.read_csv(root / "data" / "ingest" / "manifest.csv").sort_values("number")
    train = manifest[manifest.split == "train"]
    added, removed, relabelled = (int(n) for n in train.number.iloc[[1, 2, 3]])
    shard_size = yaml.safe_load((root / "params.yaml").read_text())["build"]["shard_size"]

    # v1.0.0: the release without case `added`
    release_with(root, original, without=(added,))
    set_params(root, lambda p: p["ingest"].update(release="releases/csxa"))
    sh("dvc", "repro", f"variant@{VARIANT}", cwd=root, timeout=600)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "v1.0.0: the release as received", cwd=root)
    sh("dvc", "push", cwd=root)
    first = csxa_data("publish", VARIANT, "v1.0.0", cwd=root)

    # v1.1.0: `added` restored, `removed` gone, `relabelled` corrected, shards cut smaller
    release_with(root, original, without=(removed,), relabel=(relabelled,))
    set_params(root, lambda p: p["build"].update(shard_size=7))
    sh("dvc", "repro", f"variant@{VARIANT}", cwd=root, timeout=600)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "v1.1.0: the corrected sheet", cwd=root)
    sh("dvc", "push", cwd=root)
    second = csxa_data("publish", VARIANT, "v1.1.0", "--message", "Corrected sheet from the hospital", cwd=root)
    return {
        "root": root,
        "remote": remote,
        "cases": {"added": added, "removed": removed, "relabelled": relabelled},
        "labels": dict(zip(manifest.number, manifest.label)),
        "shard_size": shard_size,
        "published": (first, second),
    }


@pytest.mark.slow
def test_diff_reports_exactly_what_changed_between_two_versions(steward):
    root, cases = steward["root"], steward["cases"]
    shown = csxa_data("diff", VARIANT, "v1.0.0", "v1.1.0", "--json", cwd=root)
    change = json.loads(shown.stdout)
    assert change["a"]["label"] == "v1.0.0" and change["b"]["label"] == "v1.1.0"
    assert change["added"] == [cases["added"]] and change["removed"] == [cases["removed"]]
    before = steward["labels"][cases["relabelled"]]
    assert change["relabelled"] == [{"case": cases["relabelled"], "a": before, "b": 1 - before}]
    assert change["moved_split"] == [] and change["image_changed"] == [] and change["metadata_changed"] == {}
    assert change["parameters"] == [{"parameter": "params.yaml:build.shard_size", "a": steward["shard_size"], "b": 7}]
    drops = change["ledgers"]["drops"]
    # the removed case's film and landmark file now lack a sheet row; the added case's have one again
    assert {(int(float(row[2])), row[3]) for row in drops["added"]} == {(cases["removed"], "no_sheet_row")}
    assert {(int(float(row[2])), row[3]) for row in drops["removed"]} == {(cases["added"], "no_sheet_row")}
    assert change["ledgers"]["repairs"] == {"added": [], "removed": []}
    # ingest's near-duplicate pairs are compared too (both revisions hold duplicates.csv)
    assert change["label_issues"] == {"added": [], "removed": []}  # the committed ranking, the same at both
    pairs = change["near_duplicates"]
    assert all(cases["added"] in pair for pair in pairs["added"])
    assert all(cases["removed"] in pair for pair in pairs["removed"])
    shards = change["shards"]
    for side in ("a", "b"):  # shards with the same md5 on both sides are not read
        assert shards["unchanged"] + shards["read"][side] == change[side]["shards"]
    assert shards["read"]["a"] > 0 and shards["read"]["b"] > 0

    text = csxa_data("diff", VARIANT, "v1.0.0", "v1.1.0", cwd=root).stdout
    assert f"- added: 1 ({cases['added']:04d})" in text and f"- removed: 1 ({cases['removed']:04d})" in text
    assert "- moved split: none" in text
    assert f"- drops: 2 new (case {cases['removed']:04d}: no_sheet_row x2)" in text
    assert f"- params.yaml:build.shard_size: {steward['shard_size']} -> 7" in text

    same = json.loads(csxa_data("diff", VARIANT, "v1.1.0", "HEAD", "--json", cwd=root).stdout)
    assert same["added"] == same["removed"] == same["relabelled"] == same["parameters"] == []
    assert same["shards"]["read"] == {"a": 0, "b": 0}  # identical shards are not downloaded


@pytest.mark.slow
def test_the_tag_annotation_carries_the_release_notes(steward):
    root, cases = steward["root"], steward["cases"]
    first = sh("git", "tag", "-l", "--format=%(contents)", f"{VARIANT}@v1.0.0", cwd=root).stdout
    assert f"First version of {VARIANT}." in first
    notes = sh("git", "tag", "-l", "--format=%(contents)", f"{VARIANT}@v1.1.0", cwd=root).stdout
    assert notes.startswith("Corrected sheet from the hospital\n")
    assert "## Changes since v1.0.0" in notes and f"- relabelled: 1 ({cases['relabelled']:04d} (" in notes
    change = f"params.yaml:build.shard_size: {steward['shard_size']} -> 7"
    assert f"- added: 1 ({cases['added']:04d})" in notes and f"- {change}" in notes
    listed = csxa_data("versions", VARIANT, cwd=root).stdout
    assert "    Corrected sheet from the hospital" in listed and f"    {change}" in listed


def card_at(root, rev: str) -> str:
    """The dataset card as published at ``rev``, read through DVC from the registry's cache."""
    from dvc.api import read

    return read(f"data/variants/{VARIANT}/README.md", repo=str(root), rev=rev)


@pytest.mark.slow
def test_the_card_carries_its_version_and_release_notes(steward):
    """publish stamps the version in a release commit: the tagged commit's card names the version and
    carries the same notes as the tag, and only the card and Croissant metadata changed."""
    root, cases = steward["root"], steward["cases"]
    tagged = sh("git", "rev-list", "-n1", f"{VARIANT}@v1.1.0", cwd=root).stdout.strip()
    subject = sh("git", "log", "-1", "--format=%s", tagged, cwd=root).stdout.strip()
    assert subject == f"Release {VARIANT} v1.1.0: Corrected sheet from the hospital"
    card = card_at(root, f"{VARIANT}@v1.1.0")
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["csxa"]["version"] == "v1.1.0"
    assert f"`{VARIANT}@v1.1.0` from REGISTRY_URL: Corrected sheet from the hospital." in card
    assert "### Changes since v1.0.0" in card and f"- relabelled: 1 ({cases['relabelled']:04d} (" in card
    assert f"- params.yaml:build.shard_size: {steward['shard_size']} -> 7" in card
    assert "First version of wide_cropped." in card_at(root, f"{VARIANT}@v1.0.0")
    # the commit before the release commit still holds v1.0.0's stamp, but other shards
    assert f"Unpublished: built after `{VARIANT}@v1.0.0`, from other data" in card_at(root, f"{tagged}~1")

    from dvc.api import read

    croissant = json.loads(read(f"data/variants/{VARIANT}/croissant.json", repo=str(root), rev=tagged))
    assert croissant["version"] == "1.1.0"
    # the release commit rebuilt nothing but the card: every shard is the one before it
    shards = [read(f"data/variants/{VARIANT}/shards.json", repo=str(root), rev=r) for r in (tagged, f"{tagged}~1")]
    assert shards[0] == shards[1]


@pytest.mark.slow
def test_a_fresh_build_of_the_tagged_commit_rebuilds_the_published_card(steward, tmp_path):
    """The stamp is a parameter of the variant's stage: `dvc repro` at the tag makes the same bytes."""
    root = tmp_path / "copy"
    shutil.copytree(steward["root"], root, symlinks=True)
    published = (root / "data" / "variants" / VARIANT / "README.md").read_bytes()
    assert sh("dvc", "status", f"variant@{VARIANT}", cwd=root).stdout.strip().endswith("up to date.")
    shutil.rmtree(root / "data" / "variants" / VARIANT)
    sh("dvc", "repro", "--single-item", "--force", f"variant@{VARIANT}", cwd=root, timeout=600)
    assert (root / "data" / "variants" / VARIANT / "README.md").read_bytes() == published
    assert sh("git", "status", "--porcelain", "dvc.lock", cwd=root).stdout == ""


@pytest.mark.slow
def test_diff_that_cannot_compare_is_one_line(steward):
    root = steward["root"]
    missing = csxa_data("diff", VARIANT, "v1.0.0", "v9.9.9", cwd=root, check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .endswith(f"{VARIANT}@v9.9.9 is not published; published versions of {VARIANT}: v1.0.0, v1.1.0")
    )


@pytest.mark.slow
def test_publish_refuses_a_remote_that_consumers_cannot_reach(steward, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(steward["root"], root, symlinks=True)
    sh("git", "commit", "-q", "--allow-empty", "-m", "next", cwd=root)
    sh("dvc", "remote", "add", "--local", "-d", "mine", tmp_path / "elsewhere", cwd=root)
    local = csxa_data("publish", VARIANT, "v1.2.0", cwd=root, check=False)
    assert local.returncode == 2 and len(local.stderr.strip().splitlines()) == 1, local.stderr
    assert "not the one in the committed .dvc/config" in local.stderr and "dvc remote add -d" in local.stderr
    (root / ".dvc" / "config.local").unlink()
    sh("dvc", "remote", "modify", "storage", "url", "../../relative-remote", cwd=root)
    sh("git", "commit", "-qam", "a relative remote", cwd=root)
    relative = csxa_data("publish", VARIANT, "v1.2.0", cwd=root, check=False)
    assert relative.returncode == 2 and "a path relative to the clone" in relative.stderr, relative.stderr
    assert sh("git", "tag", "-l", f"{VARIANT}@v1.2.0", cwd=root).stdout == ""


@pytest.mark.slow
def test_a_patch_to_an_older_line_and_withdrawal_with_latest(steward, tmp_path):
    from csxa_data.shards.sources import registry_variant

    root = tmp_path / "copy"
    shutil.copytree(steward["root"], root, symlinks=True)
    sh("git", "commit", "-q", "--allow-empty", "-m", "a patch on the 1.0 line", cwd=root)
    older = csxa_data("publish", VARIANT, "v0.9.0", cwd=root, check=False)
    assert older.returncode == 2 and "is not newer than the latest published v1.1.0" in older.stderr
    stale = csxa_data("publish", VARIANT, "v1.0.0", cwd=root, check=False)
    assert "already published" in stale.stderr
    assert csxa_data("publish", VARIANT, "v1.0.1", cwd=root).returncode == 0

    assert "wide_cropped%40v1.1.0" in registry_variant(str(root), VARIANT, "latest")
    reason = "relabelled case was wrong"
    assert csxa_data("withdraw", VARIANT, "v1.1.0", "--reason", reason, cwd=root).returncode == 0
    latest = csxa_data("versions", VARIANT, "--check", "latest", cwd=root)
    assert latest.stdout.startswith(f"{VARIANT}@v1.0.1: commit ")
    listed = csxa_data("versions", VARIANT, cwd=root).stdout
    assert f"(withdrawn: {reason})" in listed and "v1.0.1" in listed and "(latest)" in listed
    assert "wide_cropped%40v1.0.1" in registry_variant(str(root), VARIANT, "latest")
    named = csxa_data("diff", VARIANT, "v1.1.0", "latest", cwd=root)
    assert f"warning: {VARIANT}@v1.1.0 is withdrawn ({reason}); reading it because it was named" in named.stderr
    pinned = csxa_data("versions", VARIANT, "--check", "v1.1.0", cwd=root, check=False)
    assert pinned.returncode == 2 and f"{VARIANT}@v1.1.0 is withdrawn ({reason})" in pinned.stderr
    again = csxa_data("withdraw", VARIANT, "v1.1.0", "--reason", "twice", cwd=root, check=False)
    assert again.returncode == 2 and "already withdrawn" in again.stderr


@pytest.mark.slow
def test_publishing_after_an_experiment_does_not_sweep_it_in(steward, tmp_path):
    """`dvc exp run` leaves its parameters and results in the workspace: publish refuses them until
    they are committed, so an experiment never becomes the next version unnoticed."""
    root = tmp_path / "copy"
    shutil.copytree(steward["root"], root, symlinks=True)
    sh("dvc", "exp", "run", "-S", "variants.wide_cropped.grow_y=30", f"variant@{VARIANT}", cwd=root, timeout=600)
    swept = csxa_data("publish", VARIANT, "v1.2.0", cwd=root, check=False)
    assert swept.returncode == 2 and len(swept.stderr.strip().splitlines()) == 1, swept.stderr
    assert f"uncommitted changes in dvc.lock (variant@{VARIANT})" in swept.stderr and "params.yaml" in swept.stderr
    assert sh("git", "tag", "-l", f"{VARIANT}@v1.2.0", cwd=root).stdout == ""


def test_release_notes_read_each_ledger_by_its_header():
    """repairs.csv and drops.csv have other columns: the notes name each row's case and rule."""
    from csxa_data.diff import _ledger_line, ledger_rows

    repairs = ledger_rows("number,field,old,new,rule\n12,age,66,69,age_from_file_name\n12,x,1.0,2.0,polygon_mean\n")
    drops = ledger_rows("source,key,number,rule,reason\njson,0004052.json,4.0,no_sheet_row,case 0004: no sheet row\n")
    assert _ledger_line(repairs, "new") == "2 new (case 0012: age_from_file_name; case 0012: polygon_mean)"
    assert _ledger_line(drops, "gone") == "1 gone (case 0004: no_sheet_row)"
    odd = ledger_rows("source,key,number,rule,reason\npng,x.png,inf,no_image,?\n")
    assert _ledger_line(odd, "new") == "1 new (no_image x1)"


def test_latest_is_the_newest_release_not_a_pre_release(tmp_path):
    from csxa_data.registry import resolve_version

    sh("git", "init", "-q", "-b", "main", cwd=tmp_path)
    for version in ("v1.0.0", "v2.0.0-rc.1"):
        sh("git", "commit", "-q", "--allow-empty", "-m", version, cwd=tmp_path)
        sh("git", "tag", "-a", "-m", f"Publish ds {version}", f"ds@{version}", cwd=tmp_path)
    assert resolve_version(tmp_path, "ds", "latest")[0] == "ds@v1.0.0"
    assert resolve_version(tmp_path, "ds", "v2.0.0-rc.1")[0] == "ds@v2.0.0-rc.1"  # named: read as named


def test_the_stamp_keeps_params_comments_and_is_not_a_build_setting(tmp_path):
    """write_stamp edits only variants.NAME.published (comments, order and other keys kept); the
    variant's settings, its stage's other params and a diff's parameters leave the stamp out."""
    from csxa_data.errors import CsxaError
    from csxa_data.params import load_section
    from csxa_data.stamp import Stamp, is_stamp_parameter, write_stamp
    from csxa_data.variants.spec import VariantSpec

    from helpers import REPO

    params = tmp_path / "params.yaml"
    original = (REPO / "params.yaml").read_text()
    params.write_text(original)
    stamp = Stamp("v1.1.0", "Corrected sheet", "## Changes since v1.0.0\n\n- added: 1 (0042)\n", "ab" * 32)
    write_stamp(params, VARIANT, stamp)
    text = params.read_text()
    comments = [line for line in original.splitlines() if "#" in line]
    assert comments and all(line in text.splitlines() for line in comments)
    section = load_section(params, "variants")[VARIANT]
    assert Stamp.from_params(VARIANT, section) == stamp
    assert VariantSpec.from_dict(VARIANT, section) == VariantSpec.from_dict(
        VARIANT, yaml.safe_load(original)["variants"][VARIANT]
    )
    restored = yaml.safe_load(text)
    del restored["variants"][VARIANT]["published"]
    assert restored == yaml.safe_load(original)  # nothing else moved
    assert is_stamp_parameter(f"params.yaml:variants.{VARIANT}.published.notes")
    assert not is_stamp_parameter(f"params.yaml:variants.{VARIANT}.grow_y")

    section["published"]["version"] = "1.1"
    with pytest.raises(CsxaError, match=r"variants.wide_cropped.published.version '1.1' is not a version"):
        Stamp.from_params(VARIANT, section)
    section["published"] = {"version": "v1.0.0"}
    with pytest.raises(CsxaError, match="must hold fingerprint, notes, title, version"):
        Stamp.from_params(VARIANT, section)


@pytest.mark.slow
def test_a_release_commit_that_cannot_be_pushed_leaves_nothing_behind(steward, tmp_path):
    """The release commit's new card cannot reach the remote (every object folder it could need is
    taken by a file): publish fails in one line, and params.yaml, dvc.lock, the card, HEAD and the
    tags are as they were."""
    root, remote = tmp_path / "copy", tmp_path / "remote"
    shutil.copytree(steward["root"], root, symlinks=True)
    shutil.copytree(steward["remote"], remote)
    sh("dvc", "remote", "modify", "storage", "url", remote, cwd=root)
    sh("git", "commit", "-qam", "this copy's remote", cwd=root)
    objects = remote / "files" / "md5"
    for prefix in (f"{n:02x}" for n in range(256)):
        if not (objects / prefix).exists():
            (objects / prefix).write_text("not a folder")
    card = (root / "data" / "variants" / VARIANT / "README.md").read_bytes()
    head = sh("git", "rev-parse", "HEAD", cwd=root).stdout

    failed = csxa_data("publish", VARIANT, "v1.2.0", cwd=root, check=False)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    assert f"pushing variant@{VARIANT} failed" in failed.stderr.strip().splitlines()[-1]
    assert sh("git", "rev-parse", "HEAD", cwd=root).stdout == head
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=root).stdout == ""
    assert sh("git", "tag", "-l", f"{VARIANT}@v1.2.0", cwd=root).stdout == ""
    assert (root / "data" / "variants" / VARIANT / "README.md").read_bytes() == card
    assert sh("dvc", "status", f"variant@{VARIANT}", cwd=root).stdout.strip().endswith("up to date.")


@pytest.mark.slow
def test_a_release_commit_refuses_work_it_would_sweep_in(steward, tmp_path):
    """Something staged (or other work in params.yaml or dvc.lock) would end up in the release commit,
    or be lost if it failed: publish refuses, naming it, and changes nothing."""
    root = tmp_path / "copy"
    shutil.copytree(steward["root"], root, symlinks=True)
    sh("git", "commit", "-q", "--allow-empty", "-m", "next", cwd=root)
    (root / "notes.txt").write_text("half-done work\n")
    sh("git", "add", "notes.txt", cwd=root)
    head = sh("git", "rev-parse", "HEAD", cwd=root).stdout
    refused = csxa_data("publish", VARIANT, "v1.2.0", cwd=root, check=False)
    assert refused.returncode == 2 and "commit or stash the changes in notes.txt first" in refused.stderr, (
        refused.stderr
    )
    assert sh("git", "rev-parse", "HEAD", cwd=root).stdout == head
    assert sh("git", "diff", "--cached", "--name-only", cwd=root).stdout.split() == ["notes.txt"]
    assert sh("git", "tag", "-l", f"{VARIANT}@v1.2.0", cwd=root).stdout == ""
