"""Bad input: each kind quarantines its case with a reason naming the file, row and rule, and no
other case is lost; what cannot go on stops with one line and exit code 2."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import pandas as pd
import pytest
from PIL import Image

from helpers import assert_only_case_lost, column, edit_json, edit_sheet, first_stem, ingest, run_cli


@pytest.mark.parametrize(
    "kind, damage, text",
    [
        ("corrupt", lambda b: b[:60] + bytes(200) + b[260:], "PNG does not decode"),
        ("truncated", lambda b: b[: len(b) // 2], "PNG does not decode"),
        ("empty", lambda b: b"", "empty file (0 bytes)"),
        ("jpeg", None, "not a PNG (the bytes are JPEG)"),
    ],
)
def test_unusable_png(release, baseline, kind, damage, text):
    stem = first_stem(release)
    path = release / "datasets-PNG" / f"{stem}.png"
    if damage is None:
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").save(buffer, format="JPEG")
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(damage(path.read_bytes()))
    result = ingest(release)
    assert_only_case_lost(result, baseline, int(stem[:4]), "png", "png_unreadable", f"datasets-PNG/{stem}.png: {text}")


def set_point(label, point):
    def change(doc):
        for shape in doc["shapes"]:
            if " ".join(shape["label"].split()).lower() == label.lower():
                shape["points"] = point
        return json.dumps(doc)

    return change


@pytest.mark.parametrize(
    "change, text",
    [
        ('{"version": "5.2.1", "shapes": [', "JSON does not parse"),
        (lambda doc: json.dumps({k: v for k, v in doc.items() if k != "shapes"}), "no 'shapes' list"),
        (set_point("C4 top left", [[float("nan"), 10.0]]), "'C4 top left': NaN or infinite coordinate"),
        (set_point("C4 top left", [[-3.0, 10.0]]), "'C4 top left': negative coordinate"),
        (set_point("C5 bottom right", [[40.0, 60.0], [49.0, 60.0]]), "'C5 bottom right': 2 vertices spread 9.0 px"),
        (set_point("C6 top left", [[1e6, 10.0]]), "'C6 top left' at (1000000.0,10.0) lies outside"),
    ],
)
def test_unusable_json(release, baseline, change, text):
    stem = first_stem(release)
    edit_json(release, stem, change)
    result = ingest(release)
    assert_only_case_lost(result, baseline, int(stem[:4]), "json", "json_invalid", f"datasets-JSON/{stem}.json: {text}")


def test_missing_landmark(release, baseline):
    stem = first_stem(release)
    edit_json(
        release,
        stem,
        lambda doc: json.dumps(
            {
                **doc,
                "shapes": [s for s in doc["shapes"] if "c7 bottom left" not in " ".join(s["label"].split()).lower()],
            }
        ),
    )
    result = ingest(release)
    assert_only_case_lost(
        result, baseline, int(stem[:4]), "json", "json_invalid", "missing landmark(s) ['C7 bottom left']"
    )


def test_duplicated_numbers_drop_both_rows_and_the_files(release, baseline):
    first, second = sorted(baseline.manifest.number)[:2]  # two cases with images; row = number + 2
    edit_sheet(
        release, lambda sheet: setattr(sheet.cell(row=second + 2, column=column(sheet, "Number")), "value", first)
    )
    result = ingest(release)
    rows = result.drops[result.drops.source == "sheet"]
    dup = rows[rows.rule == "sheet_number_duplicated"]
    assert list(dup.key) == [f"row {first + 2}", f"row {second + 2}"]
    assert all(f"Number {first} appears in rows [{first + 2}, {second + 2}]" in r for r in dup.reason)
    lost = {first, second}  # the second case's row now claims the first number: both lose their row
    assert set(result.manifest.number) == set(baseline.manifest.number) - lost
    files = result.drops[(result.drops.source != "sheet") & result.drops.number.isin(lost)]
    assert (files.rule == "no_sheet_row").all() and len(files) == 4
    assert all(
        f"case {first:04d}: no sheet row (its sheet row was dropped: sheet_number_duplicated)" in r
        for r in files.reason[files.number == first]
    )


def test_non_numeric_age_is_repaired_from_the_file_name(release, baseline):
    edit_sheet(release, lambda sheet: setattr(sheet.cell(row=3, column=column(sheet, "Age")), "value", "forty"))
    result = ingest(release)
    repair = result.repairs[(result.repairs.number == 1) & (result.repairs.field == "age")]
    stem = result.manifest.set_index("number").at[1, "stem"]
    assert repair.old.tolist() == ["forty"] and repair.new.tolist() == [str(int(stem[5:]))]
    assert len(result.manifest) == len(baseline.manifest)


def test_unknown_class_value_drops_the_row(release, baseline):
    edit_sheet(release, lambda sheet: setattr(sheet.cell(row=3, column=column(sheet, "Class")), "value", "maybe"))
    result = ingest(release)
    row = result.drops[(result.drops.source == "sheet") & (result.drops.key == "row 3")]
    assert row.rule.tolist() == ["sheet_label_invalid"] and "'maybe'" in row.reason.iloc[0]
    assert set(result.manifest.number) == set(baseline.manifest.number) - {1}


def test_file_name_not_7_digits(release, baseline):
    stem = first_stem(release)
    (release / "datasets-PNG" / f"{stem}.png").rename(release / "datasets-PNG" / f"{stem[:4]}-{stem[4:]}.png")
    result = ingest(release)
    bad = result.drops[result.drops.key == f"{stem[:4]}-{stem[4:]}.png"]
    assert bad.rule.tolist() == ["bad_file_name"] and "is not 7 ASCII digits" in bad.reason.iloc[0]
    number = int(stem[:4])
    others = result.drops[(result.drops.number == number) & (result.drops.source != "png")]
    assert sorted(others.source) == ["json", "sheet"] and set(others.rule) == {"no_image"}
    assert set(result.manifest.number) == set(baseline.manifest.number) - {number}


def test_stray_file_in_a_set_is_dropped(release, baseline):
    (release / "datasets-PNG" / "notes.txt").write_text("scanner log")
    result = ingest(release)
    assert result.drops[result.drops.key == "notes.txt"].rule.tolist() == ["not_png"]
    assert len(result.manifest) == len(baseline.manifest)


def test_cli_quarantines_bad_cases_without_traceback(release, tmp_path):
    stem = first_stem(release)
    (release / "datasets-PNG" / f"{stem}.png").write_bytes(b"not an image")
    result = run_cli("ingest", "--release", release, "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    drops = pd.read_csv(tmp_path / "out" / "drops.csv")
    assert "png_unreadable" in set(drops.rule)


def test_sheet_without_number_column_stops_with_one_line(release, tmp_path):
    edit_sheet(release, lambda sheet: setattr(sheet.cell(row=2, column=1), "value", "Case"))
    result = run_cli("ingest", "--release", release, "--out", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: {release / 'datasets.xlsx'}: no header row: no cell 'Number' in the first 20 rows "
        "of sheet 'Sheet1' (release.columns.number)"
    ]
    assert not (tmp_path / "out").exists()


def flatten_y(doc):
    for shape in doc["shapes"]:
        shape["points"] = [[x, 50.0] for x, _ in shape["points"]]
    return json.dumps(doc)


@pytest.mark.parametrize(
    "change, text",
    [
        ("[" * 100000, "JSON does not parse (RecursionError"),
        (
            '{"shapes": [{"label": "C2 centroid", "points": [[' + "1" * 5000 + ", 1]]}]}",
            "JSON does not parse (ValueError",
        ),
        (set_point("C4 top left", [[10**400, 10]]), "'C4 top left': points"),
        (flatten_y, "no spine box"),
        ('["a list", "not an object"]', "the JSON is not an object"),
    ],
)
def test_hostile_json(release, baseline, change, text):
    stem = first_stem(release)
    edit_json(release, stem, change)
    result = ingest(release)
    assert_only_case_lost(result, baseline, int(stem[:4]), "json", "json_invalid", text)


def test_damaged_zip_member_drops_only_its_case(tiny_synth, baseline, tmp_path):
    root = tmp_path / "zipped"
    shutil.copytree(tiny_synth / "release", root)
    archive = root / "datasets-JSON.zip"
    with zipfile.ZipFile(archive) as z:
        info = z.infolist()[0]
        local_header = 30 + len(info.filename.encode()) + len(info.extra)
        start = info.header_offset + local_header
    data = bytearray(archive.read_bytes())
    for offset in range(start + 10, start + 60):
        data[offset] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = ingest(root)
    stem = info.filename.split("/")[-1][:-5]
    assert_only_case_lost(result, baseline, int(stem[:4]), "json", "json_invalid", "cannot be read")


def test_archive_metadata_is_logged_not_lost(release, baseline):
    (release / "datasets-PNG" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    result = ingest(release)
    row = result.drops[result.drops.rule == "not_release_file"]
    assert row.key.tolist() == [".DS_Store"] and "archive-tool metadata" in row.reason.iloc[0]
    assert result.validation["sources"]["png"]["in"] == len(baseline.manifest) + 1
    assert len(result.manifest) == len(baseline.manifest)


def test_upper_case_extension_flows_into_the_build(release, baseline, tmp_path):
    from csxa_data.variants.build import build_variant
    from csxa_data.variants.spec import BuildParams, VariantSpec

    stem = first_stem(release)
    (release / "datasets-PNG" / f"{stem}.png").rename(release / "datasets-PNG" / f"{stem}.PNG")
    result = ingest(release)
    assert len(result.manifest) == len(baseline.manifest)
    assert result.manifest.set_index("stem").at[stem, "png_name"] == f"{stem}.PNG"
    report = build_variant(
        "cropped",
        VariantSpec(crop="landmarks", out_size=16),
        result.manifest,
        release,
        tmp_path / "v",
        BuildParams(min_shards=1),
        workers=1,
        progress=False,
    )
    assert sum(t["cases"] for t in report["totals"].values()) == len(result.manifest)


def test_corrupt_worksheet_is_one_line(tiny_synth, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(tiny_synth / "release", root)
    source = (root / "datasets.xlsx").read_bytes()
    with zipfile.ZipFile(io.BytesIO(source)) as z:
        members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(root / "datasets.xlsx", "w") as z:
        for name, data in members:
            z.writestr(name, data[: len(data) // 2] if name == "xl/worksheets/sheet1.xml" else data)
    result = run_cli("ingest", "--release", root, "--out", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "datasets.xlsx: the sheet does not read" in result.stderr
