"""A tiny data registry built once per test session with the real git, dvc and gto: a committed copy
of the project with tiny params, two variants and one model built, pushed to a local-folder remote,
and `wide_cropped@v1.0.0` and `wide_cropped_resnet@v1.0.0` published. Loaded by the registry and
consumer tests through ``pytest_plugins``, so both share one build."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers import fresh_clone, tiny_params

IDENTITY = {
    "GIT_AUTHOR_NAME": "Registry Test",
    "GIT_AUTHOR_EMAIL": "registry@test",
    "GIT_COMMITTER_NAME": "Registry Test",
    "GIT_COMMITTER_EMAIL": "registry@test",
}
ENV = {**os.environ, **IDENTITY, "DVC_NO_ANALYTICS": "1"}


def sh(*args, cwd, check=True, timeout=300, env=None) -> subprocess.CompletedProcess:
    """Run a command (git, dvc, csxa-data, csxa-train...) as a user would; fail with its output."""
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, f"{' '.join(map(str, args))}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def csxa_data(*args, cwd, check=True, timeout=300):
    return sh(sys.executable, "-m", "csxa_data", *args, cwd=cwd, check=check, timeout=timeout)


def csxa_train(*args, cwd, check=True, timeout=300):
    return sh(sys.executable, "-m", "csxa_train", *args, cwd=cwd, check=check, timeout=timeout)


FIT_TINY = (
    "--model",
    "smallcnn",
    "--weights",
    "none",
    "--epochs",
    "1",
    "--image-size",
    "32",
    "--workers",
    "0",
    "--batch-size",
    "16",
)


@dataclass
class Registry:
    root: Path  # the registry's git repository (a data steward's clone)
    remote: Path  # its local-folder DVC remote
    base: Path  # a scratch folder for consumers


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    base = tmp_path_factory.mktemp("registry")
    root, remote = base / "csxa", base / "remote"
    root.mkdir()
    fresh_clone(root)
    tiny_params(root)
    # the data steward's step from the README: point the default remote at the team's storage
    sh("dvc", "remote", "modify", "storage", "url", remote, cwd=root)
    sh("git", "commit", "-qam", "tiny params; remote", cwd=root)
    sh("dvc", "repro", "variant@wide_cropped", "variant@cropped", "train@wide_cropped_resnet", cwd=root, timeout=600)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "build wide_cropped, cropped and wide_cropped_resnet", cwd=root)
    sh("dvc", "push", cwd=root)
    csxa_data("publish", "wide_cropped", "v1.0.0", cwd=root)
    csxa_data("publish", "wide_cropped_resnet", "v1.0.0", cwd=root)
    return Registry(root, remote, base / "consumers")


@dataclass
class SecondVersion:
    uncommitted: subprocess.CompletedProcess  # publish before committing dvc.lock
    unpushed: subprocess.CompletedProcess  # publish before `dvc push`
    published: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def second_version(registry) -> SecondVersion:
    """The steward publishes wide_cropped@v1.1.0 (wider crop), trying too early twice on the way."""
    root = registry.root
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["variants"]["wide_cropped"]["grow_x"] = 40
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", "variant@wide_cropped", cwd=root)
    uncommitted = csxa_data("publish", "wide_cropped", "v1.1.0", cwd=root, check=False)
    sh("git", "commit", "-qam", "wide_cropped: grow_x 40", cwd=root)
    unpushed = csxa_data("publish", "wide_cropped", "v1.1.0", cwd=root, check=False)
    sh("dvc", "push", "data/variants/wide_cropped", cwd=root)
    published = csxa_data("publish", "wide_cropped", "v1.1.0", cwd=root)
    return SecondVersion(uncommitted, unpushed, published)


def consumer_dir(registry: Registry, name: str) -> Path:
    path = registry.base / name
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def serve(folder: Path):
    """A read-only static HTTP server on 127.0.0.1 (a free port) over ``folder``; yields its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server():
    """A server on 127.0.0.1 that accepts connections and never answers; yields its URL."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []

    def hold():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()


@pytest.fixture
def http_mirror(registry):
    """A read-only HTTP server over the registry's remote folder."""
    with serve(registry.remote) as url:
        yield url
