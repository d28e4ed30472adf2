"""Benchmark `csxa-data build` against a decode-only pass over the same PNGs, in the same run.

    python benchmarks/bench_build.py                 # 5,000 cases, films at the real size, paper settings

Both passes use one worker per core and read the PNGs from the same zip. Target: the build takes at
most 1.3x the decode-only pass, with peak memory under 2 GiB. Writes benchmarks/out/build-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import cached_release, run_measured  # noqa: E402

PAPER_VARIANTS = {
    "original": "{crop: centre, centre_size: 500, colour: grey, out_size: 224}",
    "wide_cropped": "{crop: landmarks, grow_x: 100, grow_y: 200, colour: grey, out_size: 224}",
    "colored_wide_cropped": "{crop: landmarks, grow_x: 100, grow_y: 200, colour: stacked, out_size: 224}",
}

_PNGS = None


def _open(release):
    global _PNGS
    from csxa_data.release import PNG_SET, open_file_set
    _PNGS = open_file_set(Path(release), PNG_SET)


def _decode(name):
    from csxa_data.images import open_png
    return open_png(_PNGS.read(name)).size


def decode_only(release: Path, names: list[str]) -> float:
    """Seconds to read and decode every PNG once, on all cores (the floor of any build)."""
    start = time.perf_counter()
    with get_context("fork").Pool(os.cpu_count(), initializer=_open, initargs=(str(release),)) as pool:
        for _ in pool.imap(_decode, names, chunksize=8):
            pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--size-scale", type=float, default=1.0)
    parser.add_argument("--variants", nargs="+", default=list(PAPER_VARIANTS))
    args = parser.parse_args()
    release = cached_release(args.cases, args.size_scale)
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    params = work / "params.yaml"
    params.write_text("variants:\n" + "".join(f"  {n}: {PAPER_VARIANTS[n]}\n" for n in args.variants)
                      + "build: {shard_size: 500, min_shards: 4, png_compress_level: 1}\n")
    run_measured([sys.executable, "-m", "csxa_data", "ingest", "--params", str(params), "--release", str(release),
                  "--out", str(work / "ingest"), "--quiet"])
    import pandas as pd
    names = [f"{s}.png" for s in pd.read_csv(work / "ingest" / "manifest.csv", dtype={"stem": str}).stem]
    rows = []
    for variant in args.variants:
        decode_s = decode_only(release, names)
        build = run_measured([sys.executable, "-m", "csxa_data", "build", "--params", str(params), "--variant", variant,
                              "--manifest", str(work / "ingest" / "manifest.csv"), "--release", str(release),
                              "--out", str(work / variant), "--quiet"])
        row = {"variant": variant, "cases": len(names), "size_scale": args.size_scale, "decode_only_s": round(decode_s, 2),
               **{f"build_{k}": v for k, v in build.items()}, "ratio": round(build["wall_s"] / decode_s, 2)}
        rows.append(row)
        print(json.dumps(row))
        shutil.rmtree(work / variant)
    shutil.rmtree(work)
    target = Path(__file__).parent / "out" / f"build-{args.cases}-{args.size_scale}.json"
    target.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
