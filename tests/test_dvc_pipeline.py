"""The DVC pipeline for real: `dvc repro` builds every variant from the synthetic release, and
`dvc exp run -S` on one variant's parameter reruns that variant alone."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pandas as pd
import pytest
import yaml

from helpers import fresh_clone, tiny_params


def dvc(*args, cwd):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def ran(output):
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A committed copy of the project with a tiny synthetic release and small images, and four of
    the experiments (the reference, two grey and a colour one: each model stage runs in its own
    process, so seven would double the time without testing anything more)."""
    root = fresh_clone(tmp_path_factory.mktemp("project") / "p")
    tiny_params(
        root, experiments=("original_resnet", "cropped_resnet", "wide_cropped_resnet", "colored_cropped_resnet")
    )
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tiny params"], cwd=root, check=True
    )
    return root


@pytest.mark.slow
def test_repro_builds_every_variant_and_trains_then_exp_run_reruns_one(project):
    first = dvc("repro", cwd=project)
    variants = list(yaml.safe_load((project / "params.yaml").read_text())["variants"])
    assert {f"variant@{v}" for v in variants} <= ran(first)
    manifest = pd.read_csv(project / "data/ingest/manifest.csv")
    for name in variants:
        report = json.loads((project / "data/variants" / name / "shards.json").read_text())
        totals, spec = report["totals"], report["spec"]
        assert spec["both_orders_in_train"] is False or spec["colour"] == "grey"  # params.yaml: order a alone
        for split in ("train", "test"):
            cases = manifest[manifest.split == split]
            assert totals[split]["cases"] == len(cases)
            per_case = 2 if spec["colour"] == "stacked" and spec["both_orders_in_train"] and split == "train" else 1
            assert totals[split]["by_class"] == {
                str(k): int(v) * per_case for k, v in cases.label.value_counts().items()
            }
    for experiment in yaml.safe_load((project / "params.yaml").read_text())["experiments"]:
        metrics = json.loads((project / "results" / experiment / "metrics.json").read_text())
        assert metrics["n"] == int((manifest.split == "test").sum()) and "balanced_accuracy" in metrics
        assert all(isinstance(v, (int, float)) or v is None for v in metrics.values())  # few and flat
    compared = json.loads((project / "results/compare/compare.json").read_text())
    trained = set(yaml.safe_load((project / "params.yaml").read_text())["experiments"])
    assert set(compared["experiments"]) == trained | {"landmarks_logreg", "landmarks_gbt"}
    card = (project / "data/variants/cropped/README.md").read_text()
    assert card.startswith("---\n") and all(
        s["sha256"] in card for s in json.loads((project / "data/variants/cropped/shards.json").read_text())["shards"]
    )
    assert all((project / "results" / name / "MODEL_CARD.md").is_file() for name in trained)
    assert (
        "- Version: unpublished, workspace (data/variants/cropped)"
        in (project / "results/cropped_resnet/MODEL_CARD.md").read_text()
    )
    import mlcroissant as mlc

    for name in variants:  # every variant's Croissant metadata validates (warnings only: no version, no date)
        metadata = mlc.Dataset(jsonld=str(project / "data/variants" / name / "croissant.json")).metadata
        assert "error" not in metadata.issues.report().lower(), (name, metadata.issues.report())
    assert "results/compare/compare.json" in dvc("metrics", "show", cwd=project)
    assert ran(dvc("repro", cwd=project)) == set()
    experiment = dvc("exp", "run", "-S", "variants.cropped.out_size=40", cwd=project)
    assert ran(experiment) == {
        "variant@cropped",
        "variants_preview",
        "train@cropped_resnet",
        "cv@cropped_resnet",
        "label_issues",
        "compare",
        "explain",
    }, experiment
    sample = json.loads((project / "data/variants/cropped/shards.json").read_text())
    assert sample["spec"]["out_size"] == 40


def test_no_parameter_is_named_like_dvc_run_cache_metadata():
    """DVC's run cache hashes params without keys named 'size' or 'nfiles' (it strips them as file
    metadata), so a change to such a parameter would restore a stale output. Guard the names."""
    from helpers import REPO

    def keys(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield f"{path}.{key}".lstrip("."), str(key)
                yield from keys(value, f"{path}.{key}")

    blind = [
        full for full, key in keys(yaml.safe_load((REPO / "params.yaml").read_text())) if key in ("size", "nfiles")
    ]
    assert blind == []


def test_paper_params_mirror_the_demo_params():
    """params.paper.yaml (the paper's full protocol) has exactly the demo's keys, with the paper's values."""
    from helpers import REPO

    def keys(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield f"{path}.{key}".lstrip(".")
                yield from keys(value, f"{path}.{key}")

    demo = yaml.safe_load((REPO / "params.yaml").read_text())
    paper = yaml.safe_load((REPO / "params.paper.yaml").read_text())
    assert sorted(keys(demo)) == sorted(keys(paper))
    train = paper["train"]
    assert (train["model"], train["weights"], train["epochs"], train["image_size"]) == ("resnet50", "imagenet", 30, 224)
    assert (train["lr"], train["lr_step"], train["lr_gamma"], train["balance"]) == (0.0003, 5, 0.5, "smote")
    assert paper["experiments"]["original_vgg"]["model"] == "vgg19"
    assert paper["variants"]["original"]["centre_size"] == 500
    assert (paper["variants"]["wide_cropped"]["grow_x"], paper["variants"]["wide_cropped"]["grow_y"]) == (100, 200)
    assert all(v["out_size"] == 224 for v in paper["variants"].values())


@pytest.mark.slow
def test_readme_dvc_recipes_run_as_written(project):
    """The README's commands for reading results with DVC, run verbatim after the pipeline."""
    import shlex

    from helpers import REPO

    readme = (REPO / "docs" / "comparison.md").read_text()
    section = readme[readme.index("### Reading the results with DVC") :]
    block = section[section.index("```bash") + len("```bash") :]
    commands = [line for line in block[: block.index("```")].splitlines() if line.strip()]
    assert len(commands) >= 4 and all(c.startswith("dvc ") for c in commands)
    dvc("repro", cwd=project)
    outputs = {c: dvc(*shlex.split(c)[1:], cwd=project) for c in commands}
    kept = outputs["dvc exp show --no-pager --md --drop '.*' --keep 'Experiment|.*balanced_accuracy$|.*auroc$'"]
    assert "balanced_accuracy" in kept and "lr_step" not in kept and "loss" not in kept
    assert "reference" in outputs["dvc metrics show results/compare/compare.json"]

    recipe = readme[readme.index("### Comparing two preprocessings with `dvc exp run`") :]
    block = recipe[recipe.index("```bash") + len("```bash") :]
    run_it, show_it = [line for line in block[: block.index("```")].splitlines() if line.strip()]
    assert ran(dvc(*shlex.split(run_it)[1:], cwd=project)) == {
        "variant@wide_cropped",
        "variants_preview",
        "train@wide_cropped_resnet",
        "cv@wide_cropped_resnet",
        "label_issues",
        "compare",
        "explain",
    }
    shown = dvc(*shlex.split(show_it)[1:], cwd=project)
    assert "wide-y120" in shown and "| variants.wide_cropped.grow_y" in shown and "lr_step" not in shown
    assert "experiments.wide_cropped_resnet.auroc" in shown and "colored" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 120, shown


def test_committed_lock_matches_the_code_and_params():
    """dvc.lock must describe the code and parameters it was built from: a change to a stage's code
    or params committed without `dvc repro` makes every fresh clone rebuild that stage (and the
    README's fresh-clone test fail after half an hour). `dvc status` reads hashes only, in seconds,
    with or without the data present; outputs and data deps missing in a fresh clone are fine."""
    from helpers import REPO

    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    status = subprocess.run(
        ["dvc", "status", "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True
    )
    stale = {}
    for stage, changes in json.loads(status.stdout or "{}").items():
        for change in changes:
            if not isinstance(change, dict):  # "changed command" and the like
                stale.setdefault(stage, []).append(str(change))
                continue
            for path, what in change.get("changed deps", {}).items():
                if not path.startswith(("data/", "results/")):
                    stale.setdefault(stage, []).append(f"{path}: {what}")
    assert stale == {}, f"dvc.lock is stale (run `dvc repro` and commit dvc.lock): {stale}"
