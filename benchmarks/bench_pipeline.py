"""End to end on a large synthetic release: time and peak memory of each stage, SMOTE included.

    python benchmarks/bench_pipeline.py                       # 5,000 cases at the real film size
    python benchmarks/bench_pipeline.py --cases 1000
    python benchmarks/bench_pipeline.py --variants colored_wide_cropped --image-size 64   # affordable on CPUs

Stages, each a subprocess measured for wall time, CPU time and peak resident memory of its whole
tree: ingest; build of the paper's `wide_cropped` and `colored_wide_cropped` (224 px, as params.paper.yaml); and
`csxa-train fit` on each with the paper's train settings (params.paper.yaml) and SMOTE balancing, one epoch of the small CPU model
(`smallcnn`, no pretrained weights) - the SMOTE step and the in-memory train split are what the
paper's protocol costs in memory whatever the model. The synthetic release is written once by
benchmarks/measure.py (`cached_release`) and reused; with --synth its writing is timed as the first
stage, into the run's own folder (ingest then reads a release just written, partly from the page
cache: its time is not comparable with a run on the cached release).
Writes benchmarks/out/pipeline-CASES-SCALE.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_build import PAPER_PARAMS, PAPER_VARIANTS, write_params  # noqa: E402
from measure import cached_release, run_measured, synth_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--size-scale", type=float, default=1.0)
    parser.add_argument(
        "--variants", nargs="+", default=["wide_cropped", "colored_wide_cropped"], choices=list(PAPER_VARIANTS)
    )
    parser.add_argument("--model", default="smallcnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--image-size",
        type=int,
        default=224,
        help="px the fit stage trains at (the split is read and SMOTE-balanced at the variant's 224 px "
        "whatever this is; 64 makes one CPU epoch affordable)",
    )
    parser.add_argument(
        "--synth",
        action="store_true",
        help="also time writing the synthetic release (at 5,000 cases and the real size about 5 "
        "minutes and 3.8 GB), and run the other stages on that copy",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    params = work / "params.yaml"
    write_params(params, {n: PAPER_VARIANTS[n] for n in args.variants})
    rows = []

    def measure(stage: str, cmd: list[str]) -> None:
        row = {"stage": stage, "command": " ".join(cmd), **run_measured(cmd)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    load_before = os.getloadavg()
    try:  # the work folder (with --synth, a 3.8 GB release) is removed whatever happens
        if args.synth:
            measure("synth", synth_command(args.cases, args.size_scale, work))
            release = work / "synth" / "release"
        else:
            release = cached_release(args.cases, args.size_scale)
        measure(
            "ingest",
            [
                sys.executable,
                "-m",
                "csxa_data",
                "ingest",
                "--params",
                str(params),
                "--release",
                str(release),
                "--out",
                str(work / "ingest"),
                "--quiet",
            ],
        )
        for variant in args.variants:
            measure(
                f"build {variant}",
                [
                    sys.executable,
                    "-m",
                    "csxa_data",
                    "build",
                    "--params",
                    str(params),
                    "--variant",
                    variant,
                    "--manifest",
                    str(work / "ingest" / "manifest.csv"),
                    "--release",
                    str(release),
                    "--out",
                    str(work / variant),
                    "--quiet",
                ],
            )
            measure(
                f"fit {variant} (smote, {args.model}, {args.epochs} epoch at {args.image_size} px)",
                [
                    sys.executable,
                    "-m",
                    "csxa_train",
                    "fit",
                    "--params",
                    str(PAPER_PARAMS),
                    "--variant",
                    str(work / variant),
                    "--out",
                    str(work / "results" / variant),
                    "--model",
                    args.model,
                    "--weights",
                    "none",
                    "--balance",
                    "smote",
                    "--epochs",
                    str(args.epochs),
                    "--image-size",
                    str(args.image_size),
                    "--batch-size",
                    "64",
                    "--workers",
                    "2",
                ],
            )
            details = json.loads((work / "results" / variant / "evaluation.json").read_text())
            for key in ("train_cases", "validation_cases", "train_samples", "smote_synthetic"):
                rows[-1][key] = details.get(key)
            shutil.rmtree(work / variant)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "cases": args.cases,
        "size_scale": args.size_scale,
        "cores": os.cpu_count(),
        "synth_timed": args.synth,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    target = Path(__file__).parent / "out" / f"pipeline-{args.cases}-{args.size_scale}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(summary, indent=2) + "\n")
    for row in rows:
        print(
            f"{row['stage']:55s} {row['wall_s']:8.1f} s wall {row['cpu_s']:8.1f} s cpu {row['peak_rss_mib']:8.0f} MiB"
        )


if __name__ == "__main__":
    main()
