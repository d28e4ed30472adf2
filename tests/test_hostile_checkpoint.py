"""Hostile or failed checkpoints (issue 10): a bare tensor is one clear line, and a write that fails
(a full disk) leaves no truncated temporary file and keeps the previous checkpoint."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from csxa_data.errors import CsxaError
from csxa_train.checkpoint import load_checkpoint, save_checkpoint

from helpers import REPO


def test_bare_tensor_checkpoint_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CsxaError, match="not a csxa-train checkpoint: it holds a Tensor, not a dict"):
        load_checkpoint(path)


def test_bare_tensor_checkpoint_is_one_line_from_the_cli(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save(torch.zeros(3), path)
    result = subprocess.run(
        [sys.executable, "-m", "csxa_train", "evaluate", "--checkpoint", str(path), "--out", str(tmp_path / "eval")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"csxa-train: error: {path}: not a csxa-train checkpoint: it holds a Tensor, not a dict with "
        "['model', 'epoch', 'config', 'digest', 'log', 'counts', 'normalisation']"
    ]


@pytest.mark.parametrize(
    "state, text",
    [
        ({"model": {}}, "no ['epoch', 'config'"),
        (
            {"model": [1], "epoch": 0, "config": {}, "digest": "", "log": [], "counts": {}, "normalisation": {}},
            "'model' is not a state dict of tensors",
        ),
    ],
)
def test_dict_that_is_not_a_checkpoint_is_refused(tmp_path, state, text):
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CsxaError, match="not a csxa-train checkpoint") as error:
        load_checkpoint(tmp_path / "c.pt")
    assert text in str(error.value)


def test_full_disk_while_saving_leaves_no_temporary_and_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"weights": torch.ones(10)})
    before = path.read_bytes()
    # a real write failure: the kernel refuses writes past 64 kB (EFBIG, as ENOSPC on a full disk)
    child = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        import torch
        from csxa_data.errors import CsxaError
        from csxa_train.fit import save_checkpoint
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            save_checkpoint(Path({str(path)!r}), {{"weights": torch.ones(1_000_000)}})
        except CsxaError as exc:
            print(exc)
            sys.exit(2)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2, result.stderr
    assert "cannot write the checkpoint (File too large); the partial file was removed" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left
    assert path.read_bytes() == before


def test_a_checkpoints_bytes_depend_on_its_content_not_on_shared_objects(tmp_path):
    """A run resumed from a checkpoint holds the strings it loaded as shared objects, a fresh run
    new ones; pickle's memo wrote the two differently, so a killed fit resumed to a checkpoint of
    other bytes. save_checkpoint writes without the memo."""
    one, zero = "".join(["1"]), "".join(["0"])
    fresh = {"weights": torch.ones(3), "counts": {"a": {str(0): 1, str(1): 2}, "b": {str(0): 3, str(1): 4}}}
    shared = {"weights": torch.ones(3), "counts": {"a": {zero: 1, one: 2}, "b": {zero: 3, one: 4}}}
    save_checkpoint(tmp_path / "fresh.pt", fresh)
    save_checkpoint(tmp_path / "shared.pt", shared)
    assert (tmp_path / "fresh.pt").read_bytes() == (tmp_path / "shared.pt").read_bytes()
    assert load_checkpoint_state(tmp_path / "shared.pt")["counts"] == shared["counts"]


def load_checkpoint_state(path):
    return torch.load(path, map_location="cpu", weights_only=True)
