"""Ingest on the synthetic release: every injected fault found, nothing else touched, counts
reconcile, the split is stratified, disjoint and stable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.splits import find_split_salt, split_cases
from csxa_data.synthetic.generate import SynthParams, write_synthetic_release
from schemas import Drops, Landmarks, Manifest, Repairs

from helpers import run_cli

PARAMS = IngestParams()


@pytest.fixture(scope="module")
def ingested(small_synth):
    return run_ingest(small_synth / "release", PARAMS, workers=2, progress=False)


def faults_of(synth, kind):
    faults = pd.read_csv(synth / "faults.csv", dtype={"stem": str}, keep_default_na=False)
    return faults[faults.fault == kind]


def test_orphan_rows_and_nothing_else_dropped(small_synth, ingested):
    orphans = set(faults_of(small_synth, "orphan_row").number)
    drops = ingested.drops
    assert orphans and set(drops.number) == orphans
    assert (drops.source == "sheet").all() and (drops.rule == "no_image").all()
    assert all("no PNG and no JSON" in reason for reason in drops.reason)


def test_age_mismatches_repaired_from_the_file_name(small_synth, ingested):
    truth = pd.read_csv(small_synth / "truth.csv", dtype={"stem": str}).set_index("number")
    ages = ingested.repairs[ingested.repairs.field == "age"]
    assert (ages.rule == "age_from_file_name").all()
    assert set(ages.number) == set(faults_of(small_synth, "age_mismatch").number)
    for row in ages.itertuples():
        assert int(row.old) == truth.at[row.number, "age_sheet"] and int(row.new) == truth.at[row.number, "age_name"]
    manifest = ingested.manifest.set_index("number")
    assert (manifest.age == truth.loc[manifest.index, "age_name"]).all()


def pairs(frame, label_column):
    return set(zip(frame.number, frame[label_column]))


def test_landmark_faults_repaired_exactly_where_injected(small_synth, ingested):
    repairs = ingested.repairs
    assert pairs(repairs[repairs.rule == "polygon_median"], "field") == pairs(
        faults_of(small_synth, "polygon_landmark"), "label"
    )
    assert pairs(repairs[repairs.rule == "duplicate_label_merged"], "field") == pairs(
        faults_of(small_synth, "duplicate_label"), "label"
    )
    assert pairs(repairs[repairs.rule == "label_normalised"], "new") == pairs(
        faults_of(small_synth, "untidy_label"), "label"
    )
    sizes = repairs[repairs.rule == "json_size_from_png"]
    assert set(sizes.number) == set(faults_of(small_synth, "json_size_mismatch").number)
    assert set(sizes.field) == {"imageWidth", "imageHeight"}


def test_nothing_else_is_touched(small_synth, ingested):
    expected = {
        "age_from_file_name": len(faults_of(small_synth, "age_mismatch")),
        "polygon_median": len(faults_of(small_synth, "polygon_landmark")),
        "duplicate_label_merged": len(faults_of(small_synth, "duplicate_label")),
        "label_normalised": len(faults_of(small_synth, "untidy_label")),
        "json_size_from_png": 2 * len(faults_of(small_synth, "json_size_mismatch")),
    }
    assert ingested.repairs.rule.value_counts().to_dict() == {k: v for k, v in expected.items() if v}


def test_landmarks_and_boxes_match_the_drawn_truth(small_synth, ingested):
    truth = pd.read_csv(small_synth / "truth_landmarks.csv").set_index(["number", "label"])
    got = ingested.landmarks.set_index(["number", "label"])
    assert set(got.index) == set(truth.index)
    error = (got[["x", "y"]] - truth.loc[got.index, ["x", "y"]]).abs().to_numpy().max()
    assert error < 0.61  # polygon vertices jitter by up to 0.6 px around the truth
    box = truth.groupby("number").agg(x0=("x", "min"), y0=("y", "min"), x1=("x", "max"), y1=("y", "max"))
    manifest = ingested.manifest.set_index("number")
    assert np.allclose(manifest.box_x0, box.loc[manifest.index, "x0"], atol=0.61)
    assert np.allclose(manifest.box_y1, box.loc[manifest.index, "y1"], atol=0.61)


def test_inverted_films_detected_exactly(small_synth, ingested):
    inverted = set(faults_of(small_synth, "inverted").number)
    manifest = ingested.manifest
    assert set(manifest.number[manifest.inverted]) == inverted


def test_manifest_and_logs_pass_their_contracts(ingested):
    Manifest.validate(ingested.manifest)
    Landmarks.validate(ingested.landmarks)
    Repairs.validate(ingested.repairs)
    Drops.validate(ingested.drops)
    assert {
        "number",
        "stem",
        "gender",
        "age",
        "label",
        "split",
        "width",
        "height",
        "box_x0",
        "box_y0",
        "box_x1",
        "box_y1",
        "inverted",
    } <= set(ingested.manifest.columns)


def test_counts_reconcile(small_synth, ingested):
    sources = ingested.validation["sources"]
    truth = pd.read_csv(small_synth / "truth.csv")
    assert sources["sheet"] == {"in": 60, "kept": len(ingested.manifest), "dropped": int((~truth.has_image).sum())}
    assert sources["png"]["in"] == sources["png"]["kept"] == len(ingested.manifest)
    kept_numbers = set(ingested.manifest.number)
    dropped_numbers = set(ingested.drops.number[ingested.drops.source == "sheet"])
    assert kept_numbers | dropped_numbers == set(truth.number) and not kept_numbers & dropped_numbers


def test_split_is_stratified_disjoint_and_stable(small_synth, ingested):
    manifest = ingested.manifest
    assert manifest.number.is_unique and set(manifest.split) == {"train", "test"}
    for _, group in manifest.groupby("label"):  # stratified in expectation: within 3 binomial sd
        assert abs((group.split == "test").sum() - 0.25 * len(group)) <= 3 * (0.25 * 0.75 * len(group)) ** 0.5 + 1
    again = run_ingest(small_synth / "release", PARAMS, workers=1, progress=False)
    pd.testing.assert_frame_equal(again.manifest, manifest)
    reseeded = run_ingest(small_synth / "release", IngestParams(seed=99), workers=1, progress=False)
    assert not reseeded.manifest.split.equals(manifest.split)


def test_written_outputs_and_cli(small_synth, tmp_path):
    out = tmp_path / "ingest"
    result = run_cli("ingest", "--release", small_synth / "release", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "ingest: 59 cases kept" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "manifest.csv",
            "landmarks.csv",
            "repairs.csv",
            "drops.csv",
            "validation.json",
            "validation.md",
            "duplicates.csv",
            "duplicates.png",
        ]
    )
    manifest = pd.read_csv(out / "manifest.csv", dtype={"stem": str})
    Manifest.validate(manifest)
    assert "| sheet | 60 | 59 | 1 |" in (out / "validation.md").read_text()


@pytest.mark.large  # a 5,000-case release: about a minute on 2 cores, run by CI after the suite
def test_real_release_counts_at_5000_cases(tmp_path):
    out = tmp_path / "s5000"
    write_synthetic_release(out, SynthParams(cases=5000, size_scale=0.2), workers=2, progress=False)
    result = run_ingest(out / "release", PARAMS, workers=2, progress=False)
    sources = result.validation["sources"]
    assert sources["sheet"] == {"in": 5000, "kept": 4963, "dropped": 37}
    assert set(result.drops.rule) == {"no_image"}
    assert result.validation["kept"]["by_class"] == {"0": 181, "1": 4782}
    assert result.validation["kept"]["by_split_and_class"] == {
        "test/0": 45,
        "test/1": 1196,
        "train/0": 136,
        "train/1": 3586,
    }


def test_split_moves_no_other_case_when_cases_are_added_or_removed():
    """A registry's v1.1 must not move v1.0's test cases into training, nor the reverse."""
    rng = np.random.default_rng(0)
    numbers = pd.Series(np.arange(1, 2001))
    labels = pd.Series((rng.random(2000) > 0.04).astype(int))
    before = split_cases(numbers, labels, 0.25, 2398)
    for trial in range(20):
        keep = rng.random(2000) > 0.01  # remove about 20 cases ...
        added = pd.Series(np.arange(2001, 2001 + trial * 5))  # ... and add up to 95
        now_numbers = pd.concat([numbers[keep], added], ignore_index=True)
        now_labels = pd.concat([labels[keep], pd.Series(np.ones(len(added), dtype=int))], ignore_index=True)
        after = split_cases(now_numbers, now_labels, 0.25, 2398)
        old = dict(zip(numbers, before))
        moved = [n for n, side in zip(now_numbers, after) if n in old and old[n] != side]
        assert moved == []
    assert abs((before == "test").mean() - 0.25) < 0.03


def test_the_default_salt_splits_the_5000_case_release_as_the_paper():
    from csxa_data.synthetic.generate import plan_cases

    plan = plan_cases(SynthParams(cases=5000))
    kept = plan[plan.has_image]
    split = split_cases(kept.number, kept.label, 0.25, IngestParams().seed)
    assert (split == "train").sum() == 3722 and (split == "test").sum() == 1241
    assert ((split == "test") & (kept.label == 0)).sum() == round(0.25 * (kept.label == 0).sum())
    assert find_split_salt(kept.number, kept.label, 0.25, start=2390) == IngestParams().seed
