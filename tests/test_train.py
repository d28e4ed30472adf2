"""csxa_train on a tiny synthetic variant: real torch training steps, real shards, real torchrun."""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from csxa_data.errors import CsxaError
from csxa_data.ingest.outputs import read_manifest
from csxa_data.synthetic.generate import SynthParams
from csxa_data.variants.build import build_variant
from csxa_data.variants.spec import BuildParams, VariantSpec
from csxa_train.augment import AugmentParams, augment_batch, draw_params
from csxa_train.balance import smote_oversample
from csxa_train.checkpoint import load_checkpoint
from csxa_train.data import eval_loader, load_split, normalisation, shard_urls
from csxa_train.fit import evaluate_checkpoint, fit
from csxa_train.models import build_model
from csxa_train.params import TrainParams
from csxa_train.trainset import case_stem

from helpers import tiny_variant

# a quarter of the films asymptomatic, so that both classes are in both splits of a tiny atlas
TINY = SynthParams(seed=5, cases=64, size_scale=0.2, asymptomatic_fraction=0.25)


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    return tiny_variant(
        tmp_path_factory.mktemp("train-data"),
        TINY,
        "colored_cropped",
        VariantSpec(crop="landmarks", colour="stacked", out_size=32),
        BuildParams(shard_size=16, min_shards=4),
    )


def config(variant, **overrides):
    settings = dict(
        variant=str(variant),
        model="smallcnn",
        weights="none",
        balance="smote",
        epochs=1,
        batch_size=16,
        workers=0,
        eval_batch_size=16,
    )
    settings.update(overrides)
    return TrainParams.from_dict(settings)


@pytest.fixture(scope="module")
def fitted(variant, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "run"
    metrics = fit(config(variant, threshold="youden"), out)
    return out, metrics


def test_fit_writes_metrics_predictions_and_checkpoint(fitted, variant):
    out, metrics = fitted
    for name in (
        "checkpoint.pt",
        "metrics.json",
        "evaluation.json",
        "predictions.csv",
        "roc.csv",
        "confusion.csv",
        "calibration.csv",
        "train_log.csv",
        "report.png",
    ):
        assert (out / name).is_file(), name
    predictions = pd.read_csv(out / "predictions.csv", dtype={"key": str})
    report = json.loads((variant / "shards.json").read_text())
    assert len(predictions) == report["totals"]["test"]["samples"] and predictions.key.is_unique
    assert json.loads((out / "metrics.json").read_text())["n"] == len(predictions)
    assert len(pd.read_csv(out / "train_log.csv")) == 1


def test_loading_the_checkpoint_reproduces_the_predictions_exactly(fitted, tmp_path):
    out, _ = fitted
    evaluate_checkpoint(out / "checkpoint.pt", tmp_path / "again")
    first = pd.read_csv(out / "predictions.csv", dtype={"key": str})
    again = pd.read_csv(tmp_path / "again" / "predictions.csv", dtype={"key": str})
    pd.testing.assert_frame_equal(first, again)


def test_checkpoint_loads_with_weights_only(fitted):
    out, _ = fitted
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and state["config"]["model"] == "smallcnn"


def test_metrics_match_scikit_learn_and_report_the_baseline(fitted):
    from sklearn import metrics as sk

    out, _ = fitted
    p = pd.read_csv(out / "predictions.csv", dtype={"key": str})
    m = json.loads((out / "evaluation.json").read_text())
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(p.label, p.pred))
    assert m["precision"] == pytest.approx(sk.precision_score(p.label, p.pred, zero_division=0))
    assert m["sensitivity"] == pytest.approx(sk.recall_score(p.label, p.pred))
    assert m["specificity"] == pytest.approx(sk.recall_score(p.label, p.pred, pos_label=0))
    assert m["f1"] == pytest.approx(sk.f1_score(p.label, p.pred, zero_division=0))
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(p.label, p.pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(p.label, p.pred, average="macro", zero_division=0))
    assert m["auroc"] == pytest.approx(sk.roc_auc_score(p.label, p.score))
    tn, fp, fn, tp = sk.confusion_matrix(p.label, p.pred, labels=[0, 1]).ravel()
    assert m["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    baseline = m["baseline"]
    assert baseline["rule"] == "always class 1"
    assert baseline["accuracy"] == pytest.approx((p.label == 1).mean())
    assert baseline["balanced_accuracy"] == 0.5 and baseline["specificity"] == 0 and baseline["auroc"] == 0.5
    assert m["brier"] == pytest.approx(sk.brier_score_loss(p.label, p.score))
    t = m["threshold"]
    assert (p.pred_at_threshold == (p.score >= t)).all()
    assert m["at_threshold"]["balanced_accuracy"] == pytest.approx(
        sk.balanced_accuracy_score(p.label, p.pred_at_threshold)
    )
    roc = pd.read_csv(out / "roc.csv")
    fpr, tpr, _ = sk.roc_curve(p.label, p.score, drop_intermediate=False)
    assert np.allclose(roc.fpr, fpr, atol=1e-6) and np.allclose(roc.tpr, tpr, atol=1e-6)


def test_metrics_json_is_few_flat_numbers_and_details_go_to_evaluation_json(fitted):
    out, _ = fitted
    headline = json.loads((out / "metrics.json").read_text())
    details = json.loads((out / "evaluation.json").read_text())
    assert len(headline) <= 15 and all(v is None or isinstance(v, (int, float)) for v in headline.values())
    assert headline["balanced_accuracy_at_threshold"] == details["at_threshold"]["balanced_accuracy"]
    assert headline["baseline_accuracy"] == details["baseline"]["accuracy"] and "confusion" in details


def test_smote_balances_the_train_split_and_never_touches_test(fitted, variant):
    out, metrics = fitted
    _, labels, keys = load_split(variant, "train")
    per_case = {case_stem(k): y for k, y in zip(keys, labels)}  # a colour variant: two orders per case
    cases = np.bincount(list(per_case.values()))
    held = [metrics["validation_by_class"].get(str(c), 0) for c in (0, 1)]
    counts = cases - np.array(held)
    assert metrics["smote_synthetic"] == counts.max() - counts.min() > 0
    assert metrics["train_by_class"] == {"0": int(counts[0]), "1": int(counts[1])}
    assert metrics["train_samples"] == metrics["train_cases"] == counts.sum()  # one sample per case per epoch
    predictions = pd.read_csv(out / "predictions.csv", dtype={"key": str})
    test_keys = [k for batch in eval_loader(variant, 8, 0) for k in batch["key"]]
    assert sorted(predictions.key) == sorted(test_keys)


def test_smote_output_balanced_and_in_range():
    rng = np.random.default_rng(0)
    minority = np.stack(
        [np.full((3, 4, 4), 10, np.uint8), np.full((3, 4, 4), 250, np.uint8), np.full((3, 4, 4), 200, np.uint8)]
    )
    majority = rng.integers(0, 256, size=(20, 3, 4, 4), dtype=np.uint8)
    images, labels = np.concatenate([minority, majority]), np.r_[np.zeros(3, int), np.ones(20, int)]
    new, new_labels = smote_oversample(images, labels, seed=1, k_neighbors=2, chunk=5)
    assert new.dtype == np.uint8 and len(new) == 17 and (new_labels == 0).all()
    assert new.min() >= 10 and new.max() <= 250  # between minority samples; uint8 arithmetic would wrap
    assert np.bincount(np.r_[labels, new_labels]).tolist() == [20, 20]
    with pytest.raises(CsxaError, match="uint8"):
        smote_oversample(images.astype(np.float32), labels, seed=1)


def test_evaluation_inputs_identical_across_passes_and_train_augmentation_varies(variant):
    first = [b["image"] for b in eval_loader(variant, 8, 0)]
    second = [b["image"] for b in eval_loader(variant, 8, 0)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    x = first[0].float() / 255
    generator = torch.Generator().manual_seed(0)
    augmented = augment_batch(x, AugmentParams(), generator)
    assert augmented.shape == x.shape and not torch.equal(augmented, x)


def test_rotations_stay_within_80_degrees():
    params = draw_params(20000, AugmentParams(), torch.Generator().manual_seed(1))
    assert params["angle_first"].abs().max() <= 20 and params["angle_second"].abs().max() <= 60
    assert params["angle"].abs().max() <= 80 and params["angle"].abs().max() > 70
    assert abs(params["angle"].mean()) < 1.5
    assert 0.45 < (params["flip_x"] < 0).double().mean() < 0.55 and 0.45 < (params["flip_y"] < 0).double().mean() < 0.55


def test_reflection_padding_leaves_no_black_corners_and_zeros_does():
    """The paper's rotations fill the corners black, unlike any upright test film; reflection
    padding fills them with the film itself."""
    x = torch.rand(16, 3, 32, 32) * 0.5 + 0.25  # no pixel near 0
    rotate = {"hflip": 0.0, "vflip": 0.0, "rotate_first": 45.0, "rotate_second": 0.0}
    black = augment_batch(x, AugmentParams(**rotate, padding="zeros"), torch.Generator().manual_seed(3))
    mirrored = augment_batch(x, AugmentParams(**rotate, padding="reflection"), torch.Generator().manual_seed(3))
    assert (black < 0.05).any() and not (mirrored < 0.2).any()


def test_an_unknown_padding_and_the_small_resnet():
    from csxa_train.models import build_model

    with pytest.raises(CsxaError, match="train.augment.padding must be zeros, border or reflection, not 'black'"):
        TrainParams.from_dict({"variant": "v", "augment": {"padding": "black"}})
    model = build_model("resnetsmall")
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 2) and hasattr(model, "layer4")
    with pytest.raises(CsxaError, match="resnetsmall has no pretrained weights"):
        build_model("resnetsmall", "imagenet")
    with pytest.raises(CsxaError, match="resnetsmall needs images of at least 16 px"):
        model(torch.zeros(1, 3, 8, 8))


def test_imagenet_weights_offline_give_a_clear_error(tmp_path, variant):
    closed = "http://127.0.0.1:9"  # nothing listens: the download fails at once, as offline
    env = {
        **os.environ,
        "TORCH_HOME": str(tmp_path),
        "https_proxy": closed,
        "HTTPS_PROXY": closed,
        "http_proxy": closed,
        "HTTP_PROXY": closed,
        "no_proxy": "",
        "NO_PROXY": "",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "fit",
            "--variant",
            str(variant),
            "--out",
            str(tmp_path / "out"),
            "--model",
            "resnet18",
            "--weights",
            "imagenet",
            "--epochs",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert (
        "cannot download the ImageNet weights of resnet18" in line
        and "set the model's weights to that file's path" in line
    )


def test_local_weights_file_is_loaded(tmp_path):
    torch.manual_seed(3)
    from torchvision.models import resnet18

    reference = resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = build_model("resnet18", str(tmp_path / "resnet18.pth"))
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert model.fc.out_features == 2
    (tmp_path / "bad.pth").write_bytes(b"not weights")
    with pytest.raises(CsxaError, match="cannot load as a weights file"):
        build_model("resnet18", str(tmp_path / "bad.pth"))


def test_streams_shards_over_http(variant):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(variant))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remote = [k for batch in eval_loader(url, 8, 0) for k in batch["key"]]
        local = [k for batch in eval_loader(variant, 8, 0) for k in batch["key"]]
        assert remote == local and len(remote) > 0
        mean, _ = normalisation(url)
        assert torch.allclose(mean, normalisation(variant)[0])
        assert shard_urls(url, "train")[0].startswith("http://127.0.0.1")
    finally:
        server.shutdown()


def torchrun(*args, timeout=600):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "csxa_train",
        *args,
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_ddp_two_processes_score_every_test_sample_once(fitted, variant, tmp_path):
    out, _ = fitted
    torchrun(
        "evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "ddp-eval"), "--workers", "1"
    )
    single = pd.read_csv(out / "predictions.csv", dtype={"key": str})
    ddp = pd.read_csv(tmp_path / "ddp-eval" / "predictions.csv", dtype={"key": str})
    assert ddp.key.is_unique and list(ddp.key) == list(single.key)
    assert np.allclose(ddp.score, single.score, atol=1e-5)
    assert json.loads((tmp_path / "ddp-eval" / "evaluation.json").read_text())["world_size"] == 2
    torchrun(
        "fit",
        "--variant",
        str(variant),
        "--out",
        str(tmp_path / "ddp-fit"),
        "--model",
        "smallcnn",
        "--weights",
        "none",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "1",
    )
    fitted_ddp = pd.read_csv(tmp_path / "ddp-fit" / "predictions.csv", dtype={"key": str})
    assert list(fitted_ddp.key) == list(single.key)


def test_interrupted_run_resumes_and_ends_where_an_uninterrupted_one_does(variant, tmp_path):
    # vggsmall has dropout: a resumed run must draw the same masks as an uninterrupted one
    args = [
        sys.executable,
        "-m",
        "csxa_train",
        "fit",
        "--variant",
        str(variant),
        "--model",
        "vggsmall",
        "--weights",
        "none",
        "--epochs",
        "8",
        "--batch-size",
        "8",
        "--workers",
        "0",
    ]
    whole = subprocess.run(args + ["--out", str(tmp_path / "whole")], capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    victim = subprocess.Popen(
        args + ["--out", str(tmp_path / "cut")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoint = tmp_path / "cut" / "checkpoint.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done_before = load_checkpoint(checkpoint)["epoch"] + 1
    assert done_before < 8, "the run finished before it could be interrupted"
    resumed = subprocess.run(args + ["--out", str(tmp_path / "cut")], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {checkpoint} after epoch {done_before}" in resumed.stdout
    log = pd.read_csv(tmp_path / "cut" / "train_log.csv")
    assert log.epoch.tolist() == list(range(1, 9))
    pd.testing.assert_frame_equal(log, pd.read_csv(tmp_path / "whole" / "train_log.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "cut" / "predictions.csv"), pd.read_csv(tmp_path / "whole" / "predictions.csv")
    )


def test_missing_or_damaged_shard_is_one_clear_line(fitted, variant, tmp_path):
    import shutil

    out, _ = fitted
    copy = tmp_path / "variant"
    shutil.copytree(variant, copy)
    shards = sorted(copy.glob("test-*.tar"))
    shards[0].unlink()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "evaluate",
            "--checkpoint",
            str(out / "checkpoint.pt"),
            "--variant",
            str(copy),
            "--out",
            str(tmp_path / "e"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "listed in shards.json but missing" in result.stderr.strip().splitlines()[-1]
    shutil.copy(variant / shards[0].name, shards[0])
    data = bytearray(shards[1].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the middle of a PNG
    shards[1].write_bytes(bytes(data))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csxa_train",
            "evaluate",
            "--checkpoint",
            str(out / "checkpoint.pt"),
            "--variant",
            str(copy),
            "--out",
            str(tmp_path / "e"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "sha256 differs from shards.json" in result.stderr


# --- fair colour variants, validation part, operating points (issue 9) ----------------------------


@pytest.fixture(scope="module")
def grey_twin(variant, tmp_path_factory):
    """The grey variant of the same cases (the tiny atlas the colour fixture was built from)."""
    root = variant.parent
    out = tmp_path_factory.mktemp("grey") / "variant"
    build_variant(
        "cropped",
        VariantSpec(crop="landmarks", colour="grey", out_size=32),
        read_manifest(root / "ingest" / "manifest.csv"),
        root / "synth" / "release",
        out,
        BuildParams(shard_size=16, min_shards=4),
        workers=2,
        progress=False,
    )
    return out


def test_order_b_is_order_a_with_channels_1_and_2_swapped(variant):
    from csxa_train.data import swap_orders
    from csxa_train.trainset import one_sample_per_case

    images, labels, keys = load_split(variant, "train")
    by_key = dict(zip(keys, images))
    cases, case_labels, stems = one_sample_per_case(images, labels, keys, colour=True)
    assert len(stems) == len(set(stems)) == len(keys) // 2 and all(f"{s}_b" in by_key for s in stems)
    for image, stem in zip(cases, stems):
        assert np.array_equal(image, by_key[f"{stem}_a"])
        assert np.array_equal(swap_orders(image[None])[0], by_key[f"{stem}_b"])


def test_colour_and_grey_variants_take_the_same_samples_and_smote_count(variant, grey_twin):
    from csxa_train.trainset import train_data

    colour = train_data(config(variant))
    grey = train_data(config(grey_twin))
    literal = train_data(config(variant, train_orders="both"))
    assert colour.colour and not grey.colour
    assert colour.counts == grey.counts  # same cases, validation part, majority and SMOTE count
    assert len(colour.labels) == len(grey.labels) == colour.counts["train_cases"] + colour.counts["smote_synthetic"]
    # the paper's literal reading: both orders as separate samples, twice the steps and the SMOTE samples
    assert literal.counts["train_samples"] == 2 * colour.counts["train_cases"]
    assert literal.counts["smote_synthetic"] == 2 * colour.counts["smote_synthetic"]


def test_validation_part_is_by_case_stratified_seeded_and_outside_training(variant):
    from csxa_data.splits import validation_cases
    from csxa_train.trainset import one_sample_per_case, train_data

    images, labels, keys = load_split(variant, "train")
    _, case_labels, stems = one_sample_per_case(images, labels, keys, colour=True)
    held = validation_cases(case_labels, stems, 0.25, seed=1)
    assert np.array_equal(held, validation_cases(case_labels, stems, 0.25, seed=1))
    for cls in (0, 1):
        assert held[case_labels == cls].sum() == round(0.25 * (case_labels == cls).sum())
    data = train_data(config(variant, val_fraction=0.25, balance="none"))
    assert len(data.val_labels) == held.sum() and len(data.labels) == len(case_labels) - held.sum()
    val_rows = {data.val_images[i].tobytes() for i in range(len(data.val_images))}
    assert not any(data.images[i].numpy().tobytes() in val_rows for i in range(len(data.images)))


def test_one_channel_order_per_case_per_epoch_is_drawn_seeded():
    from csxa_train.loop import epoch_orders_drawn

    cfg = TrainParams.from_dict({"variant": "x", "seed": 3})
    first, again, later = (epoch_orders_drawn(4000, cfg, e) for e in (0, 0, 1))
    assert torch.equal(first, again) and not torch.equal(first, later)
    assert 0.45 < first.double().mean() < 0.55


def test_normalisation_is_that_of_both_orders_as_the_model_sees_them(variant, tmp_path):
    import shutil

    from csxa_train.data import model_normalisation, swap_orders

    images, _, _ = load_split(variant, "train")
    a = images[::2].astype(np.float64) / 255  # keys sort as STEM_a, STEM_b: every other sample is order a
    both = np.concatenate([a, swap_orders(a)])
    copy = tmp_path / "variant"
    shutil.copytree(variant, copy)
    stats = {"mean": a.mean(axis=(0, 2, 3)).tolist(), "std": a.std(axis=(0, 2, 3)).tolist()}
    (copy / "stats.json").write_text(json.dumps(stats))  # a variant whose stats cover order a only
    mean, std = model_normalisation(copy, colour=True)
    assert np.allclose(mean.flatten(), both.mean(axis=(0, 2, 3)), atol=1e-5)
    assert np.allclose(std.flatten(), both.std(axis=(0, 2, 3)), atol=1e-5)
    pooled_mean, _ = model_normalisation(variant, colour=True)  # stats.json pooled over both orders: unchanged
    assert torch.allclose(pooled_mean, normalisation(variant)[0], atol=1e-6)


@pytest.fixture(scope="module")
def one_order_twin(variant, tmp_path_factory):
    """The same colour variant stored with order a only (``both_orders_in_train: false``)."""
    root = variant.parent
    out = tmp_path_factory.mktemp("one-order") / "variant"
    build_variant(
        "colored_cropped",
        VariantSpec(crop="landmarks", colour="stacked", both_orders_in_train=False, out_size=32),
        read_manifest(root / "ingest" / "manifest.csv"),
        root / "synth" / "release",
        out,
        BuildParams(shard_size=16, min_shards=4),
        workers=2,
        progress=False,
    )
    return out


def test_one_order_shards_train_exactly_as_two_order_shards(variant, one_order_twin, fitted, tmp_path):
    """Order b derived from order-a-only shards is the stored order b, pixel for pixel, so the train
    data (both ``train_orders``, SMOTE, validation part), the normalisation and a whole run agree."""
    from csxa_train.data import model_normalisation, swap_orders
    from csxa_train.trainset import train_data

    images, _, keys = load_split(one_order_twin, "train")
    stored_images, _, stored_keys = load_split(variant, "train")
    stored = dict(zip(stored_keys, stored_images))
    assert len(keys) == len(stored_keys) // 2 and all(case_stem(k) == k for k in keys)
    for key, image in zip(keys, images):
        assert np.array_equal(image, stored[f"{key}_a"])
        assert np.array_equal(swap_orders(image[None])[0], stored[f"{key}_b"])
    for orders in ("draw", "both"):
        one, two = (train_data(config(v, train_orders=orders)) for v in (one_order_twin, variant))
        assert torch.equal(one.images, two.images) and torch.equal(one.labels, two.labels) and one.colour
        assert np.array_equal(one.val_images, two.val_images) and one.counts == two.counts
    for got, want in zip(model_normalisation(one_order_twin, True), model_normalisation(variant, True)):
        assert torch.allclose(got, want, atol=1e-6)
    metrics = fit(config(one_order_twin, threshold="youden"), tmp_path / "run")
    scores = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"key": str})
    reference = pd.read_csv(fitted[0] / "predictions.csv", dtype={"key": str})
    assert scores.key.tolist() == reference.key.tolist()
    assert np.allclose(scores.score, reference.score, atol=1e-4)
    assert metrics["auroc"] == pytest.approx(fitted[1]["auroc"], abs=1e-6)


def test_test_time_score_is_the_mean_of_both_orders(fitted, variant):
    from csxa_train.loop import score_batch

    out, _ = fitted
    state = load_checkpoint(out / "checkpoint.pt")
    model = build_model("smallcnn", "none")
    model.load_state_dict(state["model"])
    model.eval()
    mean, std = (torch.tensor(state["normalisation"][k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    batch = next(iter(eval_loader(variant, 8, 0)))
    cfg, cpu = config(variant), torch.device("cpu")
    a, b = (score_batch(model, batch["image"], mean, std, cfg, cpu, (o,)) for o in ("a", "b"))
    both = score_batch(model, batch["image"], mean, std, cfg, cpu, ("a", "b"))
    assert np.allclose(both, (a + b) / 2, atol=1e-6) and not np.allclose(a, b)
    predictions = pd.read_csv(out / "predictions.csv", dtype={"key": str}).set_index("key")
    assert np.allclose(predictions.loc[batch["key"], "score"], both, atol=1e-6)
    assert (
        state["colour"] is True and state["threshold"] == json.loads((out / "evaluation.json").read_text())["threshold"]
    )


def test_calibration_csv_and_threshold_come_from_the_run(fitted):
    out, details = fitted
    calibration = pd.read_csv(out / "calibration.csv")
    predictions = pd.read_csv(out / "predictions.csv", dtype={"key": str})
    assert len(calibration) == 10 and calibration["count"].sum() == len(predictions)
    assert details["threshold_rule"] == "youden" and "youden" in details["threshold_note"]
    assert 0 <= details["ece"] <= 1


# --- the command line (issue 8, item 8) ------------------------------------------------------------


def test_fit_help_names_every_model_and_explains_every_option():
    from csxa_train import cli, models

    assert cli.MODELS == models.MODELS
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices
    text = sub["fit"].format_help()
    assert all(name in text for name in models.MODELS)
    for name in ("fit", "evaluate", "compare"):
        for action in sub[name]._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def _params(tmp_path, variant, **experiment):
    path = tmp_path / "params.yaml"
    path.write_text(
        json.dumps(
            {
                "train": {
                    "model": "smallcnn",
                    "weights": "none",
                    "epochs": 1,
                    "batch_size": 16,
                    "workers": 0,
                    "eval_batch_size": 16,
                },
                "experiments": {"tiny": {"variant": str(variant), **experiment}},
            }
        )
    )
    return path


def test_unknown_experiment_key_is_named_as_in_the_experiment(tmp_path, variant, capsys):
    from csxa_train.cli import main

    assert (
        main(
            [
                "fit",
                "--params",
                str(_params(tmp_path, variant, epochz=3)),
                "--experiment",
                "tiny",
                "--variant",
                str(variant),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "unknown key(s) ['epochz'] in experiments.tiny" in capsys.readouterr().err


def test_unknown_model_refused_before_any_data_and_no_empty_output_left(tmp_path, capsys):
    from csxa_train.cli import main

    out = tmp_path / "never"
    assert main(["fit", "--variant", str(tmp_path / "no-such-variant"), "--model", "resnet9", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train.model must be one of" in err and "resnet9" in err and not out.exists()
    assert (
        main(
            [
                "fit",
                "--variant",
                str(tmp_path / "no-such-variant"),
                "--model",
                "smallcnn",
                "--weights",
                "none",
                "--out",
                str(out),
            ]
        )
        == 2
    )  # fails reading the variant: the folder it made is removed
    assert "not found" in capsys.readouterr().err and not out.exists()


def test_fit_out_defaults_to_results_experiment(tmp_path, variant, monkeypatch):
    from csxa_train.cli import main

    params = _params(tmp_path, variant)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--params", str(params), "--experiment", "tiny", "--variant", str(variant)]) == 0
    assert (tmp_path / "results" / "tiny" / "metrics.json").is_file()


def test_fit_writes_a_model_card_with_the_data_version_and_the_baseline(fitted, variant):
    out, _ = fitted
    card = (out / "MODEL_CARD.md").read_text()
    shards = json.loads((variant / "shards.json").read_text())["shards"]
    assert card.startswith("---\n") and shards[0]["sha256"] in card
    assert "| balanced accuracy |" in card and "majority baseline" in card and "not a diagnostic device" in card


def test_one_sample_per_case_takes_order_a_derives_it_from_b_and_refuses_contradictions():
    from csxa_train.data import swap_orders
    from csxa_train.trainset import one_sample_per_case

    images = np.arange(5 * 3 * 2 * 2, dtype=np.uint8).reshape(5, 3, 2, 2)
    keys = ["0000002_a", "0000002_b", "0000001_b", "0000003", "0000004_a"]
    out, labels, stems = one_sample_per_case(images, np.array([1, 1, 0, 1, 0]), keys, colour=True)
    assert stems == ["0000001", "0000002", "0000003", "0000004"] and labels.tolist() == [0, 1, 1, 0]
    assert np.array_equal(out[0], swap_orders(images[2:3])[0]) and np.array_equal(out[1], images[0])
    with pytest.raises(CsxaError, match="disagree on its class"):
        one_sample_per_case(images[:2], np.array([1, 0]), keys[:2], colour=True)
    with pytest.raises(CsxaError, match="two samples in a grey variant"):
        one_sample_per_case(images[:2], np.array([1, 1]), ["0000002", "0000002"], colour=False)


def test_checkpoint_identity_covers_exactly_the_train_stages_code():
    """The checkpoint digest hashes the training code, read from the imports (the command's module and
    every module fit imports, directly or not), and dvc.yaml's train stage lists exactly that code:
    an unrelated module changes no retrained checkpoint, an edit to training code stops a resume."""
    from csxa_train.params import module_closure, training_code
    from tools.stage_code import expand, listed_code

    from helpers import REPO

    code = training_code()
    assert {
        "csxa_train/cli.py",
        "csxa_train/fit.py",
        "csxa_data/shards/verify.py",
        "csxa_data/atomic.py",
        "csxa_data/errors.py",
        "csxa_data/params.py",
        "schemas/shards.py",
    } <= set(code)
    assert not {"csxa_train/report/table.py", "csxa_train/explain.py", "csxa_data/synthetic/generate.py"} & set(code)
    assert expand(listed_code((REPO / "dvc.yaml").read_text(), "train")) == code
    assert all((REPO / name).is_file() for name in code)
    # a module imported only inside a function counts; a module named only in a string does not
    assert "csxa_data/registry.py" in module_closure(("csxa_data.shards.sources",))


def test_every_stage_lists_the_code_its_command_imports():
    """No stage misses a module its command imports (directly or not) nor lists one it does not:
    ``python tools/stage_code.py --write`` mends dvc.yaml."""
    from tools.stage_code import differences

    from helpers import REPO

    assert differences((REPO / "dvc.yaml").read_text()) == []


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda s: s["config"].update(model="vggsmall"), "its weights do not fit a vggsmall (RuntimeError: "),
        (
            lambda s: s.update(normalisation="oops"),
            "its normalisation is not three finite means and three positive stds",
        ),
        (lambda s: s.update(threshold=float("nan")), "its threshold nan is not a number within [0, 1]"),
        (lambda s: s.update(colour=False), "it was trained on a grey variant; "),
    ],
)
def test_a_tampered_checkpoint_is_one_line_naming_it_before_scoring(fitted, tmp_path, change, says):
    """Second audit: these were tracebacks, or (a NaN threshold, a grey model on a colour variant)
    silently wrong metrics."""
    from csxa_train.checkpoint import load_checkpoint, save_checkpoint
    from csxa_train.fit import evaluate_checkpoint

    out, _ = fitted
    state = load_checkpoint(out / "checkpoint.pt")
    change(state)
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    with pytest.raises(CsxaError) as error:
        evaluate_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "eval")
    assert str(error.value).startswith(f"{tmp_path / 'checkpoint.pt'}: {says}"), str(error.value)
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("command", ["evaluate", "explain"])
def test_a_bad_setting_saved_in_a_checkpoint_is_blamed_on_the_checkpoint(fitted, tmp_path, command):
    """A bad value in a checkpoint's saved settings was reported against params.yaml, a file the
    user never gave; it now names the checkpoint."""
    from csxa_train.checkpoint import load_checkpoint, save_checkpoint
    from csxa_train.explain import explain
    from csxa_train.fit import evaluate_checkpoint

    out, _ = fitted
    state = load_checkpoint(out / "checkpoint.pt")
    state["config"]["batch_size"] = "lots"
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    with pytest.raises(CsxaError) as error:
        if command == "evaluate":
            evaluate_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "eval")
        else:
            explain(tmp_path / "checkpoint.pt", tmp_path / "eval", progress=False)
    assert str(error.value) == (
        f"{tmp_path / 'checkpoint.pt'}: its saved settings: train.batch_size must be int, not 'lots'"
    ), str(error.value)
    assert not (tmp_path / "eval").exists()


def test_one_class_train_cases_are_refused_without_blaming_val_fraction():
    """The message told the user to lower train.val_fraction, which cannot help: holding out under
    half of each class always leaves some of every class the train cases hold."""
    import pandas as pd

    from csxa_data.splits import validation_cases
    from csxa_train.landmark_baseline import Protocol, split_train
    from csxa_train.params import TrainParams
    from csxa_train.trainset import cases_train_data

    labels = np.ones(9, dtype=np.int64)
    stems = [f"{i:07d}" for i in range(9)]
    with pytest.raises(
        CsxaError,
        match=r"^v: the train cases are all of class 1 \(9 cases\); a classifier needs both "
        r"classes$",
    ):
        cases_train_data(
            np.zeros((9, 8, 8), np.uint8),
            labels,
            stems,
            False,
            TrainParams.from_dict({"variant": "v", "balance": "smote"}),
        )
    cases = pd.DataFrame({"stem": stems, "label": labels, "split": "train"})
    with pytest.raises(CsxaError, match="all of class 1 .9 cases.; a classifier needs both classes$"):
        split_train(cases, Protocol(seed=0, val_fraction=0.2, threshold="youden", calibration_bins=10))
    for fraction in (0.1, 0.3, 0.49):  # the claim in the docstring, for one to twenty cases of a class
        for n in range(1, 21):
            two = np.array([0] * n + [1] * 20)
            held = validation_cases(two, [f"{i:07d}" for i in range(len(two))], fraction, seed=n)
            assert set(two[~held]) == {0, 1}
