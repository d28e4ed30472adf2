"""The release reader: zips or folders alike, header by the Number cell, clear errors, md5."""

from __future__ import annotations

import shutil

import openpyxl
import pandas as pd
import pytest

from csxa_data.errors import CsxaError
from csxa_data.release import reader as release_module
from csxa_data.release.reader import ReleaseParams, open_release, verify_official

from helpers import run_cli, unpack_release


def unpacked_copy(small_synth, tmp_path):
    return unpack_release(small_synth / "release", tmp_path / "unpacked")


def test_zips_and_unpacked_folders_give_the_same_tables(small_synth, tmp_path):
    zipped = open_release(small_synth / "release")
    folders = open_release(unpacked_copy(small_synth, tmp_path))
    pd.testing.assert_frame_equal(zipped.sheet, folders.sheet)
    pd.testing.assert_frame_equal(zipped.columns, folders.columns)
    pd.testing.assert_frame_equal(zipped.files(), folders.files())
    assert len(zipped.pngs) == len(zipped.jsons) == 59
    for member in list(zipped.pngs)[:5] + list(zipped.jsons)[:5]:
        file_set = zipped.pngs if member.name.endswith(".png") else zipped.jsons
        other = folders.pngs if member.name.endswith(".png") else folders.jsons
        assert file_set.read(member.name) == other.read(member.name)


def test_folder_unpacked_one_level_deeper_is_accepted(small_synth, tmp_path):
    root = unpacked_copy(small_synth, tmp_path)
    (root / "datasets-PNG").rename(root / "tmp")
    (root / "datasets-PNG").mkdir()
    (root / "tmp").rename(root / "datasets-PNG" / "datasets-PNG")
    assert len(open_release(root).pngs) == 59


def test_header_found_by_the_number_cell_not_by_offset(small_synth, tmp_path):
    root = unpacked_copy(small_synth, tmp_path)
    book = openpyxl.load_workbook(root / "datasets.xlsx")
    book["Sheet1"].insert_rows(1, amount=2)  # two more title rows: header now on row 4
    book["Sheet1"]["A1"] = "another title"
    book.save(root / "datasets.xlsx")
    shifted = open_release(root)
    original = open_release(small_synth / "release")
    assert shifted.sheet.attrs["header_row"] == 4
    assert list(shifted.sheet.excel_row) == [r + 2 for r in original.sheet.excel_row]
    pd.testing.assert_frame_equal(shifted.columns.drop(columns="excel_row"), original.columns.drop(columns="excel_row"))


def test_configured_column_names_are_mapped(small_synth, tmp_path):
    root = unpacked_copy(small_synth, tmp_path)
    book = openpyxl.load_workbook(root / "datasets.xlsx")
    header = book["Sheet1"][2]
    for cell in header:
        if cell.value == "Age":
            cell.value = "Age (years)"
    book.save(root / "datasets.xlsx")
    config = ReleaseParams.from_dict({"columns": {"age": "Age (years)"}})
    mapped = open_release(root, config)
    pd.testing.assert_frame_equal(mapped.columns, open_release(small_synth / "release").columns)


def one_error_line(result):
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_configured_column_is_one_clear_line(small_synth, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("release:\n  columns:\n    gender: Sex\n")
    line = one_error_line(run_cli("check-release", "--release", small_synth / "release", "--params", params))
    assert "datasets.xlsx" in line and "'Sex' (release.columns.gender)" in line
    assert "'Number'" in line and "'Age'" in line  # names the columns the sheet does have


def test_missing_xlsx_is_one_clear_line(small_synth, tmp_path):
    root = unpacked_copy(small_synth, tmp_path)
    (root / "datasets.xlsx").unlink()
    line = one_error_line(run_cli("check-release", "--release", root))
    assert "datasets.xlsx: not found; expected the release's Excel sheet" in line


def test_missing_png_set_is_one_clear_line(small_synth, tmp_path):
    root = unpacked_copy(small_synth, tmp_path)
    shutil.rmtree(root / "datasets-PNG")
    line = one_error_line(run_cli("check-release", "--release", root))
    assert "missing datasets-PNG.zip and datasets-PNG/" in line


def test_unreadable_zip_is_one_clear_line(small_synth, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(small_synth / "release", root)
    data = (root / "datasets-JSON.zip").read_bytes()
    (root / "datasets-JSON.zip").write_bytes(data[: len(data) // 3])  # a truncated download
    line = one_error_line(run_cli("check-release", "--release", root))
    assert "datasets-JSON.zip: cannot open as a zip archive" in line


def test_unreadable_xlsx_is_one_clear_line(small_synth, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(small_synth / "release", root)
    (root / "datasets.xlsx").write_bytes(b"this is not a workbook")
    line = one_error_line(run_cli("check-release", "--release", root))
    assert "datasets.xlsx: cannot read as an .xlsx workbook" in line


def test_sheet_without_number_header_is_one_clear_line(small_synth, tmp_path):
    root = unpacked_copy(small_synth, tmp_path)
    book = openpyxl.load_workbook(root / "datasets.xlsx")
    book["Sheet1"]["A2"] = "No."
    book.save(root / "datasets.xlsx")
    line = one_error_line(run_cli("check-release", "--release", root))
    assert "no cell 'Number' in the first 20 rows" in line


def test_check_release_reports_counts_and_md5(small_synth):
    result = run_cli("check-release", "--release", small_synth / "release")
    assert result.returncode == 0, result.stderr
    assert "60 rows (header on row 2)" in result.stdout
    assert "datasets-PNG: 59 files; datasets-JSON: 59 files" in result.stdout
    assert "md5 datasets-PNG.zip: not official" in result.stdout


def test_md5_statuses(small_synth, tmp_path, monkeypatch):
    root = tmp_path / "md5"
    root.mkdir()
    xlsx = (small_synth / "release" / "datasets.xlsx").read_bytes()
    (root / "datasets.xlsx").write_bytes(xlsx)
    (root / "datasets-PNG.zip").write_bytes(b"\0" * 1000)
    import hashlib

    official = dict(release_module.OFFICIAL_FILES)
    official["datasets.xlsx"] = (len(xlsx), hashlib.md5(xlsx).hexdigest())  # pretend this is the official sheet
    official["datasets-PNG.zip"] = (1000, "0" * 32)  # same size, other bytes
    monkeypatch.setattr(release_module, "OFFICIAL_FILES", official)
    table = verify_official(root).set_index("file")
    assert table.status.to_dict() == {"datasets.xlsx": "match", "datasets-PNG.zip": "mismatch"}
    with pytest.raises(CsxaError, match=r"datasets-PNG.zip: md5 .*\(mismatch"):
        verify_official(root, "strict")
    assert verify_official(root, "off").empty


def test_unknown_params_keys_are_refused(tmp_path):
    with pytest.raises(CsxaError, match=r"unknown key\(s\) \['sex'\] in release.columns"):
        ReleaseParams.from_dict({"columns": {"sex": "Sex"}})
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  casez: 10\n")
    line = one_error_line(run_cli("synth", "--params", params, "--out", tmp_path / "x"))
    assert "unknown key(s) ['casez'] in synth" in line
