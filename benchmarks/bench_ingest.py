"""Benchmark `csxa-data ingest` on a 5,000-case synthetic release: time, cores used, peak memory.

    python benchmarks/bench_ingest.py                       # films at the real size (size_scale 1)
    python benchmarks/bench_ingest.py --size-scale 0.3

The release is synthesised once into benchmarks/out/release-<cases>-<scale>/ and reused.
Writes benchmarks/out/ingest-<cases>-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import cached_release, run_measured  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--size-scale", type=float, default=1.0)
    args = parser.parse_args()
    release = cached_release(args.cases, args.size_scale)
    out = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    row = {
        "cases": args.cases,
        "size_scale": args.size_scale,
        **run_measured(
            [
                sys.executable,
                "-m",
                "csxa_data",
                "ingest",
                "--params",
                str(release.parent.parent / "empty.yaml"),
                "--release",
                str(release),
                "--out",
                str(out / "ingest"),
                "--quiet",
            ]
        ),
    }
    row["ms_per_case"] = round(1000 * row["wall_s"] / args.cases, 2)
    shutil.rmtree(out)
    print(json.dumps(row))
    target = Path(__file__).parent / "out" / f"ingest-{args.cases}-{args.size_scale}.json"
    target.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
