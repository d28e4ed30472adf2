"""Every shard source (folder, HTTP mirror, registry revision) verified the same way, against a
real HTTP server on 127.0.0.1 that misbehaves on demand and a real git + DVC registry."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from csxa_data.errors import CsxaError, SourceError
from csxa_data.shards.sources import SourceParams, open_source, registry_spec
from csxa_data.shards.verify import verify
from csxa_data.synthetic.generate import SynthParams
from csxa_data.variants.spec import BuildParams, VariantSpec
from csxa_train.data import eval_loader, load_split

from helpers import tiny_variant

TINY = SynthParams(seed=5, cases=48, size_scale=0.2, asymptomatic_fraction=0.25)
FAST = SourceParams(timeout=1.5, retries=1)


@pytest.fixture(scope="module")
def variant(tmp_path_factory) -> Path:
    return tiny_variant(
        tmp_path_factory.mktemp("sources"),
        TINY,
        "cropped",
        VariantSpec(crop="landmarks", out_size=32),
        BuildParams(shard_size=12, min_shards=2),
    )


# --- a static mirror that misbehaves on demand -------------------------------------------------


class Mirror:
    """A threaded HTTP server over a folder; ``faults`` maps a file name to what goes wrong."""

    def __init__(self, folder: Path):
        self.folder, self.faults, self.requests, self.sent = folder, {}, [], {}
        self.stop = threading.Event()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                mirror.requests.append(name)
                fault = mirror.faults.get(name, mirror.faults.get("*", ""))
                if fault in ("404", "503"):
                    self.send_error(int(fault))
                    return
                if fault in ("endless", "endless_junk"):
                    self.endless(name, b"" if fault == "endless_junk" else (mirror.folder / name).read_bytes())
                    return
                if fault in ("trickle", "trickle_headers", "long_header", "redirect_loop"):
                    self.misbehave(fault)
                    return
                if fault == "huge":  # a gigabyte announced, zeros streamed until the client gives up
                    self.send_response(200)
                    self.send_header("Content-Length", str(1 << 30))
                    self.end_headers()
                    block = b"\0" * (1 << 20)
                    try:
                        for _ in range(1024):
                            self.wfile.write(block)
                    except OSError:
                        pass
                    return
                source = mirror.folder / (fault[5:] if fault.startswith("swap:") else name)
                if not source.is_file():
                    self.send_error(404)
                    return
                data = source.read_bytes()
                if fault == "truncate":
                    data = data[: len(data) // 2]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault == "stall":  # headers, a little, then silence
                    self.wfile.write(data[:100])
                    self.wfile.flush()
                    mirror.stop.wait(60)
                    return
                self.wfile.write(data)

            def endless(self, name, data):
                """``data`` (a whole shard, or nothing) then random bytes until the client hangs up;
                no Content-Length, so only the server's closing would end the body."""
                self.send_response(200)
                self.end_headers()
                block = os.urandom(1 << 16)
                mirror.sent[name] = 0
                try:
                    self.wfile.write(data)
                    while not mirror.stop.is_set():
                        self.wfile.write(block)
                        mirror.sent[name] += len(block)
                except OSError:
                    pass

            def misbehave(self, fault):
                head = b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n"
                if fault == "redirect_loop":
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.end_headers()
                    return
                if fault == "long_header":  # longer than any line http.client accepts (64 KiB)
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Pad: " + b"a" * 70000 + b"\r\n\r\n")
                    return
                if fault == "trickle":
                    self.wfile.write(head)
                    head = b""
                try:  # a byte at a time, each well within the read timeout, until the client gives up
                    for byte in (head or b"{" * 100000)[:200]:
                        if mirror.stop.wait(0.25):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(variant):
    server = Mirror(variant)
    yield server
    server.close()


def test_a_mirror_streams_the_same_verified_samples_as_the_folder(variant, mirror):
    source = open_source(mirror.url, FAST)
    remote_images, remote_labels, remote_keys = load_split(source, "train")
    local_images, local_labels, local_keys = load_split(variant, "train")
    assert remote_keys == local_keys and np.array_equal(remote_images, local_images)
    assert np.array_equal(remote_labels, local_labels)
    assert [k for batch in eval_loader(source, 8, 2) for k in batch["key"]] == [
        k for batch in eval_loader(variant, 8, 0) for k in batch["key"]
    ]
    assert verify(source)["totals"]["test"]["samples"] > 0


@pytest.mark.parametrize(
    "name, fault, expected",
    [
        ("train-000000.tar", "truncate", "train-000000.tar: "),
        ("train-000001.tar", "swap:train-000000.tar", "train-000001.tar: sha256 differs from shards.json"),
        ("test-000000.tar", "404", "test-000000.tar: HTTP 404"),
        ("test-000001.tar", "503", "test-000001.tar: HTTP 503 Service Unavailable, after 2 tries"),
        ("shards.json", "huge", "shards.json: larger than the 16,777,216-byte limit"),
        ("stats.json", "404", "stats.json: HTTP 404"),
    ],
)
def test_a_misbehaving_mirror_is_one_clear_error_naming_the_file(mirror, name, fault, expected):
    mirror.faults[name] = fault
    start = time.monotonic()
    with pytest.raises(CsxaError) as error:
        verify(open_source(mirror.url, FAST))
    assert expected in str(error.value)
    assert time.monotonic() - start < 10


def test_a_server_that_stalls_after_its_headers_ends_training_within_the_timeout(variant, mirror, tmp_path):
    mirror.faults["train-000001.tar"] = "stall"
    (tmp_path / "params.yaml").write_text("sources:\n  timeout: 2\n  retries: 1\n")
    out = tmp_path / "out"
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "fit",
            "--params",
            str(tmp_path / "params.yaml"),
            "--variant",
            mirror.url,
            "--out",
            str(out),
            "--model",
            "smallcnn",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "train-000001.tar: the server stopped sending for 2 s (sources.timeout)" in last
    assert elapsed < 60
    assert not out.exists(), "nothing may be written when the source is bad"


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("trickle", "shards.json: the server sent "),
        ("trickle_headers", "shards.json: no status and headers within 1.5 s (sources.timeout), after 2 tries"),
        ("long_header", "shards.json: not a usable HTTP answer (LineTooLong: "),
        (
            "redirect_loop",
            "shards.json: HTTP 302 The HTTP server returned a redirect error that would lead to an "
            "infinite loop. The last 30x error message was: Found; is this a published csxa variant?",
        ),
    ],
)
def test_a_trickling_or_malformed_server_is_one_line_within_the_limits(mirror, fault, expected):
    """A byte every quarter second never trips a 1.5 s read timeout; the minimum rate over the time
    spent waiting (body) and the deadline on the status and headers do."""
    mirror.faults["shards.json"] = fault
    start = time.monotonic()
    with pytest.raises(CsxaError) as error:
        verify(open_source(mirror.url, FAST))
    assert time.monotonic() - start < 15
    assert expected in str(error.value) and len(str(error.value).splitlines()) == 1, str(error.value)
    if fault == "trickle":
        assert "under sources.min_rate (10,000 bytes/s)" in str(error.value)


def test_a_fifo_or_a_deeply_nested_json_in_a_variant_folder_is_one_line(variant, tmp_path):
    copy = Path(shutil.copytree(variant, tmp_path / "variant"))
    (copy / "test-000000.tar").unlink()
    os.mkfifo(copy / "test-000000.tar")  # opening it would wait for a writer for ever
    start = time.monotonic()
    with pytest.raises(CsxaError, match=r"test-000000.tar: is not a regular file \(a FIFO, a device or a folder\)"):
        verify(copy)
    assert time.monotonic() - start < 10
    (copy / "stats.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CsxaError, match=r"stats.json: not valid JSON \(RecursionError: "):
        verify(copy)


# --- hostile local variants: the bytes match shards.json but the contents lie ------------------


def rewrite_shard(folder: Path, name: str, members: list[tuple[str, bytes]], *, recount: bool) -> None:
    """Replace a shard's members, update its sha256 in shards.json, and its counts if ``recount``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (folder / name).write_bytes(buffer.getvalue())
    report = json.loads((folder / "shards.json").read_text())
    entry = next(s for s in report["shards"] if s["name"] == name)
    entry["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    if recount:
        labels = [int(d) for m, d in members if m.endswith(".cls")]
        old = entry["by_class"]
        entry["samples"], entry["by_class"] = (
            len(labels),
            {c: labels.count(int(c)) for c in ("0", "1") if c in labels or c in old},
        )
        totals = report["totals"][entry["split"]]
        split_shards = [s for s in report["shards"] if s["split"] == entry["split"]]
        totals["samples"] = sum(s["samples"] for s in split_shards)
        totals["by_class"] = {c: sum(s["by_class"].get(c, 0) for s in split_shards) for c in ("0", "1")}
    (folder / "shards.json").write_text(json.dumps(report))


def members_of(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]


@pytest.fixture
def copy(variant, tmp_path) -> Path:
    return Path(shutil.copytree(variant, tmp_path / "variant"))


@pytest.mark.parametrize("fault", ["endless", "endless_junk"])
def test_a_shard_followed_by_endless_bytes_is_one_line_and_read_no_further(mirror, fault):
    """Fourth audit: a valid tar followed by endless bytes (or endless random bytes) was buffered to the
    end of the stream until MemoryError. The reader stops at the end of the archive and reads at most
    1 MiB of what follows (64 MiB, discarded as read, after a broken archive, to tell a damaged download)."""
    mirror.faults["train-000000.tar"] = fault
    with pytest.raises(CsxaError) as error:
        verify(open_source(mirror.url, FAST))
    message = str(error.value)
    assert message.startswith(f"{mirror.url}/train-000000.tar: ") and "\n" not in message
    if fault == "endless":
        assert "more than 1,048,576 bytes other than zero padding follow the end of the archive" in message
    else:
        assert "not a readable tar" in message or "checksum" in message, message
    mirror.close()  # the server stops writing once the client has gone
    assert mirror.sent["train-000000.tar"] < (80 << 20)


def test_a_local_shard_padded_with_gigabytes_is_refused_without_reading_them(copy):
    """Fourth audit: a shard padded with 3 GiB of zeros peaked at 6.9 GB before its sha256 line. The
    padding past 1 MiB is not read: the file (sparse, nothing on disk) is refused in a process whose
    peak memory stays that of reading the clean variant."""
    script = (
        "import resource, sys\n"
        "from csxa_data.errors import CsxaError\n"
        "from csxa_data.shards.verify import verify\n"
        "try:\n"
        "    verify(sys.argv[1])\n"
        "    print('verified')\n"
        "except CsxaError as exc:\n"
        "    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )

    def run() -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", script, str(copy)], capture_output=True, text=True, timeout=300)
        message, peak = out.stdout.strip().rsplit("\n", 1)
        return message, int(peak)

    clean_message, clean_peak = run()
    assert clean_message == "verified"
    shard = copy / "train-000000.tar"
    os.truncate(shard, shard.stat().st_size + (3 << 30))
    message, peak = run()
    assert message == (
        f"{shard}: more than 1,048,576 bytes follow the end of the archive (a shard ends with at most "
        "1 MiB of zeros): a damaged or altered shard; not read further"
    )
    assert peak < clean_peak + 64 * 1024  # KiB: within 64 MiB of the clean run


def test_a_train_shard_cut_at_a_member_boundary_is_refused_by_its_counts(copy):
    members = members_of(copy / "train-000000.tar")
    rewrite_shard(copy, "train-000000.tar", members[:-6], recount=False)  # two samples fewer, sha256 matching
    with pytest.raises(CsxaError, match=r"train-000000.tar: holds \d+ samples .*; shards.json lists"):
        load_split(copy, "train")


def test_test_samples_in_a_train_shard_never_reach_training(copy):
    rewrite_shard(copy, "train-000000.tar", members_of(copy / "test-000000.tar"), recount=True)
    with pytest.raises(CsxaError, match="belongs to the 'test' split but is in a train shard"):
        load_split(copy, "train")


def test_a_sample_key_that_is_not_a_stem_is_refused(copy):
    members = [
        (name.replace(name.split(".")[0], "=HYPERLINK(1)") if i < 3 else name, data)
        for i, (name, data) in enumerate(members_of(copy / "test-000000.tar"))
    ]
    rewrite_shard(copy, "test-000000.tar", members, recount=False)
    with pytest.raises(CsxaError, match=r"sample key '=HYPERLINK\(1\)' is not a 7-digit stem"):
        verify(copy)


def test_an_image_of_another_size_is_named(copy):
    from PIL import Image

    members = members_of(copy / "test-000000.tar")
    buffer = io.BytesIO()
    Image.new("L", (40, 32)).save(buffer, format="PNG")
    members[2] = (members[2][0], buffer.getvalue())
    rewrite_shard(copy, "test-000000.tar", members, recount=False)
    with pytest.raises(CsxaError, match=r"is 40x32 px; every image of this variant is 32x32"):
        verify(copy)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda r: r.pop("totals"), "'totals' must hold 'train' and 'test'"),
        (lambda r: r["shards"][0].update(sha256="x" * 64), "sha256 must be 64 lower-case hex digits"),
        (lambda r: r["shards"][0].update(name="../../etc/passwd"), "is not SPLIT-NNNNNN.tar"),
        (lambda r: r["totals"]["train"].update(samples=r["totals"]["train"]["samples"] + 1), "differ from the sum"),
        (lambda r: r["shards"][0].update(samples=True), "counts that agree"),
    ],
)
def test_a_malformed_shards_json_is_refused_before_anything_is_read(copy, change, expected):
    report = json.loads((copy / "shards.json").read_text())
    change(report)
    (copy / "shards.json").write_text(json.dumps(report))
    with pytest.raises(CsxaError, match="not a valid csxa shards.json") as error:
        verify(copy)
    assert expected in str(error.value)


@pytest.mark.parametrize(
    "stats, expected",
    [
        ('{"mean": [NaN, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}', "NaN is not a number"),
        ('{"mean": [0.5, 0.5, 0.5], "std": [0.2, Infinity, 0.2]}', "Infinity is not a number"),
        ('{"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.0000001, 0.2]}', "std must be at least 1e-6"),
        ('{"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}', "mean must be three finite numbers"),
        ('{"mean": [true, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}', "mean must be three finite numbers"),
    ],
)
def test_bad_normalisation_statistics_are_refused_naming_the_file(copy, stats, expected):
    (copy / "stats.json").write_text(stats)
    with pytest.raises(CsxaError, match="stats.json") as error:
        verify(copy)
    assert expected in str(error.value)


# --- a registry revision, read without a clone -------------------------------------------------


def git(*args, cwd):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def dvc(*args, cwd):
    result = subprocess.run(
        ["dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def registry(variant, tmp_path_factory) -> Path:
    """A git + DVC repository holding the variant, pushed to a local remote, tagged v1.0.0."""
    root = tmp_path_factory.mktemp("registry")
    repo, remote = root / "repo", root / "remote"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    dvc("init", "-q", cwd=repo)
    dvc("remote", "add", "-d", "store", str(remote), cwd=repo)
    shutil.copytree(variant, repo / "data/variants/cropped")
    dvc("add", "data/variants/cropped", cwd=repo)
    dvc("push", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "cropped v1.0.0", cwd=repo)
    git("tag", "-a", "cropped@v1.0.0", "-m", "Registering artifact cropped version v1.0.0", cwd=repo)
    shutil.rmtree(repo / ".dvc" / "cache")  # the bytes must come from the remote
    return repo


def test_a_registry_revision_streams_verified_samples_without_a_clone(registry, variant, tmp_path):
    source = open_source(registry_spec(str(registry), "data/variants/cropped", "cropped@v1.0.0"))
    images, labels, keys = load_split(source, "train")
    local = load_split(variant, "train")
    assert keys == local[2] and np.array_equal(images, local[0])
    out = tmp_path / "fit"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "fit",
            "--variant",
            source.spec,
            "--out",
            str(out),
            "--model",
            "smallcnn",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--workers",
            "0",
            "--image-size",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        json.loads((out / "metrics.json").read_text())["n"]
        == json.loads((variant / "shards.json").read_text())["totals"]["test"]["samples"]
    )


def test_a_registry_whose_http_remote_stalls_stops_within_the_source_timeout(registry, tmp_path):
    """DVC's HTTP remote waits 60 s for each read, five tries; a registry source now hands its
    remote sources.timeout as the read and connect timeouts, so a stalled remote ends in one line
    within seconds."""
    copy = tmp_path / "repo"
    shutil.copytree(registry, copy)
    server = Mirror(registry.parent / "remote")
    server.faults["*"] = "stall"  # headers and 100 bytes of every file, then silence
    try:
        dvc("remote", "modify", "store", "url", server.url, cwd=copy)
        git("commit", "-qam", "the remote behind a web server", cwd=copy)
        source = open_source(
            registry_spec(str(copy), "data/variants/cropped", "HEAD"), SourceParams(timeout=1, retries=0)
        )
        started = time.monotonic()
        with pytest.raises(SourceError) as error:
            load_split(source, "train")
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert elapsed < 20, (elapsed, str(error.value))
    assert str(error.value).count("\n") == 0 and "data/variants/cropped" in str(error.value), str(error.value)
    assert "cannot fetch from the registry's remote (no answer within 1 s (sources.timeout): " in str(error.value)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://dvc.example.org/store", {"connect_timeout": 2.5, "read_timeout": 2.5}),
        ("s3://bucket/store", {"connect_timeout": 3, "read_timeout": 3}),
        ("/srv/store", {}),
        ("../store", {}),
        (None, {}),
    ],
)
def test_remote_timeouts_are_given_as_each_kind_of_remote_takes_them(url, expected):
    from csxa_data.shards.sources import remote_timeouts

    config = {"core": {"remote": "store"} if url else {}, "remote": {"store": {"url": url}} if url else {}}
    assert remote_timeouts(config, 2.5) == expected


def test_a_version_that_does_not_exist_names_those_that_do(registry):
    source = open_source(registry_spec(str(registry), "data/variants/cropped", "cropped@v9.9.9"))
    with pytest.raises(
        CsxaError,
        match=r"no version 'cropped@v9.9.9' in the registry; published versions of "
        r"cropped: v1.0.0",
    ):
        load_split(source, "train")


# --- the second audit: cases across shards and splits, checked before training ----------------


def with_meta(members: list[tuple[str, bytes]], key: str, new_key: str | None = None, **meta) -> list:
    """One sample's members (``key``), renamed to ``new_key`` and its JSON fields changed."""
    out = []
    for name, data in members:
        stem, kind = name.split(".", 1)
        if stem != key:
            continue
        if kind == "json":
            data = json.dumps({**json.loads(data), **meta}).encode()
        out.append((f"{new_key or key}.{kind}", data))
    return out


def test_a_test_case_relabelled_train_in_a_train_shard_is_refused_before_training(copy):
    from csxa_train.data import preflight

    test = members_of(copy / "test-000000.tar")
    key = test[0][0].split(".")[0]
    train = members_of(copy / "train-000000.tar")
    rewrite_shard(copy, "train-000000.tar", train + with_meta(test, key, split="train"), recount=True)
    test_cases = preflight(copy)
    with pytest.raises(
        CsxaError,
        match=rf"train-000000.tar: case {int(key[:4])} is in the test split .* and in the "
        r"train split .*: refused, so that no test case reaches training",
    ):
        load_split(copy, "train", test_cases)


def test_a_test_case_twice_under_another_key_is_refused_before_scoring(copy):
    from csxa_train.data import preflight

    test = members_of(copy / "test-000000.tar")
    key = test[0][0].split(".")[0]
    other = members_of(copy / "test-000001.tar")
    rewrite_shard(copy, "test-000001.tar", other + with_meta(test, key, f"{key}_a"), recount=True)
    with pytest.raises(CsxaError, match=rf"test-000001.tar: case {int(key[:4])} has two samples in the test split"):
        preflight(copy)


def test_a_case_number_that_disagrees_with_its_key_is_refused(copy):
    from csxa_train.data import preflight

    test = members_of(copy / "test-000000.tar")
    key = test[0][0].split(".")[0]
    rewrite_shard(copy, "test-000000.tar", with_meta(test, key, number=10**30) + test[3:], recount=False)
    with pytest.raises(CsxaError, match=rf"sample '{key}': its .json says case 10{{30}}"):
        preflight(copy)


def test_a_test_image_that_does_not_decode_stops_fit_before_training_naming_the_shard(copy, tmp_path):
    test = members_of(copy / "test-000000.tar")
    png = next(i for i, (name, _) in enumerate(test) if name.endswith(".png"))
    name, data = test[png]
    test[png] = (name, data[:41] + bytes(len(data) - 53) + data[-12:])  # header kept, pixels zeroed
    rewrite_shard(copy, "test-000000.tar", test, recount=False)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "fit",
            "--variant",
            str(copy),
            "--out",
            str(out),
            "--model",
            "smallcnn",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"csxa-train: error: {copy / 'test-000000.tar'}: sample {name.split('.')[0]!r}: .png member: PNG does not "
        + result.stderr.split("PNG does not ", 1)[1].strip()
    ]
    assert not out.exists(), "nothing may be trained or written"
