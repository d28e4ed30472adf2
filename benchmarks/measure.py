"""Run a command and measure it: wall time, CPU time, and peak memory of its whole process tree."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
        pid = int(entry.name)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_measured(cmd: list[str], *, check: bool = True, **kwargs) -> dict:
    """Run ``cmd``; return wall seconds, CPU seconds (user+sys of the tree), peak tree RSS in MiB and
    the exit code (``check``: a non-zero exit ends the benchmark)."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, **kwargs)
    peak = 0
    done = threading.Event()

    def poll():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_bytes(proc.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    rc = proc.wait()
    done.set()
    watcher.join()
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if check and rc != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {rc}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cores_used": round(cpu / wall, 2),
        "peak_rss_mib": round(peak / 2**20, 1),
        "exit": rc,
    }


def cached_release(cases: int, size_scale: float) -> Path:
    """A synthetic release of this size under benchmarks/out/, written once and reused."""
    root = Path(__file__).parent / "out" / f"release-{cases}-{size_scale}"
    if not (root / "synth" / "release" / "datasets-PNG.zip").is_file():
        subprocess.run(synth_command(cases, size_scale, root), check=True)
    return root / "synth" / "release"


def synth_command(cases: int, size_scale: float, root: Path) -> list[str]:
    """`csxa-data synth` of the default synthetic atlas at this size into ROOT/synth (its release in
    ROOT/synth/release), with no params.yaml of this checkout in the way."""
    import sys

    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.yaml").write_text("{}\n")
    return [
        sys.executable,
        "-m",
        "csxa_data",
        "synth",
        "--params",
        str(root / "empty.yaml"),
        "--quiet",
        "--cases",
        str(cases),
        "--size-scale",
        str(size_scale),
        "--out",
        str(root / "synth"),
    ]
