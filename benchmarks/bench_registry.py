"""The registry at scale and under a hostile mirror (issue 23's targets).

    python benchmarks/bench_registry.py [--tags 10000] [--junk-gib 2] [--repeat 3]

1. ``csxa-data versions NAME`` and ``versions NAME --check vX.Y.Z`` on a repository holding
   ``--tags`` annotated tags of one artifact (made at once with ``git fast-import``), from the local
   folder and from its ``file://`` URL (tags fetched into a temporary repository). Target: at most
   5 s each on 2 cores.
2. Peak memory (the process tree's RSS) of ``csxa-train fit`` on a tiny variant served over HTTP
   from 127.0.0.1, clean, and with one train shard followed by ``--junk-gib`` GiB of random bytes
   (refused). Target: the refused fit peaks no higher than the clean one.

Writes nothing outside ``benchmarks/out/``; prints one table.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "registry"


def tagged_repository(root: Path, tags: int) -> Path:
    """A git repository with one commit and ``tags`` annotated tags ds@v1.0.0, ds@v1.0.1, ..."""
    repo = root / f"tags-{tags}"
    if (repo / ".git").is_dir():
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    stream = ["commit refs/heads/main", "committer T <t@t> 1700000000 +0000", "data 3", "one"]
    for i in range(tags):
        message = f"Publish dataset ds v1.0.{i}"
        stream += [
            f"tag ds@v1.0.{i}",
            "from refs/heads/main",
            "tagger T <t@t> 1700000000 +0000",
            f"data {len(message)}",
            message,
        ]
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input="\n".join(stream) + "\n", text=True, check=True)
    return repo


def csxa(*args: str) -> list[str]:
    return [sys.executable, "-m", "csxa_data", *args]


def timed(cmd: list[str], repeat: int, **kwargs) -> dict:
    runs = [run_measured(cmd, stdout=subprocess.DEVNULL, **kwargs) for _ in range(repeat)]
    walls = sorted(r["wall_s"] for r in runs)
    return {"median_s": walls[len(walls) // 2], "min_s": walls[0], "max_s": walls[-1]}


def tiny_variant(root: Path) -> Path:
    """A tiny built variant (synth, ingest, build), made once under benchmarks/out/."""
    variant = root / "variant"
    if (variant / "shards.json").is_file():
        return variant
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from csxa_data.ingest.outputs import read_manifest, write_ingest
    from csxa_data.ingest.params import IngestParams
    from csxa_data.ingest.run import run_ingest
    from csxa_data.synthetic.generate import SynthParams, write_synthetic_release
    from csxa_data.variants.build import build_variant
    from csxa_data.variants.spec import BuildParams, VariantSpec

    write_synthetic_release(root / "synth", SynthParams(seed=5, cases=120, size_scale=0.2), workers=2, progress=False)
    write_ingest(run_ingest(root / "synth" / "release", IngestParams(), workers=2, progress=False), root / "ingest")
    build_variant(
        "cropped",
        VariantSpec(crop="landmarks", out_size=32),
        read_manifest(root / "ingest" / "manifest.csv"),
        root / "synth" / "release",
        variant,
        BuildParams(shard_size=30, min_shards=2),
        workers=2,
        progress=False,
    )
    return variant


class JunkAfter(http.server.SimpleHTTPRequestHandler):
    """A static mirror; the file named ``junk_after`` is followed by ``junk_bytes`` random bytes."""

    junk_after, junk_bytes = "", 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        if name != self.junk_after:
            return super().do_GET()
        data = (Path(self.directory) / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data) + self.junk_bytes))
        self.end_headers()
        block, left = os.urandom(1 << 20), self.junk_bytes
        try:
            self.wfile.write(data)
            while left > 0:
                self.wfile.write(block[: min(left, len(block))])
                left -= len(block)
        except OSError:
            pass


def fit_peak(variant: Path, junk: int, out: Path) -> dict:
    handler = type("Handler", (JunkAfter,), {"junk_after": "train-000000.tar", "junk_bytes": junk})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(variant)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "csxa_train",
            "fit",
            "--variant",
            url,
            "--out",
            str(out),
            "--model",
            "smallcnn",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--workers",
            "0",
        ]
        result = run_measured(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finally:
        server.shutdown()
        server.server_close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", type=int, default=10_000, help="annotated tags of one artifact (default 10,000)")
    parser.add_argument("--junk-gib", type=float, default=2.0, help="GiB of junk after the shard (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each versions command (median shown)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    started = time.perf_counter()
    repo = tagged_repository(OUT, args.tags)
    print(f"{args.tags:,} tags made with git fast-import in {time.perf_counter() - started:.1f} s")
    last = f"v1.0.{args.tags - 1}"
    rows = [
        ("versions ds (folder)", timed(csxa("versions", "ds", "--repo", str(repo)), args.repeat, env=env)),
        (
            f"versions ds --check {last} (folder)",
            timed(csxa("versions", "ds", "--repo", str(repo), "--check", last), args.repeat, env=env),
        ),
        ("versions ds (file:// URL)", timed(csxa("versions", "ds", "--repo", f"file://{repo}"), args.repeat, env=env)),
        (
            f"versions ds --check {last} (file:// URL)",
            timed(csxa("versions", "ds", "--repo", f"file://{repo}", "--check", last), args.repeat, env=env),
        ),
    ]
    print(f"\n| command ({args.tags:,} tags of one artifact) | median s | min s | max s |\n|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| `{name}` | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} |")
    variant = tiny_variant(OUT / "tiny")
    clean = fit_peak(variant, 0, OUT / "fit-clean")
    junk = fit_peak(variant, int(args.junk_gib * (1 << 30)), OUT / "fit-junk")
    print("\n| fit over HTTP | exit | wall s | peak RSS MiB |\n|---|---:|---:|---:|")
    print(f"| clean shard | {clean['exit']} | {clean['wall_s']} | {clean['peak_rss_mib']} |")
    print(f"| shard + {args.junk_gib:g} GiB of junk | {junk['exit']} | {junk['wall_s']} | {junk['peak_rss_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
