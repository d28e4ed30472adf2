"""Benchmark `csxa-data build` against decoding the release, side by side in one run.

    python benchmarks/bench_build.py                     # 5,000 cases, films at the real size, paper settings
    python benchmarks/bench_build.py --cases 1000        # a smaller release, same settings
    python benchmarks/bench_build.py --repeat 5 --researcher   # medians of 5 interleaved rounds, no plain script

On the same release and cores, in one run: a Pillow decode-only pass (every kept film decoded once,
one worker per core: the yardstick), the fast decoder's decode-only pass (csxa_data.images), each
variant's build, and a plain per-image Pillow script as a researcher would write it (one process;
benchmarks/researcher_baseline.py). Each is a subprocess measured for wall time, CPU time (user +
system of its whole tree) and peak resident memory. Ratios are against the Pillow pass, on wall and on
CPU time (CPU time is the fairer one on a shared machine), and colour against grey.
Targets (issue 10): every variant at most 1.0x the Pillow pass; colour variants at most 1.15x their
grey counterparts. Writes benchmarks/out/build-CASES-SCALE.json.
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
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from measure import cached_release, run_measured  # noqa: E402

PAPER_PARAMS = Path(__file__).resolve().parents[1] / "params.paper.yaml"
# the paper's six variants as params.paper.yaml defines them (224 px; colour: order a only in train)
PAPER_VARIANTS = yaml.safe_load(PAPER_PARAMS.read_text())["variants"]
GREY_OF = {"colored": "original", "colored_cropped": "cropped", "colored_wide_cropped": "wide_cropped"}

_PNGS = None


def _open(release):
    global _PNGS
    from csxa_data.release.reader import PNG_SET, open_file_set

    _PNGS = open_file_set(Path(release), PNG_SET)


def _decode_pillow(name):
    from csxa_data.release.images import open_png

    return open_png(_PNGS.read(name)).size


def _decode_fast(name):
    from csxa_data.release.images import decode_film

    film = decode_film(_PNGS.read(name))
    return film.width, film.height


def write_params(path: Path, variants: dict) -> None:
    """A params file with these variants and the paper's shard layout."""
    path.write_text(
        yaml.safe_dump(
            {"variants": variants, "build": {"shard_size": 500, "min_shards": 4, "png_compress_level": 1}},
            sort_keys=False,
        )
    )


def decode_pass(release: str, manifest: str, decoder: str) -> None:
    """Decode every kept film once on all cores (run as this script's subprocess)."""
    import pandas as pd

    names = pd.read_csv(manifest, dtype={"stem": str}).png_name.tolist()
    work = _decode_pillow if decoder == "pillow" else _decode_fast
    with get_context("fork").Pool(os.cpu_count(), initializer=_open, initargs=(release,)) as pool:
        for _ in pool.imap(work, names, chunksize=8):
            pass
        pool.close()
        pool.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--size-scale", type=float, default=1.0)
    parser.add_argument("--variants", nargs="+", default=list(PAPER_VARIANTS), choices=list(PAPER_VARIANTS))
    parser.add_argument(
        "--researcher",
        nargs="*",
        default=["wide_cropped", "colored_wide_cropped"],
        choices=list(PAPER_VARIANTS),
        help="variants to also make with the plain Pillow script",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of the decode passes and builds, interleaved; each row reports the median "
        "(on a shared or virtualised machine single runs vary by 5-10%%)",
    )
    parser.add_argument("--decode-pass", choices=["pillow", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--release", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decode_pass:
        decode_pass(args.release, args.manifest, args.decode_pass)
        return

    release = cached_release(args.cases, args.size_scale)
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    params = work / "params.yaml"
    write_params(params, PAPER_VARIANTS)
    manifest = work / "ingest" / "manifest.csv"
    run_measured(
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
        ]
    )
    load_before = os.getloadavg()
    rows = {}

    def measure(label: str, cmd: list[str]) -> dict:
        run = run_measured(cmd)
        print(json.dumps({"what": label, **run}), flush=True)
        runs = rows.setdefault(label, {"what": label, "runs": []})["runs"]
        runs.append(run)
        for key in ("wall_s", "cpu_s", "cores_used", "peak_rss_mib"):
            rows[label][key] = float(np.median([r[key] for r in runs]))
        return rows[label]

    me = [sys.executable, str(Path(__file__).resolve())]
    for _ in range(args.repeat):
        measure(
            "decode pillow", me + ["--decode-pass", "pillow", "--release", str(release), "--manifest", str(manifest)]
        )
        measure("decode fast", me + ["--decode-pass", "fast", "--release", str(release), "--manifest", str(manifest)])
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
                    str(manifest),
                    "--release",
                    str(release),
                    "--out",
                    str(work / variant),
                    "--quiet",
                ],
            )
            shutil.rmtree(work / variant)
    for variant in args.researcher:
        both = PAPER_VARIANTS[variant].get("colour") == "stacked" and PAPER_VARIANTS[variant].get(
            "both_orders_in_train", True
        )
        measure(
            f"researcher script {variant}",
            [
                sys.executable,
                str(Path(__file__).parent / "researcher_baseline.py"),
                "--release",
                str(release),
                "--manifest",
                str(manifest),
                "--variant",
                variant,
                "--out",
                str(work / "researcher"),
                "--train-orders",
                "both" if both else "a",
            ],
        )
        shutil.rmtree(work / "researcher")
    floor = rows["decode pillow"]
    for row in rows.values():
        row["ratio_wall_vs_pillow_decode"] = round(row["wall_s"] / floor["wall_s"], 2)
        row["ratio_cpu_vs_pillow_decode"] = round(row["cpu_s"] / floor["cpu_s"], 2)
    for colour, grey in GREY_OF.items():
        if f"build {colour}" in rows and f"build {grey}" in rows:
            c, g = rows[f"build {colour}"], rows[f"build {grey}"]
            c["ratio_wall_vs_grey"] = round(c["wall_s"] / g["wall_s"], 2)
            c["ratio_cpu_vs_grey"] = round(c["cpu_s"] / g["cpu_s"], 2)
    add_round_ratios(rows)
    shutil.rmtree(work)
    summary = {
        "cases": args.cases,
        "size_scale": args.size_scale,
        "cores": os.cpu_count(),
        "repeat": args.repeat,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": list(rows.values()),
    }
    print(
        f"\n{'what':40s} {'wall s':>8s} {'cpu s':>8s} {'peak MiB':>9s} {'wall x':>7s} {'cpu x':>6s} {'vs grey (cpu)':>13s}"
    )
    for row in rows.values():
        print(
            f"{row['what']:40s} {row['wall_s']:8.1f} {row['cpu_s']:8.1f} {row['peak_rss_mib']:9.0f} "
            f"{row['ratio_wall_vs_pillow_decode']:7.2f} {row['ratio_cpu_vs_pillow_decode']:6.2f} "
            f"{row.get('ratio_cpu_vs_grey', ''):>13}"
        )
    if args.repeat > 1:
        print(
            "\nper-round ratios (CPU; each build against the Pillow pass and its grey counterpart of the same "
            "round): median [min-max]"
        )
        for row in rows.values():
            for key, name in (("round_cpu_vs_pillow_decode", "vs Pillow pass"), ("round_cpu_vs_grey", "vs grey")):
                if key in row:
                    r = row[key]
                    print(f"  {row['what']:38s} {name:15s} {r['median']:.2f} [{r['min']:.2f}-{r['max']:.2f}]")
    print(f"load average before {summary['load_average_before']}, after {summary['load_average_after']}")
    target = Path(__file__).parent / "out" / f"build-{args.cases}-{args.size_scale}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(summary, indent=2) + "\n")


def add_round_ratios(rows: dict) -> None:
    """Each build's CPU time against the Pillow pass, and each colour build's against its grey one,
    round by round (the runs of a round are minutes apart, the rounds further: on a host whose speed
    drifts, the median of paired ratios is steadier than the ratio of medians)."""

    def paired(runs: list[dict], against: list[dict]) -> dict:
        ratios = [a["cpu_s"] / b["cpu_s"] for a, b in zip(runs, against)]
        return {
            "median": round(float(np.median(ratios)), 3),
            "min": round(min(ratios), 3),
            "max": round(max(ratios), 3),
            "rounds": [round(r, 3) for r in ratios],
        }

    floor = rows["decode pillow"]["runs"]
    for label, row in rows.items():
        if label.startswith("build "):
            row["round_cpu_vs_pillow_decode"] = paired(row["runs"], floor)
    for colour, grey in GREY_OF.items():
        if f"build {colour}" in rows and f"build {grey}" in rows:
            rows[f"build {colour}"]["round_cpu_vs_grey"] = paired(
                rows[f"build {colour}"]["runs"], rows[f"build {grey}"]["runs"]
            )


if __name__ == "__main__":
    main()
