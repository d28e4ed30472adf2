"""Hostile release inputs found by an audit (issue 10): each is built here, and each ends in a
logged drop or repair of that case alone, or one clear line and exit code 2; nothing else is lost,
nothing hangs, memory stays bounded."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from openpyxl.styles import Font
from PIL import Image

from csxa_data.ingest.outputs import write_ingest
from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.release import reader as release_module

from helpers import (
    assert_only_case_lost,
    column,
    edit_json,
    edit_sheet,
    first_stem,
    ingest,
    png_header_only,
    run_cli,
    unpack_release,
)

# --- hangs -------------------------------------------------------------------------------------


def test_xlsx_with_a_formatted_cell_at_xfd1048576_reads_fast_and_the_same(release, baseline):
    edit_sheet(release, lambda sheet: setattr(sheet["XFD1048576"], "font", Font(bold=True)))
    assert (release / "datasets.xlsx").stat().st_size < 50_000
    book = openpyxl.load_workbook(release / "datasets.xlsx", read_only=True)
    assert book["Sheet1"].max_row == 1048576 and book["Sheet1"].max_column == 16384  # the trap is set
    book.close()
    start = time.perf_counter()
    result = ingest(release)
    assert time.perf_counter() - start < 30  # was minutes: the reader walked the whole grid
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)
    pd.testing.assert_frame_equal(result.drops, baseline.drops)


# --- booleans are not numbers ------------------------------------------------------------------


def test_labelme_boolean_coordinate_drops_that_case(release, baseline):
    stem = first_stem(release)

    def change(doc):
        for shape in doc["shapes"]:
            if " ".join(shape["label"].split()).lower() == "c4 top left":
                shape["points"] = [[True, 10.0]]
        return json.dumps(doc)

    edit_json(release, stem, change)
    result = ingest(release)
    assert_only_case_lost(
        result,
        baseline,
        int(stem[:4]),
        "json",
        "json_invalid",
        "'C4 top left': points [[True, 10.0]] are not [x, y] numbers (booleans",
    )


def test_sheet_number_true_is_invalid_and_case_1_survives(release, baseline):
    assert 1 in set(baseline.manifest.number)
    victim = sorted(baseline.manifest.number)[1]
    edit_sheet(
        release, lambda sheet: setattr(sheet.cell(row=victim + 2, column=column(sheet, "Number")), "value", True)
    )
    result = ingest(release)
    row = result.drops[(result.drops.source == "sheet") & (result.drops.key == f"row {victim + 2}")]
    assert row.rule.tolist() == ["sheet_number_invalid"] and "'True' is not valid" in row.reason.iloc[0]
    assert set(result.manifest.number) == set(baseline.manifest.number) - {victim}  # case 1 kept


# --- file names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digits",
    [
        "\u0660\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic
        "\uff10\uff11\uff12\uff13\uff14\uff15\uff16",
    ],
)  # fullwidth
def test_copy_under_non_ascii_digits_is_a_bad_file_name_alone(release, baseline, digits):
    stem = first_stem(release)
    copy = "".join(digits[int(c)] for c in stem)  # the same case number, written in other digits
    shutil.copy(release / "datasets-PNG" / f"{stem}.png", release / "datasets-PNG" / f"{copy}.png")
    result = ingest(release)
    bad = result.drops[result.drops.key == f"{copy}.png"]
    assert bad.rule.tolist() == ["bad_file_name"] and "is not 7 ASCII digits" in bad.reason.iloc[0]
    assert bad.number.isna().all()
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)  # the good copy's case is kept
    assert len(result.drops) == len(baseline.drops) + 1


def test_file_name_with_a_non_utf8_byte_is_dropped_and_logged(release, baseline, tmp_path):
    name = os.fsdecode(b"00\xff1234.png")
    shutil.copy(release / "datasets-PNG" / f"{first_stem(release)}.png", release / "datasets-PNG" / name)
    result = ingest(release)
    bad = result.drops[result.drops.rule == "bad_file_name"]
    assert bad.key.tolist() == ["00\\xff1234.png"]
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)
    write_ingest(result, tmp_path / "out")  # was a UnicodeEncodeError, with nothing written
    drops = pd.read_csv(tmp_path / "out" / "drops.csv", encoding="utf-8")
    assert "00\\xff1234.png" in set(drops.key)


def test_symlink_to_root_inside_the_png_folder_is_not_followed(release, baseline):
    os.symlink("/", release / "datasets-PNG" / "root")
    os.symlink("/etc/hostname", release / "datasets-PNG" / "9999099.png")
    start = time.perf_counter()
    result = ingest(release)
    assert time.perf_counter() - start < 30
    links = result.drops[result.drops.rule == "not_regular_file"].set_index("key")
    assert sorted(links.index) == ["9999099.png", "root"]
    assert "a symbolic link (to /)" in links.at["root", "reason"] and "never followed" in links.at["root", "reason"]
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)
    assert result.validation["sources"]["png"]["in"] == len(baseline.manifest) + 2


# --- CSV formula injection ---------------------------------------------------------------------


def test_input_text_is_neutralised_in_every_csv(release, tmp_path):
    stem = first_stem(release)

    def change(doc):
        doc["shapes"].append({**doc["shapes"][0], "label": '=HYPERLINK("http://x","y")'})
        return json.dumps(doc)

    edit_json(release, stem, change)
    (release / "datasets-PNG" / "@SUM(1+1).png").write_bytes(b"x")
    (release / "datasets-PNG" / "-3.5.png").write_bytes(b"x")
    edit_sheet(
        release, lambda sheet: setattr(sheet.cell(row=3, column=column(sheet, "Age")), "value", "+cmd|' /C calc'!A0")
    )
    write_ingest(ingest(release), tmp_path / "out")
    for name in ("manifest.csv", "landmarks.csv", "repairs.csv", "drops.csv"):
        table = pd.read_csv(tmp_path / "out" / name, dtype=str, keep_default_na=False)
        cells = table.to_numpy().ravel().tolist() + list(table.columns)
        assert not [c for c in cells if c[:1] in ("=", "+", "@")], name
    repairs = pd.read_csv(tmp_path / "out" / "repairs.csv", dtype=str)
    assert '\'=HYPERLINK("http://x","y")' in set(repairs.old)
    assert "'+cmd|' /C calc'!A0" in set(repairs.old)
    drops = pd.read_csv(tmp_path / "out" / "drops.csv", dtype=str)
    assert {"'@SUM(1+1).png", "'-3.5.png"} <= set(drops.key)


# --- memory ------------------------------------------------------------------------------------


def rezip_png_set(tiny_synth, tmp_path, replace: dict[str, bytes] | None = None, extra=()) -> tuple[Path, str]:
    """A zipped copy of the tiny release whose PNG zip has members replaced or added."""
    root = tmp_path / "zipped"
    shutil.copytree(tiny_synth / "release", root)
    with zipfile.ZipFile(root / "datasets-PNG.zip") as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    first = sorted(n for n, _ in members if n.endswith(".png"))[0]
    with zipfile.ZipFile(root / "datasets-PNG.zip", "w", zipfile.ZIP_DEFLATED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicated name is what one test wants
        for name, data in members:
            z.writestr(name, (replace or {}).get("first" if name == first else name, data))
        for name, data in extra:
            z.writestr(name.replace("FIRST", first), data)
    return root, first.split("/")[-1][:-4]


def test_zip_bomb_member_drops_that_case_alone_without_reading_it(tiny_synth, baseline, tmp_path):
    root, stem = rezip_png_set(tiny_synth, tmp_path, {"first": bytes(64 * 2**20)})  # 64 MiB of zeros, 64 kB zipped
    with zipfile.ZipFile(root / "datasets-PNG.zip") as z:
        info = next(i for i in z.infolist() if i.filename.endswith(f"{stem}.png"))
        assert info.file_size / info.compress_size > 500
    result = ingest(root)
    assert_only_case_lost(result, baseline, int(stem[:4]), "png", "png_unreadable", "a zip bomb?); not read")


def test_member_declaring_more_than_the_cap_is_not_read(tiny_synth, baseline, tmp_path, monkeypatch):
    # the real cap is 256 MiB; a 3 MiB stored member over a 2 MiB cap takes the same path in a test's time
    monkeypatch.setattr(release_module, "MAX_FILE_BYTES", 2 * 2**20)
    noise = np.random.default_rng(0).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()
    root, stem = rezip_png_set(tiny_synth, tmp_path, {"first": noise})
    result = ingest(root)
    assert_only_case_lost(
        result,
        baseline,
        int(stem[:4]),
        "png",
        "png_unreadable",
        "declares 3,145,728 bytes, over the 2,097,152 a release file may have; not read",
    )


def test_labelme_file_over_the_json_cap_is_dropped_without_reading_it(release, baseline, monkeypatch):
    """The LabelMe cap (64 MiB) was applied after the file had been read whole (up to the 256 MiB a
    release file may declare); it is now checked on the size the file is listed with."""
    from csxa_data.ingest import examine

    # the real cap is 64 MiB; 1 MiB takes the same path in a test's time
    monkeypatch.setattr(examine, "MAX_JSON_BYTES", 2**20)
    stem = first_stem(release)
    (release / "datasets-JSON" / f"{stem}.json").write_bytes(b" " * (2**20 + 1))
    read, real_read = [], release_module.FileSet.read
    monkeypatch.setattr(release_module.FileSet, "read", lambda self, name: read.append(name) or real_read(self, name))
    result = ingest(release)
    assert f"{stem}.png" in read and f"{stem}.json" not in read
    assert_only_case_lost(
        result,
        baseline,
        int(stem[:4]),
        "json",
        "json_invalid",
        "1,048,577 bytes, over the 1,048,576 a LabelMe file may have",
    )


def test_huge_16_bit_film_is_dropped_as_png_too_large_without_decoding(release, baseline):
    import resource

    stem = first_stem(release)
    (release / "datasets-PNG" / f"{stem}.png").write_bytes(png_header_only(9400, 9400))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = ingest(release)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 300  # decoding it would take 2.35 GB
    assert_only_case_lost(
        result,
        baseline,
        int(stem[:4]),
        "png",
        "png_too_large",
        "9400 x 9400 px = 88,360,000 pixels, over the 16,000,000 allowed per film",
    )


def test_pixel_cap_is_a_setting(release, baseline):
    sizes = baseline.manifest.width * baseline.manifest.height
    cap = int(sizes.max()) - 1
    result = run_ingest(release, IngestParams(max_film_pixels=cap), workers=1, progress=False)
    too_large = result.drops[result.drops.rule == "png_too_large"]
    assert set(too_large.number) == set(baseline.manifest.number[sizes > cap])
    assert len(result.manifest) == len(baseline.manifest) - len(too_large)


# --- duplicated names, misleading messages -------------------------------------------------------


def test_duplicated_zip_member_name_drops_that_case_not_the_release(tiny_synth, baseline, tmp_path):
    root, stem = rezip_png_set(tiny_synth, tmp_path, extra=[("FIRST", b"another film")])
    result = ingest(root)
    number = int(stem[:4])
    copies = result.drops[(result.drops.source == "png") & (result.drops.number == number)]
    assert copies.rule.tolist() == ["duplicate_case_file", "duplicate_case_file"]
    assert all("2 files named" in r for r in copies.reason)
    others = result.drops[(result.drops.number == number) & (result.drops.source != "png")]
    assert set(others.rule) == {"no_image"}
    assert set(result.manifest.number) == set(baseline.manifest.number) - {number}


def test_when_nothing_survives_the_logs_are_written_and_the_top_reasons_printed(release, tmp_path):
    for png in (release / "datasets-PNG").iterdir():
        png.write_bytes(b"")
    result = run_cli("ingest", "--release", release, "--out", tmp_path / "out", "--quiet", "--workers", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no case survived validation; top reasons: png png_unreadable x15" in lines[0], lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["drops.csv", "repairs.csv", "validation.md"]
    drops = pd.read_csv(tmp_path / "out" / "drops.csv")
    assert (drops[drops.source == "png"].rule == "png_unreadable").all()
    assert "FAILED" in (tmp_path / "out" / "validation.md").read_text()


def without_root_override() -> list[str]:
    """A command prefix under which root, too, must respect folder permissions (it drops the
    capability to override them); nothing for other users."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only folder cannot be made")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all"]


def test_read_only_output_folder_is_refused_before_any_work(release, tmp_path):
    import subprocess
    import sys

    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    start = time.perf_counter()
    result = subprocess.run(
        [
            *without_root_override(),
            sys.executable,
            "-m",
            "csxa_data",
            "ingest",
            "--release",
            str(release),
            "--out",
            str(locked / "out"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: {locked / 'out'}: cannot write the output here (Permission denied); nothing was done"
    ]
    assert elapsed < 60 and not (locked / "out").exists()


# --- the second audit: entries that are not the film must never stand in for it ----------------


def test_a_macosx_copy_or_a_folder_entry_named_like_a_film_never_replaces_it(tiny_synth, baseline, tmp_path):
    with zipfile.ZipFile(tiny_synth / "release" / "datasets-PNG.zip") as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        other_film = z.read(names[1])
    # listed after the real member, so a lookup by base name alone would take them instead
    root, stem = rezip_png_set(
        tiny_synth, tmp_path, extra=[("__MACOSX/FIRST", other_film), ("other/FIRST/", b"x" * 4680)]
    )
    result = ingest(root)
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)
    logged = result.drops[result.drops.source == "png"].set_index("key").rule.to_dict()
    assert logged == {
        f"__MACOSX/datasets-PNG/{stem}.png": "not_release_file",
        f"other/datasets-PNG/{stem}.png/": "not_regular_file",
    }


def test_backslashes_between_folders_in_a_zip_are_folder_separators(tiny_synth, baseline, tmp_path):
    root = tmp_path / "zipped"
    shutil.copytree(tiny_synth / "release", root)
    with zipfile.ZipFile(root / "datasets-PNG.zip") as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(root / "datasets-PNG.zip", "w") as z:
        for name, data in members:
            z.writestr(name.replace("/", "\\"), data)  # as some Windows archivers write them
    result = ingest(root)
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)
    assert not (result.drops.source == "png").any()


def test_an_unpacked_folder_beside_its_zip_is_logged_as_not_read(tiny_synth, baseline, tmp_path):
    root = tmp_path / "zipped"
    shutil.copytree(tiny_synth / "release", root)
    with zipfile.ZipFile(root / "datasets-PNG.zip") as z:
        z.extractall(root)  # unpacked in place: datasets-PNG/*.png beside datasets-PNG.zip
    (root / "datasets-PNG" / "9999999.png").write_bytes(b"only in the folder")
    result = ingest(root)
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)
    drops = result.drops[result.drops.source == "png"]
    assert drops.key.tolist() == ["datasets-PNG/"] and drops.rule.tolist() == ["not_release_file"]
    assert "the zip is read, the folder is not" in drops.reason.iloc[0]


def test_a_hidden_file_beside_the_single_unpacked_folder_is_logged(tiny_synth, baseline, tmp_path):
    root = tmp_path / "nested"
    unpack_release(tiny_synth / "release", root)
    outer = root / "datasets-PNG"
    outer.rename(root / "inner")
    outer.mkdir()
    (root / "inner").rename(outer / "datasets-PNG")  # datasets-PNG/datasets-PNG/*.png
    (outer / ".0003036.png").write_bytes(b"hidden")
    result = ingest(root)
    pd.testing.assert_frame_equal(result.manifest, baseline.manifest)
    drops = result.drops[result.drops.source == "png"]
    assert drops.key.tolist() == [".0003036.png"] and drops.rule.tolist() == ["not_release_file"]


# --- the second audit: the workbook's own parts ------------------------------------------------


def rewrite_parts(xlsx: Path, change: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(xlsx) as z:
        parts = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(xlsx, "w", compression) as z:
        for name, data in parts:
            z.writestr(name, change.get(name, data))


@pytest.mark.parametrize("part", ["xl/workbook.xml", "xl/styles.xml", "[Content_Types].xml"])
def test_a_workbook_part_that_is_not_xml_is_one_clear_line(release, part):
    rewrite_parts(release / "datasets.xlsx", {part: b"<<<not xml"})
    result = run_cli("check-release", "--release", release)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"csxa-data: error: {release / 'datasets.xlsx'}: cannot read as an .xlsx workbook"
    ), lines


def test_a_sheet_that_is_a_chart_is_one_clear_line(release):
    from openpyxl.chart import BarChart, Reference

    book = openpyxl.load_workbook(release / "datasets.xlsx")
    book["Sheet1"].title = "Data"
    chart = BarChart()
    chart.add_data(Reference(book["Data"], min_col=3, min_row=2, max_row=10))
    book.create_chartsheet("Sheet1").add_chart(chart)
    book.save(release / "datasets.xlsx")
    result = run_cli("check-release", "--release", release)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: {release / 'datasets.xlsx'}: sheet 'Sheet1' is a chart, not a worksheet (release.sheet "
        "names the sheet holding the table)"
    ]


def test_check_release_of_a_release_without_films_fails_naming_what_is_empty(release):
    with zipfile.ZipFile(release / "datasets-PNG.zip", "w"):
        pass
    result = run_cli("check-release", "--release", release)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "datasets-PNG: 0 files" in result.stdout  # the summary is still printed
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: {release}: datasets-PNG holds nothing: ingest would keep no case (a case needs its "
        "sheet row, film and landmarks)"
    ]


def test_a_workbook_part_inflating_to_a_huge_size_is_refused_unread(release):
    xlsx, part = release / "datasets.xlsx", "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(xlsx) as z:
        sheet = z.read(part)
    # 96 MiB of one comment (under a megabyte zipped): parsed, it would take hundreds of MB
    head, _, rest = sheet.partition(b"?>")
    rewrite_parts(xlsx, {part: head + b"?><!--" + b"A" * (96 * 2**20) + b"-->" + rest})
    assert xlsx.stat().st_size < 2**20
    result = run_cli("check-release", "--release", release)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"part '{part}' declares 100,6" in lines[0] and "not read" in lines[0], lines


def test_a_json_of_millions_of_tiny_values_drops_that_case_without_parsing_it(release, baseline):
    stem = first_stem(release)
    edit_json(release, stem, lambda doc: json.dumps({**doc, "x": [{}] * 2_000_000}))  # 8 MB: parsed, about 150 MB
    result = ingest(release)
    assert_only_case_lost(
        result,
        baseline,
        int(stem[:4]),
        "json",
        "json_invalid",
        "holds over 100,000 JSON values (a LabelMe file of the release has a few hundred); not parsed",
    )


def test_a_label_with_a_lone_surrogate_is_logged_escaped_and_nothing_is_lost(release, baseline, tmp_path):
    stem = first_stem(release)
    path = release / "datasets-JSON" / f"{stem}.json"
    document = json.loads(path.read_text())
    document["shapes"].append({**document["shapes"][0], "label": "\ud800"})
    path.write_text(json.dumps(document))  # plain ASCII: "\ud800" is valid JSON, but not UTF-8 once read
    result = run_cli("ingest", "--release", release, "--out", tmp_path / "out", "--quiet", "--workers", "1")
    assert result.returncode == 0, result.stderr
    repairs = pd.read_csv(tmp_path / "out" / "repairs.csv", dtype=str, keep_default_na=False)
    assert "\\ud800" in repairs[repairs.number == str(int(stem[:4]))].old.tolist()
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype={"stem": str})
    assert set(manifest.number) == set(baseline.manifest.number)


def test_an_invalid_curvature_or_pixel_equivalent_is_blanked_and_logged(release, baseline):
    import datetime

    from csxa_data.release.reader import CURVATURE_COLUMN

    first, second, third = sorted(baseline.manifest.number)[:3]  # row = number + 2

    def change(sheet):
        sheet.cell(row=first + 2, column=column(sheet, CURVATURE_COLUMN), value="#DIV/0!")
        sheet.cell(row=third + 2, column=column(sheet, CURVATURE_COLUMN), value="\u0663")  # Arabic-Indic 3
        sheet.cell(row=second + 2, column=column(sheet, "Pixel equivalent (mm/pixel)"), value=datetime.date(2024, 1, 2))
        sheet.cell(row=second + 2, column=column(sheet, CURVATURE_COLUMN), value=7)

    edit_sheet(release, change)
    result = ingest(release)
    assert set(result.manifest.number) == set(baseline.manifest.number)
    got = result.manifest.set_index("number")
    assert got.curvature.isna().tolist().count(True) == 3 and got.pixel_equivalent.isna().sum() == 1
    assert pd.isna(got.at[first, "curvature"]) and pd.isna(got.at[second, "curvature"])
    assert pd.isna(got.at[third, "curvature"])  # float("\u0663") is 3.0; a sheet cell of it is not a code
    assert pd.isna(got.at[second, "pixel_equivalent"])
    logged = result.repairs[result.repairs.rule.str.endswith("_invalid_blanked")]
    assert sorted(zip(logged.number, logged.field, logged.old)) == [
        (first, "curvature", "#DIV/0!"),
        (second, "curvature", "7"),
        (second, "pixel_equivalent", "2024-01-02 00:00:00"),
        (third, "curvature", "\u0663"),
    ]
    others = got.drop(index=[first, second, third])
    expected = baseline.manifest.set_index("number").drop(index=[first, second, third])
    assert (others.curvature == expected.curvature).all() and (
        others.pixel_equivalent == expected.pixel_equivalent
    ).all()


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "cannot read as CSV (EmptyDataError: No columns to parse from file)"),
        (b"\xff\xfe\x00n\x00u\x00m", "cannot read as CSV (UnicodeDecodeError: "),
        (b'number,stem\n1,"0001054\n', "cannot read as CSV (ParserError: "),
        (None, "is a folder, not a CSV file"),
    ],
)
def test_a_manifest_that_does_not_read_as_csv_is_one_line(tmp_path, content, says):
    manifest = tmp_path / "manifest.csv"
    manifest.mkdir() if content is None else manifest.write_bytes(content)
    result = run_cli("split-salt", "--manifest", manifest)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"csxa-data: error: {manifest}: {says}"), lines


def test_a_negative_synth_seed_is_one_line(tmp_path):
    result = run_cli("synth", "--out", tmp_path / "s", "--seed", "-1", "--cases", "5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "csxa-data: error: synth.seed must be a whole number within 0..2**63-1, not -1"
    ]


def test_contact_sheet_skips_a_superscript_number_and_a_huge_coordinate(release, tmp_path):
    stem = first_stem(release)
    edit_sheet(
        release,
        lambda sheet: setattr(sheet.cell(row=int(stem[:4]) + 2, column=column(sheet, "Number")), "value", "\u00b2"),
    )  # "²".isdigit() is True; int("²") fails
    second = sorted(p.stem for p in (release / "datasets-JSON").iterdir())[1]
    path = release / "datasets-JSON" / f"{second}.json"
    path.write_text(set_first_point(path.read_text(), 10**400))
    out = tmp_path / "sheet.png"
    result = run_cli("contact-sheet", "--release", release, "--out", out, "--landmarks")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert f"no landmarks for {second}" in result.stderr and Image.open(out).size[0] > 0


def set_first_point(text: str, value: int) -> str:
    document = json.loads(text)
    document["shapes"][0]["points"][0][0] = value
    return json.dumps(document)  # a valid JSON integer of 401 digits: float() of it overflows


def test_a_manifest_row_naming_another_cases_film_is_refused(baseline, tmp_path):
    """A hand-edited manifest whose png_name is a test case's film would put that film into the
    train shards under this case's key and label."""
    frame = baseline.manifest.copy()
    train, test = frame[frame.split == "train"].index[0], frame[frame.split == "test"].index[0]
    frame.loc[train, "png_name"] = frame.loc[test, "png_name"]
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    result = run_cli("split-salt", "--manifest", tmp_path / "manifest.csv")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stem_png_name_and_number_agree" in lines[0], lines


@pytest.mark.parametrize("column, value", [("age", 99), ("gender", None)])
def test_a_manifest_row_whose_gender_or_age_is_not_its_stems_is_refused(baseline, tmp_path, column, value):
    """Third audit: ingest repairs gender and age from the file name; a hand-edited manifest row
    that disagrees with its stem was built into the shards' metadata as it stood."""
    frame = baseline.manifest.copy()
    row = frame.index[0]
    frame.loc[row, column] = 1 - frame.loc[row, column] if value is None else value
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    result = run_cli("split-salt", "--manifest", tmp_path / "manifest.csv")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gender_and_age_are_the_stems" in lines[0], lines


def test_a_manifest_box_coordinate_that_is_blank_is_reported_against_its_own_column_and_row(baseline, tmp_path):
    """Stop-18 leftover: a blank box_x0 failed the row-wide box check too, which lists every column
    of the row, and the message named the first of those ('height') instead of box_x0."""
    frame = baseline.manifest.copy()
    frame.loc[frame.index[3], "box_x0"] = None
    frame.loc[frame.index[6], "box_x1"] = frame.loc[frame.index[6], "width"] + 5
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    result = run_cli("split-salt", "--manifest", tmp_path / "manifest.csv")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: {tmp_path / 'manifest.csv'}: does not satisfy schemas.Manifest (3 failure(s); first: "
        "column 'box_x0' check 'not_nullable' value nan in data row 4)"
    ]
    frame.loc[frame.index[3], "box_x0"] = 0
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    result = run_cli("split-salt", "--manifest", tmp_path / "manifest.csv")
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: {tmp_path / 'manifest.csv'}: does not satisfy schemas.Manifest (1 failure(s); first: "
        "check 'box_inside_film' in data row 7)"
    ]
    # a missing column is named (the table's own rule has no row), and reported before the row's
    frame.drop(columns=["label"]).to_csv(tmp_path / "manifest.csv", index=False)
    result = run_cli("split-salt", "--manifest", tmp_path / "manifest.csv")
    assert result.stderr.strip().splitlines() == [
        f"csxa-data: error: {tmp_path / 'manifest.csv'}: does not satisfy schemas.Manifest (2 failure(s); first: "
        "check 'column_in_dataframe' value 'label')"
    ]


def test_a_manifest_with_a_header_only_says_so(baseline, tmp_path):
    """Third audit: it was reported as `column 'number' check dtype('int64') value 'object'`."""
    baseline.manifest.iloc[:0].to_csv(tmp_path / "manifest.csv", index=False)
    result = run_cli("split-salt", "--manifest", tmp_path / "manifest.csv")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"csxa-data: error: {tmp_path / 'manifest.csv'}: holds no cases (a header only); ingest writes one row per "
        "kept case"
    ]
