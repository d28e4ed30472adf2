"""Shared fixtures: small synthetic releases written once per test session, and a writable copy of
the tiny one with its ingest baseline (helpers the tests share are in helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csxa_data.ingest.run import run_ingest
from csxa_data.synthetic.generate import SynthParams, write_synthetic_release

from helpers import PARAMS, SMALL, unpack_release

os.environ["DVC_NO_ANALYTICS"] = "1"


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory) -> Path:
    """A 60-case synthetic release (OUT with release/, faults.csv, truth.csv)."""
    out = tmp_path_factory.mktemp("synth") / "small"
    write_synthetic_release(out, SMALL, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A 16-case synthetic release, for tests that break things in a copy of it."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    write_synthetic_release(out, SynthParams(seed=11, cases=16, size_scale=0.2), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def baseline(tiny_synth):
    return run_ingest(tiny_synth / "release", PARAMS, workers=1, progress=False)


@pytest.fixture
def release(tiny_synth, tmp_path):
    """An unpacked, writable copy of the tiny release."""
    return unpack_release(tiny_synth / "release", tmp_path / "release")
