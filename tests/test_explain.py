"""Grad-CAM (the grad-cam package) on a tiny smallcnn trained here, and the heat-in-box arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from csxa_data.errors import CsxaError
from csxa_data.synthetic.generate import SynthParams
from csxa_data.variants.spec import BuildParams, VariantSpec
from csxa_train.checkpoint import load_checkpoint, save_checkpoint
from csxa_train.explain import box_in_image, box_mask, explain, heat_share, pick_cases, target_layer
from csxa_train.fit import fit
from csxa_train.params import TrainParams

from helpers import tiny_variant

TINY = SynthParams(seed=5, cases=48, size_scale=0.15, asymptomatic_fraction=0.3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A cropped grey variant at 32 px and a smallcnn trained on it for one epoch."""
    root = tmp_path_factory.mktemp("explain")
    tiny_variant(
        root,
        TINY,
        "cropped",
        VariantSpec(crop="landmarks", colour="grey", out_size=32),
        BuildParams(shard_size=16, min_shards=2),
    )
    config = TrainParams.from_dict(
        dict(
            variant=str(root / "variant"),
            model="smallcnn",
            weights="none",
            epochs=1,
            batch_size=16,
            workers=0,
            eval_batch_size=16,
            image_size=32,
            val_fraction=0.2,
        )
    )
    fit(config, root / "results" / "tiny_cnn")
    return root


def test_box_is_mapped_through_the_crop_into_the_image():
    # crop 100 x 200 film pixels from (10, 20), resized to 50 x 50: x scale 0.5, y scale 0.25
    assert box_in_image([35, 70, 85, 170], [10, 20, 110, 220], 50, 50) == (12.5, 12.5, 37.5, 37.5)
    # a box reaching outside the crop is clipped to the image
    assert box_in_image([0, 0, 60, 500], [10, 20, 110, 220], 50, 50) == (0.0, 0.0, 25.0, 50.0)
    with pytest.raises(CsxaError, match="empty"):
        box_in_image([0, 0, 1, 1], [5, 5, 5, 9], 10, 10)
    with pytest.raises(CsxaError, match="landmark_box \\[0, True, 1, 1\\] is not four finite numbers"):
        box_in_image([0, True, 1, 1], [0, 0, 9, 9], 10, 10)
    for huge in (10**400, float("inf"), float("nan")):  # 10**400 made math.isfinite overflow (a traceback)
        with pytest.raises(CsxaError, match="landmark_box .* is not four finite numbers of film pixels"):
            box_in_image([huge, 0, 1, 1], [0, 0, 9, 9], 10, 10)


def test_heat_share_counts_pixel_centres_inside_the_box():
    cam = np.zeros((8, 8))
    cam[2, 3] = 3.0
    cam[7, 7] = 1.0
    assert heat_share(cam, (3, 2, 4, 3)) == pytest.approx(0.75)  # pixel (x 3, y 2), centre (3.5, 2.5)
    assert heat_share(cam, (0, 0, 3.4, 8)) == 0.0  # centre 3.5 is outside x < 3.4
    assert heat_share(np.ones((8, 8)), (0, 0, 4, 2)) == pytest.approx(box_mask((0, 0, 4, 2), 8, 8).mean()) == 0.125
    assert heat_share(np.zeros((4, 4)), (0, 0, 2, 2)) is None


class Bright(nn.Module):
    """Class 1's logit is the mean brightness after a 1x1 conv and a ReLU: Grad-CAM of class 1
    must put all the heat where the image is bright."""

    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(3, 1, 1, bias=False)
        nn.init.constant_(conv.weight, 1.0)
        self.features = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(1))

    def forward(self, x):
        s = self.features(x).mean(dim=(1, 2, 3))
        return torch.stack([-s, s], dim=1)


def test_gradcam_heat_lies_where_the_evidence_is():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = Bright()
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, 8:16, 4:12] = 1.0  # rows 8-15, columns 4-11
    name, layer, side = target_layer(model, 32)
    assert (name, side) == ("features.1", 32)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])[0]
    assert heat_share(heat, (4, 8, 12, 16)) == pytest.approx(1.0)
    assert heat_share(heat, (16, 16, 32, 32)) == pytest.approx(0.0)


def test_target_layer_keeps_a_map_that_can_say_where():
    from csxa_train.models import build_model

    resnet = build_model("resnet18", "none")
    assert target_layer(resnet, 224)[0::2] == ("layer4", 7)  # the usual layer at the paper's size
    assert target_layer(resnet, 32)[0::2] == ("layer2", 4)  # layer4 is 1 x 1 at 32 px
    assert target_layer(build_model("smallcnn"), 32)[0::2] == ("features.14", 4)


def test_pick_cases_most_confident_of_each_kind():
    frame = pd.DataFrame(
        {"key": list("abcdefg"), "label": [1, 1, 0, 0, 1, 1, 0], "score": [0.9, 0.95, 0.8, 0.6, 0.1, 0.3, 0.2]}
    )
    frame["pred"] = (frame.score >= 0.5).astype(int)
    picks = pick_cases(frame, 2)
    assert picks["tp"].key.tolist() == ["b", "a"] and picks["fp"].key.tolist() == ["c", "d"]
    assert picks["fn"].key.tolist() == ["e", "f"]


def test_explain_writes_the_sheet_and_the_heat_in_the_spine(trained, tmp_path):
    run = trained / "results" / "tiny_cnn"
    summary = explain(run / "checkpoint.pt", tmp_path, per_kind=3, progress=False)
    assert (tmp_path / "gradcam.png").is_file()
    from PIL import Image

    assert Image.open(tmp_path / "gradcam.png").format == "PNG"
    cases = pd.read_csv(tmp_path / "gradcam.csv", dtype={"key": str})
    predictions = pd.read_csv(run / "predictions.csv", dtype={"key": str})
    # every test case, scored as the trained run scored it, at its chosen threshold
    assert cases.key.tolist() == predictions.key.tolist()
    assert np.allclose(cases.score, predictions.score, atol=1e-6)
    assert (cases.pred == predictions.pred_at_threshold).all()
    shares = cases.heat_in_box.dropna()
    assert len(shares) > 0 and shares.between(0, 1).all() and cases.box_area.between(0, 1).all()
    assert summary == json.loads((tmp_path / "gradcam.json").read_text())
    assert summary["experiment"] == "tiny_cnn" and summary["n"] == len(cases)
    assert summary["heat_in_box"] == pytest.approx(shares.mean())
    # both means over the same cases: those with a map (an all-zero map has no heat to share out)
    assert summary["maps"] == len(shares) and summary["empty_maps"] == len(cases) - len(shares)
    assert summary["box_area"] == pytest.approx(cases.box_area[cases.heat_in_box.notna()].mean(), abs=1e-6)
    for kind, (label, pred) in {"tp": (1, 1), "fp": (0, 1), "fn": (1, 0)}.items():
        chosen = cases.set_index("key").loc[summary["by_kind"][kind]["cases"]]
        assert len(chosen) <= 3 and ((chosen.label == label) & (chosen.pred == pred)).all()


def test_the_summary_counts_empty_maps_and_averages_the_box_over_the_same_cases():
    from csxa_train.explain import summary_markdown

    row = {"experiment": "e", "variant": "data/variants/v", "model": "m", "layer": "layer2", "map_side": 4}
    text = summary_markdown([{**row, "n": 97, "maps": 86, "empty_maps": 11, "heat_in_box": 0.5, "box_area": 0.25}])
    assert "| e | v | m | layer2 (4) | 86 of 97 (11) | 50.0% | 25.0% | 2.00 |" in text


def test_explain_defaults_to_the_checkpoints_folder_and_is_reproducible(trained, tmp_path):
    run = trained / "results" / "tiny_cnn"
    explain(run / "checkpoint.pt", progress=False)
    explain(run / "checkpoint.pt", tmp_path, progress=False)
    for name in ("gradcam.png", "gradcam.csv", "gradcam.json"):
        assert (run / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_a_checkpoint_whose_variant_is_missing_is_one_clear_line(trained, tmp_path):
    state = load_checkpoint(trained / "results" / "tiny_cnn" / "checkpoint.pt")
    state["config"]["variant"] = str(tmp_path / "gone")
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "explain",
            "--checkpoint",
            str(tmp_path / "checkpoint.pt"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"csxa-train: error: {tmp_path / 'checkpoint.pt'}: its variant {tmp_path / 'gone'} is not here "
        "(no shards.json): build or pull it (dvc repro / dvc pull), or give --variant"
    ]
    assert not (tmp_path / "out").exists()


def test_a_tampered_test_shard_is_refused_as_training_refuses_it(trained, tmp_path):
    """explain reads the test split through the same verified reader as fit: a shard swapped for
    another (readable, but not the bytes shards.json lists) is one line naming it, nothing written."""
    import shutil

    variant = tmp_path / "variant"
    shutil.copytree(trained / "variant", variant)
    shard, other = sorted(variant.glob("test-*.tar"))[:2]
    shard.write_bytes(other.read_bytes())  # a well-formed shard, but not the one shards.json lists
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "explain",
            "--checkpoint",
            str(trained / "results" / "tiny_cnn" / "checkpoint.pt"),
            "--variant",
            str(variant),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("csxa-train: error: ") and shard.name in line and "sha256 differs" in line, line
    assert not (tmp_path / "out").exists()


def test_explain_all_runs_every_experiment_and_writes_the_summary_table(trained, tmp_path, capsys):
    import shutil

    import yaml

    from csxa_train.cli import main

    results = tmp_path / "results"
    for name in ("one", "two"):
        (results / name).mkdir(parents=True)
        shutil.copy(trained / "results" / "tiny_cnn" / "checkpoint.pt", results / name)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"experiments": {"one": {}, "two": {}}}))
    assert (
        main(
            [
                "explain",
                "--all",
                "--params",
                str(tmp_path / "params.yaml"),
                "--results",
                str(results),
                "--per-kind",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    table = (results / "gradcam.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| one", "| two"]
    one = json.loads((results / "one" / "gradcam.json").read_text())
    assert (
        f"| {one['heat_in_box']:.1%} | {one['box_area']:.1%} | {one['heat_in_box'] / one['box_area']:.2f} |" in table[2]
    )
    assert (results / "one" / "gradcam.csv").read_bytes() == (results / "two" / "gradcam.csv").read_bytes() != b""
    assert (results / "two" / "gradcam.png").is_file()  # titled with its own experiment
    # one of --checkpoint and --all, and --all takes no --out
    for argv in (["explain"], ["explain", "--all", "--checkpoint", "x.pt"], ["explain", "--all", "--out", "o"]):
        assert main(argv + ["--params", str(tmp_path / "params.yaml")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 3


def test_a_checkpoint_checked_out_as_a_link_into_dvcs_cache_keeps_its_experiments_name(tmp_path):
    """DVC may check a checkpoint out as a symlink into its cache (cache.type symlink): the name is
    the results folder's, not the cache folder's."""
    from csxa_train.explain import state_name

    (tmp_path / "cache" / "3f").mkdir(parents=True)
    (tmp_path / "cache" / "3f" / "abcdef").write_bytes(b"x")
    (tmp_path / "results" / "one").mkdir(parents=True)
    (tmp_path / "results" / "one" / "checkpoint.pt").symlink_to(tmp_path / "cache" / "3f" / "abcdef")
    (tmp_path / "results" / "two").symlink_to(tmp_path / "results" / "one")
    assert state_name(tmp_path / "results" / "one" / "checkpoint.pt") == "one"
    assert state_name(tmp_path / "results" / "two" / "checkpoint.pt") == "one"


@pytest.mark.parametrize("fault", ["missing", "linked"])
def test_explain_all_writes_nothing_when_a_checkpoint_is_missing_or_another_experiments(trained, tmp_path, fault):
    """Third audit: the first experiment's Grad-CAM files were rewritten before a missing second
    checkpoint stopped the run; a results folder linked to another's was explained and listed twice."""
    import shutil

    from csxa_train.explain import explain_all

    results = tmp_path / "results"
    (results / "one").mkdir(parents=True)
    shutil.copy(trained / "results" / "tiny_cnn" / "checkpoint.pt", results / "one")
    if fault == "linked":
        (results / "two").symlink_to(results / "one")
    with pytest.raises(CsxaError, match="nothing was written") as error:
        explain_all(["one", "two"], results, per_kind=1, progress=False)
    assert ("checkpoint not found" if fault == "missing" else "another experiment's folder") in str(error.value)
    assert sorted(p.name for p in (results / "one").iterdir()) == ["checkpoint.pt"]


def test_the_explain_stage_covers_every_experiment_and_the_readme_shows_its_table():
    from helpers import REPO, committed_text

    stage = yaml_load(REPO / "dvc.yaml")["stages"]["explain"]
    experiments = list(yaml_load(REPO / "params.yaml")["experiments"])
    assert [d for d in stage["deps"] if d.endswith("checkpoint.pt")] == [
        f"results/{e}/checkpoint.pt" for e in experiments
    ]
    variants = dict.fromkeys(e["variant"] for e in yaml_load(REPO / "params.yaml")["experiments"].values())
    assert [d for d in stage["deps"] if d.startswith("data/")] == [
        f"data/variants/{v}/{f}" for v in variants for f in ("shards.json", "stats.json")
    ]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    assert outs == [f"results/{e}/gradcam.{ext}" for e in experiments for ext in ("png", "csv", "json")] + [
        "results/gradcam.md"
    ]
    readme = committed_text("docs/results.md")
    rows = [line for line in committed_text("results/gradcam.md").splitlines() if line.startswith("| ")]
    assert len(rows) == len(experiments) + 1 and all(row in readme for row in rows), "README's Grad-CAM table differs"
    shown = [o for o in stage["outs"] if isinstance(o, dict) and next(iter(o)).endswith(".png")]
    assert shown and all(f"](../{next(iter(o))})" in readme for o in shown)  # the sheets in git are the README's


def yaml_load(path):
    import yaml

    return yaml.safe_load(path.read_text())


def test_the_variants_preview_reads_every_variant_by_its_shard_manifest():
    """variants_preview depends on each variant's shards.json and stats.json (which pin its shards),
    not on the folder: a publish rewrites a card and the stamp in params, neither of which it reads."""
    from helpers import REPO

    stage = yaml_load(REPO / "dvc.yaml")["stages"]["variants_preview"]
    variants = list(yaml_load(REPO / "params.yaml")["variants"])
    assert [d for d in stage["deps"] if d.startswith("data/")] == [
        f"data/variants/{v}/{f}" for v in variants for f in ("shards.json", "stats.json")
    ]
    assert "params" not in stage
