"""The synthetic release: format, faults, counts and byte-for-byte reproducibility."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
from PIL import Image

from csxa_data.release.landmarks import LANDMARK_LABELS, normalise_label
from csxa_data.release.reader import ReleaseParams, open_release
from csxa_data.synthetic.generate import SynthParams, plan_cases, write_synthetic_release

from helpers import SMALL

EXPECTED_FAULTS = {
    "orphan_row",
    "age_mismatch",
    "inverted",
    "border",
    "burned_text",
    "scale_bar",
    "rgba_equal_channels",
    "polygon_landmark",
    "polygon_type",
    "duplicate_label",
    "untidy_label",
    "shuffled_shapes",
    "image_data_embedded",
    "json_size_mismatch",
}


def digests(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes_whatever_the_workers(small_synth, tmp_path):
    again = tmp_path / "again"
    write_synthetic_release(again, SMALL, workers=1, progress=False)
    first, second = digests(small_synth), digests(again)
    assert set(first) == {
        "release/datasets.xlsx",
        "release/datasets-PNG.zip",
        "release/datasets-JSON.zip",
        "faults.csv",
        "truth.csv",
        "truth_landmarks.csv",
    }
    assert first == second


def test_another_seed_gives_other_bytes(small_synth, tmp_path):
    other = tmp_path / "other"
    write_synthetic_release(other, replace(SMALL, seed=8, cases=10), workers=1, progress=False)
    assert digests(other)["release/datasets-PNG.zip"] != digests(small_synth)["release/datasets-PNG.zip"]


def test_5000_cases_have_the_real_release_counts():
    plan = plan_cases(SynthParams(cases=5000))
    assert len(plan) == 5000 and plan.number.is_unique
    assert (~plan.has_image).sum() == 37
    assert plan.has_image.sum() == 4963
    assert ((plan.label == 0) & plan.has_image).sum() == 181
    assert ((plan.label == 1) & plan.has_image).sum() == 4782


def test_layout_matches_the_release(small_synth):
    release = small_synth / "release"
    with zipfile.ZipFile(release / "datasets-PNG.zip") as pngs, zipfile.ZipFile(release / "datasets-JSON.zip") as jsons:
        png_names = pngs.namelist()
        json_names = jsons.namelist()
    truth = pd.read_csv(small_synth / "truth.csv", dtype={"stem": str})
    imaged = truth[truth.has_image]
    assert png_names == [f"datasets-PNG/{s}.png" for s in imaged.stem]
    assert json_names == [f"datasets-JSON/{s}.json" for s in imaged.stem]
    for stem, row in zip(imaged.stem, imaged.itertuples()):
        assert len(stem) == 7 and stem.isdigit()
        assert stem[:4] == f"{row.number:04d}" and stem[4] == str(row.gender) and int(stem[5:]) == row.age_name


def test_sheet_has_title_row_and_the_seen_columns(small_synth):
    import openpyxl

    book = openpyxl.load_workbook(small_synth / "release" / "datasets.xlsx", read_only=True)
    assert book.sheetnames == ["Sheet1"]
    rows = list(book["Sheet1"].iter_rows(values_only=True))
    assert rows[0][0].startswith("Cervical Spine X-ray Atlas") and all(v is None for v in rows[0][1:])
    header = rows[1]
    assert header[0] == "Number"
    assert "Curvature: 1.Lordotic, 2.Straight, 3.Sigmoid1, 4.Sigmoid2, 5.Kyphotic" in header
    assert {"Gender", "Age", "Class", "Pixel equivalent (mm/pixel)", "C2-7 Cobb angle (°)"} <= set(header)
    assert len(rows) == 2 + SMALL.cases


def test_every_fault_kind_is_injected_and_recorded(small_synth):
    faults = pd.read_csv(small_synth / "faults.csv", dtype={"stem": str}, keep_default_na=False)
    assert set(faults.fault) == EXPECTED_FAULTS
    truth = pd.read_csv(small_synth / "truth.csv", dtype={"stem": str})
    assert set(faults[faults.fault == "orphan_row"].number) == set(truth[~truth.has_image].number)
    assert set(faults[faults.fault == "age_mismatch"].number) == set(truth[truth.age_sheet != truth.age_name].number)


def test_sheet_ages_differ_from_names_exactly_where_recorded(small_synth):
    release = open_release(small_synth / "release", ReleaseParams())
    truth = pd.read_csv(small_synth / "truth.csv", dtype={"stem": str}).set_index("number")
    sheet = release.columns.set_index("number")
    assert list(sheet.index) == list(truth.index)
    assert (sheet.age.astype(int) == truth.age_sheet).all()
    faults = pd.read_csv(small_synth / "faults.csv", keep_default_na=False)
    mismatched = set(faults[faults.fault == "age_mismatch"].number)
    assert mismatched and mismatched == set(truth.index[truth.age_sheet != truth.age_name])


def test_images_and_jsons_carry_the_recorded_faults(small_synth):
    release = open_release(small_synth / "release", ReleaseParams())
    truth = pd.read_csv(small_synth / "truth.csv", dtype={"stem": str}).set_index("stem")
    faults = pd.read_csv(small_synth / "faults.csv", dtype={"stem": str}, keep_default_na=False)
    by_stem = faults.groupby("stem").fault.apply(set).to_dict()
    landmarks = pd.read_csv(small_synth / "truth_landmarks.csv")
    for member in release.pngs:
        stem, png = member.stem, release.pngs.read(member.name)
        img = Image.open(io.BytesIO(png))
        case = truth.loc[stem]
        kinds = by_stem.get(stem, set())
        assert img.size == (case.width, case.height) and img.mode == case["mode"]
        pixels = np.asarray(img)
        if img.mode in ("RGB", "RGBA"):
            assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
        if img.mode == "RGBA":
            assert (pixels[..., 3] == 255).all() and "rgba_equal_channels" in kinds
        doc = json.loads(release.jsons.read(f"{stem}.json"))
        assert list(doc) == ["version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"]
        assert doc["imagePath"] == f"{stem}.png"
        if "image_data_embedded" in kinds:
            assert base64.b64decode(doc["imageData"]) == png
        else:
            assert doc["imageData"] is None
        assert ((doc["imageWidth"], doc["imageHeight"]) != img.size) == ("json_size_mismatch" in kinds)
        labels = [s["label"] for s in doc["shapes"]]
        assert len(labels) == (24 if "duplicate_label" in kinds else 23)
        assert sorted(set(map(normalise_label, labels))) == sorted(LANDMARK_LABELS)
        assert (labels != [normalise_label(x) for x in labels]) == ("untidy_label" in kinds)
        spread = [s for s in doc["shapes"] if len(s["points"]) > 1]
        assert bool(spread) == ("polygon_landmark" in kinds)
        for shape in spread:
            points = np.array(shape["points"])
            assert shape["shape_type"] == "polygon" and 2 <= len(points) <= 4 and np.ptp(points, axis=0).max() < 2
        # landmarks lie inside the film, left of right, as drawn
        case_points = landmarks[landmarks.number == case.number].set_index("label")
        assert (
            (case_points.x >= 0) & (case_points.x < case.width) & (case_points.y >= 0) & (case_points.y < case.height)
        ).all()
        for n in range(3, 8):
            for side in ("top", "bottom"):
                assert case_points.x[f"C{n} {side} left"] < case_points.x[f"C{n} {side} right"]


def test_inverted_films_have_a_bright_background(small_synth):
    release = open_release(small_synth / "release", ReleaseParams())
    faults = pd.read_csv(small_synth / "faults.csv", dtype={"stem": str}, keep_default_na=False)
    inverted = set(faults[faults.fault == "inverted"].stem)
    corner_means = {}
    for member in release.pngs:
        grey = np.asarray(Image.open(io.BytesIO(release.pngs.read(member.name))).convert("L"), dtype=float)
        h, w = grey.shape
        corner_means[member.stem] = np.median(grey[h // 4 : 3 * h // 4, : w // 12])
    assert all(corner_means[s] > 128 for s in inverted)
    assert np.median([v for s, v in corner_means.items() if s not in inverted]) < 100
