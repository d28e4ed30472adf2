"""The fourth audit's input kinds (issue 23): each is a logged drop of that case alone, or one clear
line and exit 2, never a traceback or a silent wrong result."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from csxa_data.errors import CsxaError
from csxa_train.checkpoint import load_checkpoint

from helpers import column, edit_sheet, first_stem, ingest, run_cli


def reconciled(result) -> None:
    sources = result.validation["sources"]
    assert all(s["in"] == s["kept"] + s["dropped"] for s in sources.values())


@pytest.mark.parametrize("member", ["../FIRST.png", "/tmp/FIRST.png", "datasets-PNG/../../FIRST.png", "C:/x/FIRST.png"])
def test_a_zip_member_leaving_its_folder_is_never_a_film(tiny_synth, baseline, tmp_path, member):
    """A member named with '..' or an absolute path was read as that case's film."""
    root = tmp_path / "zipped"
    shutil.copytree(tiny_synth / "release", root)
    with zipfile.ZipFile(root / "datasets-PNG.zip") as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    first = sorted(n for n, _ in members if n.endswith(".png"))[0]
    stem = first.rsplit("/", 1)[-1][:-4]
    with zipfile.ZipFile(root / "datasets-PNG.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(member.replace("FIRST", stem) if name == first else name, data)
    result = ingest(root)
    number = int(stem[:4])
    unsafe = result.drops[result.drops.rule == "unsafe_path"]
    assert (
        len(unsafe) == 1 and unsafe.source.iloc[0] == "png" and "outside the archive's folder" in unsafe.reason.iloc[0]
    )
    case = result.drops[(result.drops.number == number) & (result.drops.source == "sheet")]
    assert case.rule.tolist() == ["no_image"]
    assert set(result.manifest.number) == set(baseline.manifest.number) - {number}
    reconciled(result)


@pytest.mark.parametrize("text", ["1e1", " 9 ", "+7", "٣"])
def test_sheet_number_text_that_is_not_plain_digits_drops_that_row(release, baseline, text):
    """Number '1e1' was read as 10 (case 10's film got another row's class) and ' 9 ' as 9."""
    victim = sorted(baseline.manifest.number)[2]
    edit_sheet(
        release, lambda sheet: setattr(sheet.cell(row=victim + 2, column=column(sheet, "Number")), "value", text)
    )
    result = ingest(release)
    row = result.drops[(result.drops.source == "sheet") & (result.drops.key == f"row {victim + 2}")]
    assert row.rule.tolist() == ["sheet_number_invalid"] and f"{text!r} is not valid" in row.reason.iloc[0]
    assert set(result.manifest.number) == set(baseline.manifest.number) - {victim}
    reconciled(result)


def test_sheet_number_as_plain_digit_text_still_joins(release, baseline):
    victim = sorted(baseline.manifest.number)[2]
    edit_sheet(
        release, lambda sheet: setattr(sheet.cell(row=victim + 2, column=column(sheet, "Number")), "value", str(victim))
    )
    assert set(ingest(release).manifest.number) == set(baseline.manifest.number)


def test_a_folder_named_like_a_film_file_is_logged(release, baseline):
    """A folder named 0001183.json in an unpacked release was in neither the manifest nor drops.csv."""
    stem = first_stem(release)
    (release / "datasets-JSON" / f"{stem}.json").unlink()
    (release / "datasets-JSON" / f"{stem}.json").mkdir()
    result = ingest(release)
    folder = result.drops[(result.drops.source == "json") & (result.drops.key == f"{stem}.json")]
    assert (
        folder.rule.tolist() == ["not_regular_file"] and "a folder named like a release file" in folder.reason.iloc[0]
    )
    assert int(stem[:4]) not in set(result.manifest.number)
    reconciled(result)


def test_build_without_a_params_file_says_so(tmp_path):
    """`csxa-data build` with no params file blamed 'params.yaml: no variants section' of a file that
    does not exist."""
    result = run_cli(
        "build", "--variant", "original", "--manifest", "m.csv", "--release", "r", "--out", "o", cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "csxa-data: error: no params file: run in the project's folder (beside params.yaml) or give --params FILE"
    )


def test_a_params_file_nested_beyond_the_stack_is_one_line(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("variants: " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = run_cli(
        "build",
        "--params",
        params,
        "--variant",
        "original",
        "--manifest",
        "m.csv",
        "--release",
        "r",
        "--out",
        "o",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"csxa-data: error: {params}: not a params file: nested too deeply to read (a settings file is a few "
        "levels deep)"
    )


class _RunsCode:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-csxa",))


def test_a_checkpoint_that_would_run_code_names_what_it_asked_for(tmp_path):
    """The message repeated torch's advice to retry with weights_only=False and dropped which global
    was blocked."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": _RunsCode()}, path)
    with pytest.raises(CsxaError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "it asks to run shutil.rmtree, which is not model weights; refused, nothing of it ran" in message
    assert "weights_only" not in message and "False" not in message


def test_a_checkpoint_that_would_run_code_is_one_line_from_the_cli(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": _RunsCode()}, path)
    result = subprocess.run(
        [sys.executable, "-m", "csxa_train", "evaluate", "--checkpoint", str(path), "--out", str(tmp_path / "e")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "shutil.rmtree" in lines[0], result.stderr
    assert not (tmp_path / "e").exists() and not Path("e").exists()
