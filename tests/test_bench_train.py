"""benchmarks/bench_train.py as a CI smoke test: a tiny variant, a tiny model, a few CPU steps."""

from __future__ import annotations

import importlib.util
import json

from csxa_data.synthetic.generate import SynthParams
from csxa_data.variants.spec import BuildParams, VariantSpec

from helpers import REPO, tiny_variant


def test_bench_train_reports_throughput_and_the_data_wait_share(tmp_path):
    variant = tiny_variant(
        tmp_path,
        SynthParams(seed=3, cases=24, size_scale=0.15, asymptomatic_fraction=0.3),
        "original",
        VariantSpec(crop="centre", centre_size=60, colour="grey", out_size=32),
        BuildParams(shard_size=8, min_shards=2),
    )
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert (
        bench.main(
            [
                "--variant",
                str(variant),
                "--models",
                "smallcnn",
                "vggsmall",
                "--image-size",
                "32",
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    for model in ("smallcnn", "vggsmall"):
        report = json.loads((tmp_path / "out" / f"train-cpu-{model}-32.json").read_text())
        assert report["model"] == model and report["precision"].startswith("fp32")
        assert report["train_samples"] > 0 and report["variant_out_size"] == 32
        for key in (
            "loader_images_per_s",
            "in_memory_images_per_s",
            "end_to_end_images_per_s",
            "fit_loop_images_per_s",
        ):
            assert report[key] > 0, key
        # figures only: which path is faster is the benchmark's finding (its output and docs), not a
        # test's, since one step under a loaded CI machine can come out either way
        for key in ("data_wait_share_in_memory", "data_wait_share_end_to_end"):
            assert 0 <= report[key] < 1, key
