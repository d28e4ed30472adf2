"""Other teams' paths into the registry, end to end with the real git, dvc and gto: the README's
"For other teams" commands run verbatim (clone and pull one variant, `dvc artifacts get`, `dvc
import` pinned to a version, train, `dvc update` to the next version), an import by path, pulls
through a read-only HTTP mirror and an S3-compatible server, and an unreachable remote."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO

pytest.register_assert_rewrite("registry_fixture")
from registry_fixture import ENV, consumer_dir, csxa_data, serve, sh, silent_server  # noqa: E402

pytest_plugins = ["registry_fixture"]
pytestmark = pytest.mark.slow  # end to end with git, dvc and gto (one shared registry)

VARIANT = "data/variants/wide_cropped"


def readme_block(name: str) -> str:
    """The README command block marked ``<!-- command: NAME -->``, exactly as written."""
    text = (REPO / "docs" / "consumers.md").read_text()
    match = re.search(rf"<!-- command: {re.escape(name)} -->\s*```bash\n(.+?)\n```", text, re.S)
    assert match, f"README has no '{name}' command block"
    return match.group(1).strip()


def run_readme(name: str, cwd: Path, registry, **env: str) -> subprocess.CompletedProcess:
    """Run a "For other teams" block verbatim in bash, with REGISTRY naming the test registry."""
    result = subprocess.run(
        ["bash", "-c", readme_block(name)],
        cwd=cwd,
        env={**ENV, "REGISTRY": str(registry.root), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"README block {name}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def assert_intact_variant(folder: Path, grow_x: float | None = None) -> dict:
    """Every shard listed in shards.json is present with its sha256; returns shards.json."""
    manifest = json.loads((folder / "shards.json").read_text())
    for shard in manifest["shards"]:
        digest = hashlib.sha256((folder / shard["name"]).read_bytes()).hexdigest()
        assert digest == shard["sha256"], shard["name"]
    assert (folder / "stats.json").is_file()
    if grow_x is not None:
        assert manifest["spec"]["grow_x"] == grow_x
    return manifest


def test_for_other_teams_commands_verbatim(registry, request):
    """The README's consumer commands, in order, as a team would type them."""
    home = consumer_dir(registry, "readme")
    assert re.search(r"^csxa-data versions wide_cropped", readme_block("versions"))
    listed = run_readme("versions", home, registry)
    assert "wide_cropped@v1.0.0" in listed.stdout

    # clone the registry and pull one variant only: not the other variants, not the raw release
    run_readme("clone-pull", home, registry)
    clone = home / "csxa"
    assert_intact_variant(clone / VARIANT)
    assert not (clone / "data/variants/cropped").exists()
    assert not (clone / "data/synthetic").exists() and not (clone / "data/ingest").exists()
    status = sh("dvc", "status", "variant@cropped", "ingest", cwd=clone).stdout
    assert "deleted:" in status and "data/variants/cropped" in status and "manifest.csv" in status, status
    run_readme("fit-pulled", home, registry)
    metrics = json.loads((clone / "results/wide_cropped_resnet/metrics.json").read_text())
    test_cases = json.loads((clone / VARIANT / "shards.json").read_text())["totals"]["test"]["samples"]
    assert metrics["n"] == test_cases and "balanced_accuracy" in metrics

    # a pinned artifact version, fetched without git or DVC in the consumer's folder
    run_readme("artifacts-get", home, registry)
    assert_intact_variant(home / "wide_cropped-v1.0.0", grow_x=30)

    # import into another git repository, pinned; train; then move to the next published version
    run_readme("import", home, registry)
    project = home / "my-project"
    assert_intact_variant(project / "data/wide_cropped", grow_x=30)
    assert "rev: wide_cropped@v1.0.0" in (project / "data/wide_cropped.dvc").read_text()
    run_readme("fit-imported", home, registry)
    assert (project / "results/check/metrics.json").is_file()

    # stream a published version straight into training: no clone, no pull, no import
    test_cases = json.loads((project / "data/wide_cropped/shards.json").read_text())["totals"]["test"]["samples"]
    run_readme("fit-streamed", home, registry)
    assert json.loads((home / "results/streamed/metrics.json").read_text())["n"] == test_cases
    assert not (home / "data").exists() and not (home / ".dvc").exists()
    # and from a static HTTP mirror of the variant folders
    with serve(clone / "data/variants") as mirror:
        run_readme("fit-mirror", home, registry, MIRROR=mirror)
    assert json.loads((home / "results/mirrored/metrics.json").read_text())["n"] == test_cases
    request.getfixturevalue("second_version")  # the registry publishes wide_cropped@v1.1.0
    run_readme("update", home, registry)
    assert_intact_variant(project / "data/wide_cropped", grow_x=40)
    assert "rev: wide_cropped@v1.1.0" in (project / "data/wide_cropped.dvc").read_text()
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=project).stdout == ""
    changed = run_readme("diff", home, registry).stdout
    assert "## wide_cropped: v1.0.0 -> v1.1.0" in changed and "- moved split: none" in changed
    assert "- params.yaml:variants.wide_cropped.grow_x: 30 -> 40" in changed and "- added: 0" in changed


def test_import_by_path_follows_the_registry(registry):
    project = consumer_dir(registry, "by-path")
    sh("git", "init", "-q", cwd=project)
    sh("dvc", "init", "-q", cwd=project)
    (project / "data").mkdir()
    sh("dvc", "import", registry.root, VARIANT, "-o", "data/wide_cropped", cwd=project)
    head = sh("git", "rev-parse", "HEAD", cwd=registry.root).stdout.strip()
    assert f"rev_lock: {head}" in (project / "data/wide_cropped.dvc").read_text()
    assert_intact_variant(project / "data/wide_cropped")  # training on an import: the README test


def test_artifacts_get_a_published_model(registry):
    home = consumer_dir(registry, "model")
    sh("dvc", "artifacts", "get", registry.root, "wide_cropped_resnet", "--rev", "v1.0.0", "-o", "model.pt", cwd=home)
    committed = registry.root / "results/wide_cropped_resnet/checkpoint.pt"
    assert (home / "model.pt").read_bytes() == committed.read_bytes()


def test_pull_through_a_read_only_http_mirror(registry, http_mirror):
    clone = consumer_dir(registry, "http") / "csxa"
    sh("git", "clone", "-q", registry.root, clone, cwd=registry.base)
    sh("dvc", "remote", "add", "-d", "--local", "web", http_mirror, cwd=clone)
    pulled = sh("dvc", "pull", VARIANT, cwd=clone)
    assert "files fetched" in pulled.stdout or "fetched" in pulled.stdout, pulled.stdout
    assert_intact_variant(clone / VARIANT)
    assert not (clone / "data/variants/cropped").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_pull_from_an_unreachable_remote_fails_fast_with_a_hint(registry):
    clone = consumer_dir(registry, "unreachable") / "csxa"
    sh("git", "clone", "-q", registry.root, clone, cwd=registry.base)
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    sh("dvc", "remote", "add", "-d", "--local", "web", url, cwd=clone)
    failed = csxa_data("pull", VARIANT, "--timeout", "60", cwd=clone, check=False, timeout=120)
    assert failed.returncode == 2, failed.stderr
    hint = failed.stderr.strip().splitlines()[-1]
    assert hint.startswith("csxa-data: error: ") and "dvc pull failed" in hint
    assert f"remote 'web' ({url}) cannot be reached: connection refused (nothing listens" in hint
    assert "dvc remote modify --local web url" in hint
    assert not (clone / VARIANT).exists()


@contextlib.contextmanager
def answering(status: int):
    """A loopback HTTP server that answers every request with ``status`` (401: credentials wanted)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self):
            self.send_response(status)
            self.send_header("WWW-Authenticate", 'Basic realm="csxa"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = answer

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["authentication", "missing folder", "empty mirror"])
def test_pull_names_the_real_reason(registry, tmp_path, kind):
    """Fourth audit: a refused or unroutable address was "nothing there (the folder or bucket does not
    exist)". Each reason is named: refused (above), timed out (below), authentication, a folder that
    does not exist, and a remote that answers but lacks the files."""
    clone = consumer_dir(registry, f"reason-{kind.replace(' ', '-')}") / "csxa"
    sh("git", "clone", "-q", registry.root, clone, cwd=registry.base)
    with contextlib.ExitStack() as stack:
        if kind == "authentication":
            url = stack.enter_context(answering(401))
        elif kind == "missing folder":
            url = str(tmp_path / "no-such-remote")
        else:
            (tmp_path / "empty").mkdir()
            url = stack.enter_context(serve(tmp_path / "empty"))
        sh("dvc", "remote", "add", "-d", "--local", "web", url, cwd=clone)
        failed = csxa_data("pull", VARIANT, "--timeout", "60", cwd=clone, check=False, timeout=120)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    hint = failed.stderr.strip().splitlines()[-1]
    expected = {
        "authentication": f"remote 'web' ({url}) cannot be reached: authentication refused (HTTP 401)",
        "missing folder": f"remote 'web' ({url}) cannot be reached: nothing there (the folder or bucket does not",
        "empty mirror": f"remote 'web' ({url}) answers but lacks {VARIANT} (its listing)",
    }[kind]
    assert expected in hint, hint
    assert not (clone / VARIANT).exists()


def test_pull_from_a_remote_that_is_a_file_says_so(registry):
    """Third audit: a remote URL naming a file got 'answers, so it lacks some of these files: ask the
    data steward to dvc push them'."""
    clone = consumer_dir(registry, "file-remote") / "csxa"
    sh("git", "clone", "-q", registry.root, clone, cwd=registry.base)
    (clone.parent / "not-a-folder").write_text("x")
    sh("dvc", "remote", "add", "-d", "--local", "mine", clone.parent / "not-a-folder", cwd=clone)
    failed = csxa_data("pull", VARIANT, "--timeout", "60", cwd=clone, check=False, timeout=120)
    hint = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 2 and "cannot be reached: it is a file, not a folder" in hint, hint


def test_pull_from_a_stalled_mirror_stops_at_the_timeout_with_a_hint(registry):
    """A server that accepts connections and never answers: `csxa-data pull` stops at --timeout."""
    with silent_server() as url:
        clone = consumer_dir(registry, "stalled") / "csxa"
        sh("git", "clone", "-q", registry.root, clone, cwd=registry.base)
        sh("dvc", "remote", "add", "-d", "--local", "web", url, cwd=clone)
        started = time.monotonic()
        failed = csxa_data("pull", VARIANT, "--timeout", "4", cwd=clone, check=False, timeout=60)
        elapsed = time.monotonic() - started
    assert failed.returncode == 2, failed.stderr
    hint = failed.stderr.strip().splitlines()[-1]
    assert "dvc pull gave no result within 4 s" in hint and "no answer within 4 s" in hint, hint
    assert elapsed < 30


@pytest.fixture
def s3_server():
    """moto's S3 in server mode on 127.0.0.1 (as DVC's S3 plugin tests use it)."""
    try:
        import dvc_s3  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"S3 test needs the `s3` extra (dvc-s3) and moto[server]: {exc}")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - any failure to start is a reason to skip, said plainly
        pytest.skip(f"moto S3 server could not start on 127.0.0.1: {exc}")
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_push_and_pull_through_s3(registry, s3_server, monkeypatch):
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    env = {**ENV, **creds}
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="csxa-registry")
    root = registry.root
    add = [
        ["dvc", "remote", "add", "--local", "s3", "s3://csxa-registry/dvc"],
        ["dvc", "remote", "modify", "--local", "s3", "endpointurl", s3_server],
    ]
    try:
        for cmd in add:
            sh(*cmd, cwd=root, env=env)
        sh("dvc", "push", "-r", "s3", VARIANT, cwd=root, env=env)
    finally:
        (root / ".dvc/config.local").unlink(missing_ok=True)
    stored = boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket="csxa-registry")["KeyCount"]
    assert stored >= 8  # the directory listing and each shard, stats.json, shards.json, preview

    clone = consumer_dir(registry, "s3") / "csxa"
    sh("git", "clone", "-q", root, clone, cwd=registry.base, env=env)
    for cmd in add:
        sh(*cmd, cwd=clone, env=env)
    sh("dvc", "pull", "-r", "s3", VARIANT, cwd=clone, env=env)
    assert_intact_variant(clone / VARIANT)
    assert os.listdir(clone / "data/variants") == ["wide_cropped"]
