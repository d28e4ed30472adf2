"""Fault injection (issue 10): `csxa-data ingest`, `csxa-data build` and `csxa-train fit` killed with
SIGKILL (the whole process group, workers included, as a crash or an OOM kill would) at seeded random
moments, then rerun. After each kill an ingest or build output is either absent or the previous
complete one, never half-written; a fit folder holds a whole checkpoint of some epoch and either none
or all of the run's results. The rerun's files are byte-identical to an uninterrupted run's, and no
temporary `.NAME.tmp-*` is left behind. Also: a full disk under `fit`, and two `dvc repro` at once in
one repository.

Which bytes may differ: none of the files compared here. Directory and file timestamps differ (they
are not content, and DVC hashes content only).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from csxa_data.errors import CsxaError
from csxa_data.ingest.outputs import write_ingest
from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.synthetic.generate import SynthParams
from csxa_data.variants.spec import BuildParams, VariantSpec

from helpers import tiny_variant

SEED = 20261129
KILLS = 2  # per command; each at a seeded random moment within an uninterrupted run's duration


def files(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.tmp-*"))


def run(cmd: list[str], timeout: float = 300) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return time.perf_counter() - start


def kill_at(cmd: list[str], delay: float) -> None:
    """Start ``cmd`` in its own process group and SIGKILL the whole group after ``delay`` s."""
    victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        victim.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()


def dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def plant_stale_temporaries(out: Path) -> None:
    """What older killed runs leave: a folder of a dead process, and one of the old unnamed kind."""
    for name in (f".{out.name}.tmp-{dead_pid()}-x1y2", f".{out.name}.tmp-abc123"):
        (out.parent / name).mkdir(parents=True)
        (out.parent / name / "train-000000.tar").write_bytes(b"half a shard")


def kill_and_rerun(cmd: list[str], out: Path, reference: dict[str, bytes], duration: float, rng) -> None:
    for delay in rng.uniform(0.2, duration, KILLS):
        kill_at(cmd, float(delay))
        if out.exists():  # the previous complete output, or nothing: never a half-written one
            assert files(out) == reference, f"half-written output after a kill at {delay:.2f} s"
    plant_stale_temporaries(out)
    run(cmd)
    assert files(out) == reference
    assert temporaries(out) == []


@pytest.fixture(scope="module")
def data(tiny_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    write_ingest(run_ingest(tiny_synth / "release", IngestParams(), workers=1, progress=False), root / "ingest")
    return root


def test_killed_ingest_reruns_to_identical_outputs(tiny_synth, data):
    cmd = [
        sys.executable,
        "-m",
        "csxa_data",
        "ingest",
        "--release",
        str(tiny_synth / "release"),
        "--quiet",
        "--workers",
        "2",
        "--out",
        str(data / "killed-ingest"),
    ]
    duration = run(cmd)
    reference = files(data / "killed-ingest")
    assert reference == files(data / "ingest")  # the CLI writes what the library computes
    kill_and_rerun(cmd, data / "killed-ingest", reference, duration, np.random.default_rng(SEED))


def test_killed_build_reruns_to_identical_outputs(tiny_synth, data):
    params = data / "params.yaml"
    params.write_text(
        "variants:\n  colored_wide_cropped: {crop: landmarks, grow_x: 10, grow_y: 20, "
        "colour: stacked, out_size: 32}\nbuild: {shard_size: 4, min_shards: 2}\n"
    )
    out = data / "variants" / "colored_wide_cropped"
    cmd = [
        sys.executable,
        "-m",
        "csxa_data",
        "build",
        "--params",
        str(params),
        "--variant",
        "colored_wide_cropped",
        "--manifest",
        str(data / "ingest" / "manifest.csv"),
        "--release",
        str(tiny_synth / "release"),
        "--out",
        str(out),
        "--workers",
        "2",
        "--quiet",
    ]
    duration = run(cmd)
    reference = files(out)
    assert any(name.startswith("train-") for name in reference)
    kill_and_rerun(cmd, out, reference, duration, np.random.default_rng(SEED + 1))


@pytest.fixture(scope="module")
def train_variant(tmp_path_factory):
    return tiny_variant(
        tmp_path_factory.mktemp("fault-train"),
        SynthParams(seed=5, cases=40, size_scale=0.2, asymptomatic_fraction=0.25),
        "cropped",
        VariantSpec(crop="landmarks", out_size=32),
        BuildParams(shard_size=8, min_shards=2),
    )


def fit_args(variant: Path, out: Path, epochs: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "csxa_train",
        "fit",
        "--variant",
        str(variant),
        "--model",
        "smallcnn",
        "--weights",
        "none",
        "--balance",
        "smote",
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--out",
        str(out),
    ]


def hidden_temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".*.tmp*"))


@pytest.mark.slow
def test_killed_fit_resumes_to_identical_weights_and_logs(train_variant, tmp_path):
    from csxa_train.checkpoint import CHECKPOINT, load_checkpoint
    from csxa_train.fit import FIT_FILES

    # the same folder name: the experiment is titled after it in metrics.json and report.png
    duration = run(fit_args(train_variant, tmp_path / "whole" / "run"))
    reference = files(tmp_path / "whole" / "run")
    assert set(reference) == set(FIT_FILES)
    results = set(FIT_FILES) - {CHECKPOINT}  # written together at the end of a run
    out = tmp_path / "killed" / "run"
    rng = np.random.default_rng(SEED + 2)
    for delay in rng.uniform(0.5, duration, KILLS):
        kill_at(fit_args(train_variant, out), float(delay))
        if not out.exists():
            continue
        found = files(out)
        # a kill while writing leaves temporary siblings of fit's own files, which the next run removes
        left = [name for name in found if name.startswith(".")]
        assert all(name.split(".tmp", 1)[0][1:] in FIT_FILES for name in left), left
        found = {name: data for name, data in found.items() if name not in left}
        assert set(found) - {CHECKPOINT} in (set(), results), f"a part of the results after a kill at {delay:.2f} s"
        assert all(found[name] == reference[name] for name in set(found) - {CHECKPOINT})
        if CHECKPOINT in found:  # a whole one, of some epoch: it loads
            load_checkpoint(out / CHECKPOINT)
    # what older killed runs left beside the files: temporaries of dead processes, one not named by a
    # process, and the fixed name earlier versions gave the checkpoint's
    out.mkdir(parents=True, exist_ok=True)
    for name in (
        f".{CHECKPOINT}.tmp-{dead_pid()}-x1y2",
        ".metrics.json.tmp-abc123",
        f".report.png.tmp-{dead_pid()}-q",
        f".{CHECKPOINT}.tmp",
    ):
        (out / name).write_bytes(b"half a file")
    run(fit_args(train_variant, out))
    # every file byte-identical to the uninterrupted run's: weights, logs, predictions, metrics, figures
    assert files(out) == reference
    assert hidden_temporaries(out) == []
    # a rerun resumes from the finished checkpoint, whatever the kill above hit: identical again (its
    # loaded strings are shared objects; the checkpoint was once written with other bytes for them)
    run(fit_args(train_variant, out))
    assert files(out) == reference


@pytest.mark.slow
@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_fit_failing_while_it_writes_its_results_leaves_the_previous_ones_whole(
    train_variant, tmp_path, monkeypatch, capsys, failure
):
    """The results of a run (metrics, predictions, figures, log, card) are replaced together: `csxa-train
    fit` failing at the figure, written after the tables, leaves every old result file as it was; a
    full disk there is one line, exit 2; Ctrl-C says it was interrupted, exit 130."""
    from csxa_train import cli, results
    from csxa_train.checkpoint import CHECKPOINT, load_checkpoint

    out = tmp_path / "run"
    assert cli.main(fit_args(train_variant, out, epochs=1)[3:]) == 0
    before = files(out)

    def failing_figure(*args, **kwargs):
        raise failure

    monkeypatch.setattr(results, "evaluation_figure", failing_figure)
    capsys.readouterr()
    # other settings: trained afresh, other scores
    code = cli.main([*fit_args(train_variant, out, epochs=1)[3:], "--batch-size", "4"])
    stderr = capsys.readouterr().err  # progress and log lines, then the error's one line
    error = [line for line in stderr.splitlines() if line.startswith("csxa-train: ")]
    assert "Traceback" not in stderr and len(error) == 1, stderr[-2000:]
    if isinstance(failure, OSError):
        assert code == 2
        assert error[0].startswith(
            f"csxa-train: error: {out / 'report.png'}: cannot write it (No space left on device)"
        )
    else:
        assert code == 130 and error[0].startswith("csxa-train: interrupted")
    after = files(out)
    assert after.pop(CHECKPOINT) != before.pop(CHECKPOINT)  # the new run's own checkpoint, saved whole
    load_checkpoint(out / CHECKPOINT)
    assert after == before
    assert hidden_temporaries(out) == []


@pytest.mark.slow
def test_a_full_disk_while_fit_saves_is_one_line_and_keeps_the_last_checkpoint(train_variant, tmp_path):
    """A real write failure through `csxa-train fit`: the kernel refuses to grow any file past 16 kB
    (EFBIG, as ENOSPC on a full disk), so re-evaluating a finished run cannot save its checkpoint."""
    out = tmp_path / "run"
    run(fit_args(train_variant, out, epochs=1))
    before = files(out)
    assert len(before["checkpoint.pt"]) > 16384
    # the limit set in the child before it becomes fit (Python ignores SIGXFSZ: an error, not a signal)
    limited = [
        sys.executable,
        "-c",
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, "
        "(16384, 16384)); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
        *fit_args(train_variant, out, epochs=1)[1:],
    ]
    result = subprocess.run(limited, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("csxa-train: ")]
    assert len(error) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "cannot write the checkpoint (File too large); the partial file was removed" in result.stderr
    assert files(out) == before  # the checkpoint and the results as they were
    assert hidden_temporaries(out) == []


@pytest.mark.slow
def test_two_dvc_repro_at_once_second_refuses_with_the_lock_message(tmp_path):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    repo = tmp_path / "repo"
    repo.mkdir()
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    (repo / "dvc.yaml").write_text(
        "stages:\n  slow:\n    cmd: python -c \"import time; time.sleep(6); open('out.txt', 'w').write('done')\"\n"
        "    outs:\n      - out.txt\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 60
    while not (repo / ".dvc" / "tmp" / "rwlock").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    second = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    first_out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, first_out
    assert second.returncode != 0
    # DVC's lock message (its wording for a locked output: "... is busy, it is being blocked by: (PID n)")
    assert "is being blocked by" in second.stderr or "Unable to acquire lock" in second.stderr, second.stderr
    assert (repo / "out.txt").read_text() == "done"
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0 and "up to date" in status.stdout  # nothing corrupted


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.parametrize("failing", ["b.csv", "c.png"])
def test_files_written_together_are_all_replaced_or_none(tmp_path, failure, failing):
    """`write_files_atomic` (compare's two reports, explain's three files): a writer failing after
    others have written leaves every old file as it was and no temporary file behind."""
    from csxa_data.atomic import write_files_atomic

    old = {"a.md": b"old a", "b.csv": b"old b", "c.png": b"old c"}
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)

    def writer(name: str):
        def write(path: Path) -> None:
            path.write_bytes(b"new " + name.encode())
            if name == failing:
                raise failure

        return write

    # a write error (a full disk) is one CsxaError naming the file: `PROG: error: PATH: ...`, exit 2
    kind, message = (
        (CsxaError, re.escape(f"{tmp_path / failing}: cannot write it"))
        if isinstance(failure, OSError)
        else (type(failure), None)
    )
    with pytest.raises(kind, match=message):
        write_files_atomic(tmp_path, {name: writer(name) for name in old})
    assert files(tmp_path) == old
    write_files_atomic(
        tmp_path, {name: writer(name) for name in old} | {failing: lambda path: path.write_bytes(b"new")}
    )
    assert files(tmp_path) == {"a.md": b"new a.md", "b.csv": b"new b.csv", "c.png": b"new c.png"} | {failing: b"new"}
