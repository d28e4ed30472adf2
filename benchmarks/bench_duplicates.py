"""Near-duplicate search at the real release's size (issue 26's targets).

    python benchmarks/bench_duplicates.py [--films 4963] [--hashes 25000 50000 100000]

1. Hashing and pairing ``--films`` distinct films of the real size (560-900 px wide, as the
   release's, drawn by the synthetic generator), one at a time as ingest's workers do: seconds per
   film (drawing not counted), the whole on one core, and the pairing. Target:
   within the time of one variant build on the real-size release (29-34 s, docs/benchmarks.md) on
   2 cores, and peak memory under 1 GB.
2. Pairing random 256-bit hashes (1% of them near copies, up to 24 bits flipped) at each of
   ``--hashes``: seconds and peak memory, to show the band index stays near linear.

Each part runs in its own process so that its peak memory is its own. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def films_part(films: int) -> dict:
    import numpy as np

    from csxa_data.ingest.duplicates import film_hash, near_pairs
    from csxa_data.synthetic.radiograph import draw_radiograph

    hashes, hashing = {}, 0.0
    for number in range(1, films + 1):  # each film drawn, hashed and let go, as ingest's workers do
        rng = np.random.default_rng([26, number])
        width = int(rng.integers(560, 901))
        film, _ = draw_radiograph(rng, width, round(width * rng.uniform(1.2, 1.36)), float(rng.uniform()))
        start = time.perf_counter()
        hashes[number] = film_hash(film, False)
        hashing += time.perf_counter() - start
    start = time.perf_counter()
    pairs = near_pairs(hashes, 24)
    pairing = time.perf_counter() - start
    return {
        "films": films,
        "hash_ms_per_film": 1000 * hashing / films,
        "hash_s_one_core": hashing,
        "pair_s": pairing,
        "pairs": len(pairs),
        "peak_mib": peak_mib(),
    }


def hashes_part(count: int) -> dict:
    import numpy as np

    from csxa_data.ingest.duplicates import HASH_BYTES, near_pairs

    rng = np.random.default_rng(count)
    hashes = {n: rng.integers(0, 256, HASH_BYTES, dtype=np.uint8).tobytes() for n in range(1, count + 1)}
    planted = count // 100
    for n in range(1, planted + 1):
        copy = bytearray(hashes[n])
        for bit in rng.choice(HASH_BYTES * 8, size=int(rng.integers(0, 25)), replace=False):
            copy[bit // 8] ^= 1 << (bit % 8)
        hashes[count + n] = bytes(copy)
    before = peak_mib()
    start = time.perf_counter()
    pairs = near_pairs(hashes, 24)
    return {
        "hashes": len(hashes),
        "pair_s": time.perf_counter() - start,
        "pairs": len(pairs),
        "planted": planted,
        "peak_mib": peak_mib(),
        "peak_before_mib": before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, default=4963)
    parser.add_argument("--hashes", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        result = films_part(args.count) if args.part == "films" else hashes_part(args.count)
        print(json.dumps(result))
        return 0

    def part(name: str, count: int) -> dict:
        done = subprocess.run(
            [sys.executable, __file__, "--part", name, "--count", str(count)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    films = part("films", args.films)
    print(
        f"{films['films']} films of the real size: {films['hash_ms_per_film']:.1f} ms per film, "
        f"{films['hash_s_one_core']:.1f} s on one core ({films['hash_s_one_core'] / 2:.1f} s on 2 workers); "
        f"pairing {films['pair_s']:.2f} s ({films['pairs']} pairs); peak {films['peak_mib']:.0f} MiB"
    )
    print("| hashes | pairing (s) | pairs found | of them planted | peak memory (MiB) |")
    print("|---:|---:|---:|---:|---:|")
    for count in args.hashes:
        row = part("hashes", count)
        print(
            f"| {row['hashes']:,} | {row['pair_s']:.2f} | {row['pairs']:,} | {row['planted']:,} | {row['peak_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
