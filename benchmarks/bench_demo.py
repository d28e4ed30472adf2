"""Which demo settings make the networks learn, and what they cost: train candidate settings on the
demo's own variants (``dvc repro`` first) and report, per run, the test AUROC with its 95% stratified
bootstrap interval, balanced accuracy at 0.5 and at the chosen threshold, the majority baseline's, and
the CPU seconds the run took.

    python benchmarks/bench_demo.py --runs candidates.yaml --out benchmarks/out/demo

``--runs`` is a YAML list of runs, each ``{name, variant, train: {...}}``: ``train`` overrides
``params.yaml``'s ``train`` section (model, image_size, epochs, lr, augment...). Without ``--runs``,
the demo's own experiments under the committed ``params.yaml``.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csxa_train.metrics import auroc, classification_metrics  # noqa: E402
from csxa_train.stats import auroc_rows, bootstrap_interval, stratified_bootstrap_indices  # noqa: E402


def merged(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def run(name: str, variant: str, train: dict, params: dict, out: Path) -> dict:
    """One ``csxa-train fit`` in its own process; its figures."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    settings = merged(params, {"train": train})
    settings["experiments"] = {name: {"variant": variant}}
    (folder / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable, "-m", "csxa_train", "fit", "--params", str(folder / "params.yaml"),
            "--experiment", name, "--variant", str(ROOT / "data" / "variants" / variant), "--out", str(folder / "run"),
        ],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{name}: {result.stderr.strip().splitlines()[-1]}")
    predictions = pd.read_csv(folder / "run" / "predictions.csv")
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    evaluation = json.loads((folder / "run" / "evaluation.json").read_text())
    labels, scores = predictions.label.to_numpy(), predictions.score.to_numpy()
    index = stratified_bootstrap_indices(labels, 2000, 2024)
    low, high = bootstrap_interval(auroc_rows(labels[index], scores[index]))
    chosen = classification_metrics(labels, predictions.pred_at_threshold.to_numpy())
    log = pd.read_csv(folder / "run" / "train_log.csv")
    return {
        "name": name,
        "variant": variant,
        "model": settings["train"]["model"],
        "image_size": settings["train"]["image_size"],
        "epochs": settings["train"]["epochs"],
        "auroc": auroc(labels, scores),
        "auroc_low": low,
        "auroc_high": high,
        "balanced_accuracy": metrics["balanced_accuracy"],
        "brier": metrics["brier"],
        "ece": metrics["ece"],
        "balanced_accuracy_chosen": chosen["balanced_accuracy"],
        "threshold": metrics["threshold"],
        "validation_by_class": evaluation.get("validation_by_class"),
        "final_loss": float(log.loss.iloc[-1]),
        "mean_score": float(np.mean(scores)),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs", type=Path, help="YAML list of {name, variant, train} (default: the demo's experiments)"
    )
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "demo")
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text())
    if args.runs:
        runs = yaml.safe_load(args.runs.read_text())
    else:
        runs = [
            {"name": name, "variant": e["variant"], "train": {k: v for k, v in e.items() if k != "variant"}}
            for name, e in params["experiments"].items()
        ]
    rows = []
    for entry in runs:
        rows.append(run(entry["name"], entry["variant"], entry.get("train", {}), params, args.out))
        r = rows[-1]
        print(
            f"{r['name']}: AUROC {r['auroc']:.3f} [{r['auroc_low']:.3f}, {r['auroc_high']:.3f}], balanced accuracy "
            f"{r['balanced_accuracy']:.3f} at 0.5, {r['balanced_accuracy_chosen']:.3f} at {r['threshold']:.3f} "
            f"(ECE {r['ece']:.3f}, Brier {r['brier']:.3f}) "
            f"(validation {r['validation_by_class']}), loss {r['final_loss']:.3f}, mean score "
            f"{r['mean_score']:.2f}, {r['cpu_s']} CPU s, {r['wall_s']} s",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
