"""Publishing versions: `dvc.yaml` names every variant and model; `csxa-data publish` makes annotated
`NAME@vX.Y.Z` tags with gto, and refuses unknown names, existing versions and outputs that are not
committed and pushed. Real git, dvc and gto on a tiny registry (tests/registry_fixture.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import REPO

pytest.register_assert_rewrite("registry_fixture")
from registry_fixture import ENV, csxa_data, sh, silent_server  # noqa: E402

pytest_plugins = ["registry_fixture"]


def test_every_variant_and_experiment_is_a_named_artifact():
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    artifacts = dvc_yaml["artifacts"]
    expected = {name: ("dataset", f"data/variants/{name}") for name in params["variants"]}
    expected |= {name: ("model", f"results/{name}/checkpoint.pt") for name in params["experiments"]}
    assert {name: (a["type"], a["path"]) for name, a in artifacts.items()} == expected
    for name, artifact in artifacts.items():
        assert artifact["desc"] and "csxa" in artifact["labels"], name
    # each path is an output of the pipeline, so `dvc push`/`dvc artifacts get` can fetch it
    stage_outs = {f"data/variants/{name}" for name in params["variants"]}
    stage_outs |= {f"results/{name}/checkpoint.pt" for name in params["experiments"]}
    assert {a["path"] for a in artifacts.values()} == stage_outs


def test_dvc_reads_the_artifacts():
    from csxa_data.registry import read_artifacts

    artifacts = read_artifacts(REPO)
    assert artifacts["wide_cropped"].type == "dataset" and artifacts["wide_cropped_resnet"].type == "model"


def test_default_remote_is_configured():
    result = sh("dvc", "remote", "list", cwd=REPO)
    assert "storage" in result.stdout and "(default)" in result.stdout


def test_publish_refuses_an_unknown_artifact_and_a_malformed_version():
    unknown = csxa_data("publish", "no_such_variant", "v1.0.0", "--repo", REPO, cwd=REPO, check=False)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "no artifact 'no_such_variant'" in unknown.stderr and "wide_cropped" in unknown.stderr
    malformed = csxa_data("publish", "wide_cropped", "1.0", "--repo", REPO, cwd=REPO, check=False)
    assert malformed.returncode == 2 and "vMAJOR.MINOR.PATCH" in malformed.stderr


def test_versions_of_a_registry_that_is_not_there_is_one_line(tmp_path):
    missing = csxa_data("versions", "wide_cropped", "--repo", tmp_path / "no-registry", cwd=tmp_path, check=False)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "cannot read versions of 'wide_cropped'" in missing.stderr


# --- third audit: registry commands on hostile repositories ----------------------------------------


def _one_line(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_versions_from_a_git_url_that_never_answers_ends_at_the_timeout(tmp_path):
    """A server that accepts connections and never answers hung `versions NAME --repo URL` for ever;
    then a timed-out read printed a tempfile traceback and left a half-made clone behind."""
    import sys

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with silent_server() as url:
        result = sh(
            sys.executable,
            "-m",
            "csxa_data",
            "versions",
            "wide_cropped",
            "--repo",
            f"{url}/r.git",
            "--timeout",
            "2",
            cwd=tmp_path,
            check=False,
            timeout=120,
            env={**ENV, "TMPDIR": str(scratch)},
        )
    assert "cannot read versions of 'wide_cropped': no answer within 2 s" in _one_line(result)
    assert list(scratch.iterdir()) == []  # the temporary repository is gone


def _tag(repo, *args):
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", *args, cwd=repo)


def test_a_version_tag_on_a_tree_or_not_annotated_is_left_out_with_a_warning(tmp_path):
    """An annotated tag NAME@vX.Y.Z pointing at a tree was an AttributeError traceback from gto that
    blocked every `versions` and `publish` of the artifact; now that tag alone is left out, named."""
    sh("git", "init", "-q", "-b", "main", cwd=tmp_path)
    (tmp_path / "f").write_text("x")
    sh("git", "add", "f", cwd=tmp_path)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=tmp_path)
    _tag(tmp_path, "-a", "-m", "Publish ds v1.0.0", "ds@v1.0.0")
    _tag(tmp_path, "-a", "-m", "x", "ds@v4.0.0", "HEAD^{tree}")
    _tag(tmp_path, "ds@v5.0.0")  # lightweight: DVC and gto do not see it
    result = csxa_data("versions", "ds", "--repo", tmp_path, cwd=tmp_path, check=False)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.split("\t")[0] == "ds@v1.0.0" and first.endswith("\t(latest)")
    assert result.stdout.splitlines()[1:] == ["    Publish ds v1.0.0"]  # each version's title beneath it
    assert result.stderr.strip().splitlines() == [
        "warning: tag ds@v4.0.0 points at a tree, not a commit; left out",
        "warning: tag ds@v5.0.0 is not annotated (DVC and gto see only annotated tags); left out",
    ]


def test_a_damaged_dvc_config_and_odd_pull_arguments_are_one_line(tmp_path):
    """A junk line in .dvc/config.local was a ConfigError traceback in versions, publish and pull;
    pull --repo FILE a NotADirectoryError, --timeout nan a ValueError, and pull --repo MISSING
    said that dvc was not on PATH."""
    sh("git", "init", "-q", "-b", "main", cwd=tmp_path)
    sh("dvc", "init", "-q", cwd=tmp_path)
    (tmp_path / ".dvc" / "config.local").write_text("junk\n")
    for args in (("versions",), ("publish", "ds", "v1.0.0", "--repo", tmp_path)):
        assert "cannot open as a DVC repository (ConfigError: " in _one_line(
            csxa_data(*args, cwd=tmp_path, check=False)
        )
    (tmp_path / "file").write_text("x")
    assert _one_line(csxa_data("pull", "--repo", tmp_path / "file", cwd=tmp_path, check=False)).endswith(
        "file: not a folder (give the repository's root)"
    )
    assert _one_line(csxa_data("pull", "--repo", tmp_path / "missing", cwd=tmp_path, check=False)).endswith(
        "missing: not found"
    )
    for bad in ("nan", "0", "-5", "inf"):
        result = csxa_data("pull", "--timeout", bad, cwd=tmp_path, check=False)
        assert result.returncode == 2 and "argument --timeout" in result.stderr and "Traceback" not in result.stderr


def test_versions_of_an_artifact_the_registry_does_not_name_is_an_error():
    line = _one_line(csxa_data("versions", "no_such_artifact", "--repo", REPO, cwd=REPO, check=False))
    assert "no artifact 'no_such_artifact' in dvc.yaml; known: [" in line and "'wide_cropped'" in line


@pytest.mark.slow
def test_published_version_is_an_annotated_gto_tag(registry):
    root = registry.root
    kind = sh("git", "cat-file", "-t", "wide_cropped@v1.0.0", cwd=root).stdout.strip()
    assert kind == "tag"  # annotated: `dvc artifacts get` ignores lightweight tags
    from gto.api import show

    versions = show(str(root), "wide_cropped", registered_only=True)
    assert "v1.0.0" in [v["version"] for v in versions]  # (v1.1.0 too once a later test publishes it)
    listed = csxa_data("versions", "wide_cropped", "--repo", root, cwd=root)
    assert "wide_cropped@v1.0.0" in listed.stdout


@pytest.mark.slow
def test_publish_refuses_an_existing_version(registry):
    again = csxa_data("publish", "wide_cropped", "v1.0.0", cwd=registry.root, check=False)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "wide_cropped@v1.0.0 is already published" in again.stderr


@pytest.mark.slow
def test_publish_refuses_until_committed_and_pushed(second_version):
    uncommitted, unpushed = second_version.uncommitted, second_version.unpushed
    assert uncommitted.returncode == 2 and len(uncommitted.stderr.strip().splitlines()) == 1, uncommitted.stderr
    assert "uncommitted changes in" in uncommitted.stderr and "dvc.lock" in uncommitted.stderr
    assert unpushed.returncode == 2 and len(unpushed.stderr.strip().splitlines()) == 1, unpushed.stderr
    assert "remote 'storage'" in unpushed.stderr and "lacks" in unpushed.stderr and "dvc push" in unpushed.stderr
    assert second_version.published.returncode == 0
    assert "wide_cropped@v1.1.0" in second_version.published.stdout


@pytest.mark.slow
def test_publish_refuses_a_stage_out_of_date(registry, second_version):
    root = registry.root
    params = (root / "params.yaml").read_text()
    try:
        changed = yaml.safe_load(params)
        changed["variants"]["cropped"]["out_size"] = 40
        (root / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
        stale = csxa_data("publish", "cropped", "v1.0.0", cwd=root, check=False)
    finally:
        (root / "params.yaml").write_text(params)
    assert stale.returncode == 2 and "not up to date with dvc.lock" in stale.stderr, stale.stderr


@pytest.mark.slow
def test_consumer_pinning_a_missing_version_is_told_which_exist(registry, second_version):
    missing = csxa_data(
        "versions", "wide_cropped", "--repo", registry.root, "--check", "v9.9.9", cwd=registry.base.parent, check=False
    )
    assert missing.returncode == 2, missing.stderr
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "wide_cropped@v9.9.9 is not published" in lines[0]
    assert "v1.0.0, v1.1.0" in lines[0]
    found = csxa_data("versions", "wide_cropped", "--repo", registry.root, "--check", "v1.0.0", cwd=registry.root)
    assert found.returncode == 0


@pytest.mark.slow
def test_ingest_metrics_are_in_git_so_a_clone_shows_them(registry):
    """`dvc metrics show` in a fresh clone (nothing pulled) reads the ingest metrics from git: no `!`."""
    clone = registry.base / "metrics-clone"
    sh("git", "clone", "-q", registry.root, clone, cwd=registry.root.parent)
    committed = json.loads((clone / "metrics/ingest.json").read_text())
    assert committed == json.loads((registry.root / "data/ingest/validation.json").read_text())
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=clone).stdout)[""]
    assert "error" not in shown and shown["data"]["metrics/ingest.json"]["data"]["kept"] == committed["kept"]
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["ingest"]
    assert [next(iter(m)) for m in stage["metrics"]] == ["metrics/ingest.json"]


def test_check_release_and_contact_sheet_default_the_release_from_params(tiny_synth, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ingest": {"release": str(tiny_synth / "release")}}))
    checked = csxa_data("check-release", "--params", params, cwd=tmp_path)
    assert "datasets.xlsx" in checked.stdout or checked.stdout.strip()
    csxa_data("contact-sheet", "--params", params, "--out", tmp_path / "sheet.png", "--per-class", "1", cwd=tmp_path)
    assert (tmp_path / "sheet.png").stat().st_size > 0
    params.write_text(yaml.safe_dump({"ingest": {}}))
    missing = csxa_data("check-release", "--params", params, cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "no --release given and no ingest.release" in missing.stderr
