"""Benchmark `csxa-data synth`: time, cores used and peak memory at several sizes.

    python benchmarks/bench_synth.py                # 1,000 and 5,000 cases at the demo size
    python benchmarks/bench_synth.py --size-scale 1 # films at the real release's size

Writes benchmarks/out/synth.json and prints a table. Linear scaling shows as a constant time per case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import run_measured  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--size-scale", type=float, default=0.3)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    args = parser.parse_args()
    results = []
    for cases in args.cases:
        out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
        (out / "empty.yaml").write_text("{}\n")
        cmd = [
            sys.executable,
            "-m",
            "csxa_data",
            "synth",
            "--params",
            str(out / "empty.yaml"),
            "--quiet",
            "--cases",
            str(cases),
            "--size-scale",
            str(args.size_scale),
            "--out",
            str(out / "synth"),
        ]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        # an empty params file: built-in defaults, whatever ./params.yaml says
        row = {"cases": cases, "size_scale": args.size_scale, "cpus": os.cpu_count(), **run_measured(cmd)}
        row["ms_per_case"] = round(1000 * row["wall_s"] / cases, 2)
        row["release_mib"] = round(sum(p.stat().st_size for p in (out / "synth" / "release").iterdir()) / 2**20, 1)
        shutil.rmtree(out)
        results.append(row)
        print(json.dumps(row))
    target = Path(__file__).parent / "out" / f"synth-scale{args.size_scale}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
