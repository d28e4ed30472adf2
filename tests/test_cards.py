"""Dataset and model cards, generated from the reports the stages write."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from csxa_data.cards import release_kind
from csxa_data.ingest.outputs import read_manifest, write_ingest
from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.variants.build import build_variant
from csxa_data.variants.card import dataset_card
from csxa_data.variants.spec import BuildParams, VariantSpec
from csxa_train.card import model_card


def front_matter(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.fixture(scope="module")
def built(small_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    write_ingest(run_ingest(small_synth / "release", IngestParams(), workers=2, progress=False), root / "ingest")
    validation = json.loads((root / "ingest" / "validation.json").read_text())
    report = build_variant(
        "wide_cropped",
        VariantSpec(crop="landmarks", grow_x=10, grow_y=20, out_size=32),
        read_manifest(root / "ingest" / "manifest.csv"),
        small_synth / "release",
        root / "variant",
        BuildParams(shard_size=20, min_shards=2),
        workers=2,
        progress=False,
        validation=validation,
    )
    return root, report


def test_dataset_card_states_what_the_reports_say(built):
    root, report = built
    validation = json.loads((root / "ingest" / "validation.json").read_text())
    stats = json.loads((root / "variant" / "stats.json").read_text())
    used = VariantSpec(**report["spec"]).used()
    written = (root / "variant" / "README.md").read_text()
    assert written == dataset_card("wide_cropped", report, stats, validation, settings=used)
    card = dataset_card("wide_cropped", report, stats, validation, registry="https://example.org/csxa", settings=used)
    meta, body = front_matter(card)
    assert meta["pretty_name"] == "CSXA wide_cropped (csxa variant)"
    found = validation["near_duplicates"]
    assert "## Data quality" in body and f"{found['pairs']} pair(s) in {found['groups']} group(s)" in body
    assert f"among {found['films_hashed']} films" in body and "policy `report`: reported, nothing changed" in body
    assert meta["task_categories"] == ["image-classification"]
    assert meta["csxa"]["samples"] == {s: t["samples"] for s, t in report["totals"].items()}
    assert meta["configs"][0]["data_files"] == [
        {"split": "train", "path": "train-*.tar"},
        {"split": "test", "path": "test-*.tar"},
    ]
    # the synthetic atlas is never passed off as the official release
    assert validation["synthetic"] is True and release_kind(validation) == "synthetic"
    assert "no patient data" in meta["license_details"]
    assert "**not the official release**" in body and "10.57760/sciencedb.15391" in body
    for shard in report["shards"]:
        assert shard["sha256"] in body
    for rule, count in validation["repairs_by_rule"].items():
        assert f"| {rule} | {count} |" in body
    for source, rules in validation["drops_by_rule"].items():
        for rule, count in rules.items():
            assert f"| {source} | {rule} | {count} |" in body
    test = report["totals"]["test"]
    assert f"| test | {test['cases']} | {test['samples']} | {test['by_class'].get('0', 0)} |" in body
    assert "dvc import https://example.org/csxa data/variants/wide_cropped --rev wide_cropped@vX.Y.Z" in body
    assert "not a diagnostic device" in body
    # the settings this landmark-crop, grey variant uses: no centre size, no channel orders
    assert set(meta["csxa"]["spec"]) == {"crop", "grow_x", "grow_y", "colour", "out_size", "pad_value", "min_box_side"}
    assert "centre_size" not in body and "both_orders_in_train" not in body
    assert "REGISTRY_URL" not in body and "--rev latest" in body
    placeholder = front_matter(dataset_card("wide_cropped", report, stats, validation, settings=used))[1]
    assert "`REGISTRY_URL`: set `registry.url` in params.yaml" in placeholder
    share = round(100 * test["by_class"].get("1", 0) / sum(test["by_class"].values()))
    assert f"The test split is {share}% spondylosis: read balanced accuracy and AUROC" in body


def test_an_official_release_is_named_as_such():
    validation = {"md5": [{"file": f, "status": "match"} for f in ("a", "b", "c")]}
    assert release_kind(validation) == "official"
    assert release_kind({**validation, "synthetic": True}) == "official"
    assert release_kind({"md5": [{"file": "a", "status": "match"}, {"file": "b", "status": "differs"}]}) == "unverified"


@pytest.mark.parametrize(
    "md5", [[], [{"file": f, "status": s} for f, s in (("a", "match"), ("b", "match"), ("c", "mismatch"))]]
)
def test_a_release_neither_verified_nor_synthetic_is_never_called_patient_free(built, md5):
    """Third audit: any release whose md5 did not all match (md5 off, an unpacked copy, a corrupt
    download) was carded as 'synthetic data made by csxa: no patient data'."""
    root, report = built
    validation = {**json.loads((root / "ingest" / "validation.json").read_text()), "md5": md5, "synthetic": False}
    meta, body = front_matter(dataset_card("wide_cropped", report, {}, validation))
    assert release_kind(validation) == "unverified"
    assert "no patient data" not in meta["license_details"] and "terms" in meta["license_details"]
    assert "synthetic" not in json.dumps(meta["source_datasets"]) and "treat it as patient data" in body


def _build_cli(root, manifest, release, out):
    params = root / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "variants": {"v": {"crop": "centre", "centre_size": 64, "out_size": 16}},
                "build": {"shard_size": 50, "min_shards": 1},
            }
        )
    )
    from helpers import run_cli

    return run_cli(
        "build",
        "--params",
        params,
        "--variant",
        "v",
        "--manifest",
        manifest,
        "--release",
        release,
        "--out",
        out,
        "--workers",
        "1",
    )


def _one_line(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "tamper, says",
    [
        (lambda m: m.assign(label=1 - m.label), "the manifest holds 59 cases"),
        (lambda m: m.iloc[:20], "the manifest holds 20 cases"),
    ],
)
def test_build_refuses_a_manifest_that_is_not_the_one_ingest_reported(built, small_synth, tmp_path, tamper, says):
    """Third audit: a manifest cut to 20 rows with every label flipped was built, and its card
    printed ingest's counts beside the edited ones."""
    import pandas as pd

    root, _ = built
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    (ingest / "validation.json").write_text((root / "ingest" / "validation.json").read_text())
    tamper(pd.read_csv(root / "ingest" / "manifest.csv", dtype={"stem": str})).to_csv(
        ingest / "manifest.csv", index=False
    )
    line = _one_line(_build_cli(tmp_path, ingest / "manifest.csv", small_synth / "release", tmp_path / "out"))
    assert line.startswith(f"csxa-data: error: {ingest / 'validation.json'}: {says}") and "run csxa-data ingest" in line
    assert not (tmp_path / "out").exists()


def test_build_refuses_a_release_other_than_the_one_ingest_read(built, small_synth, tiny_synth, tmp_path):
    root, _ = built
    line = _one_line(_build_cli(tmp_path, root / "ingest" / "manifest.csv", tiny_synth / "release", tmp_path / "out"))
    assert (
        f"ingest read the release {small_synth / 'release'}, but the build would read {tiny_synth / 'release'}, "
        "whose files differ in size from those ingest recorded"
    ) in line


def test_build_takes_the_release_ingest_read_under_another_path(built, small_synth, tmp_path):
    """Ingest run from another folder records a path relative to it; a copy moved since has another
    path: both are the release ingest read when its files have the sizes ingest recorded."""
    import shutil

    root, _ = built
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    validation = json.loads((root / "ingest" / "validation.json").read_text())
    (ingest / "validation.json").write_text(json.dumps({**validation, "release": "release"}))  # as if run in synth/
    shutil.copy(root / "ingest" / "manifest.csv", ingest / "manifest.csv")
    shutil.copytree(small_synth / "release", tmp_path / "moved")
    for release in (small_synth / "release", tmp_path / "moved"):
        result = _build_cli(tmp_path, ingest / "manifest.csv", release, tmp_path / "out")
        assert result.returncode == 0, result.stderr[-2000:]


def test_only_a_release_synth_wrote_is_carded_synthetic(tiny_synth, tmp_path):
    """A faults.csv beside a release is not enough: the workbook must be the one synth wrote."""
    import shutil

    import openpyxl

    copy = tmp_path / "synth"
    shutil.copytree(tiny_synth, copy)
    assert run_ingest(copy / "release", IngestParams(), workers=1, progress=False).validation["synthetic"] is True
    book = openpyxl.load_workbook(copy / "release" / "datasets.xlsx")
    book.properties.creator = "a hospital"
    book.save(copy / "release" / "datasets.xlsx")
    validation = run_ingest(copy / "release", IngestParams(), workers=1, progress=False).validation
    assert validation["synthetic"] is False and release_kind(validation) == "unverified"


@pytest.mark.parametrize(
    "text, says",
    [
        ("null", "is a JSON NoneType, not ingest's report"),
        ("[1, 2]", "is a JSON list, not ingest's report"),
        ("{}", "'release' is missing or not as ingest writes it"),
        ('{"release": "r", "md5": [1]}', "'md5' is missing or not as ingest writes it"),
        (
            '{"release": "r", "md5": [], "sources": {}, "drops_by_rule": {}, "repairs_by_rule": {}, '
            '"kept": {"cases": true, "by_split_and_class": {}}}',
            "'kept' is missing or not as ingest writes it",
        ),
        ("[" * 100_000, "cannot read (RecursionError"),
    ],
)
def test_build_refuses_a_validation_json_that_is_not_ingests(built, small_synth, tmp_path, text, says):
    """Third audit: these were AttributeErrors after every shard had been built, or (null) a build
    without its dataset card."""
    root, _ = built
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    (ingest / "manifest.csv").write_text((root / "ingest" / "manifest.csv").read_text())
    (ingest / "validation.json").write_text(text)
    line = _one_line(_build_cli(tmp_path, ingest / "manifest.csv", small_synth / "release", tmp_path / "out"))
    assert line.startswith(f"csxa-data: error: {ingest / 'validation.json'}: {says}"), line


def test_model_card_puts_every_metric_beside_the_baseline():
    metrics = {
        "n": 100,
        "accuracy": 0.96,
        "balanced_accuracy": 0.5,
        "auroc": None,
        "sensitivity": 1.0,
        "specificity": 0.0,
        "test_class_counts": {"0": 4, "1": 96},
        "baseline": {"accuracy": 0.96, "balanced_accuracy": 0.5, "sensitivity": 1.0, "specificity": 0.0},
    }
    card = model_card(
        "original_resnet",
        metrics,
        {"model": "resnet18", "weights": "none", "epochs": 2},
        {"variant": "original", "source": "data/variants/original", "shards_sha256": ["ab" * 32]},
    )
    meta, body = front_matter(card)
    assert meta["model_name"] == "original_resnet" and meta["csxa"]["data"]["variant"] == "original"
    assert "| balanced accuracy | 0.500 | 0.500 |" in body and "| AUROC | n/a |" in body
    assert "| accuracy | 0.960 | 0.960 |" in body
    assert "not a diagnostic device" in body and "ab" * 32 in body
    assert "- Version: unpublished, workspace" in body  # no version given: never passed off as published


def test_a_variant_uses_only_its_own_settings():
    centre = VariantSpec(crop="centre", colour="stacked").used()
    assert "centre_size" in centre and "both_orders_in_train" in centre and "grow_x" not in centre
    landmarks = VariantSpec(crop="landmarks", colour="grey").used()
    assert "centre_size" not in landmarks and "both_orders_in_train" not in landmarks
    assert {"grow_x", "grow_y", "min_box_side"} <= set(landmarks)


def test_croissant_metadata_validates_and_its_records_are_the_shards(built, tmp_path, monkeypatch):
    """croissant.json beside the shards: mlcroissant validates it (no errors) and reads every split's
    records, each image with its own label, joined on the sample key as the shards hold them."""
    import mlcroissant as mlc
    import numpy as np
    from etils import epath
    from mlcroissant._src.operation_graph.operations import extract

    # mlcroissant keeps extracted archives under ~/.cache/croissant by file name alone, so another
    # variant's train-000000.tar would be read in place of this one's: a cache of this test's own
    monkeypatch.setattr(extract, "EXTRACT_PATH", epath.Path(tmp_path / "croissant-cache"))

    from csxa_data.shards.format import read_shards, split_shards

    root, report = built
    variant = root / "variant"
    metadata = json.loads((variant / "croissant.json").read_text())
    assert metadata["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert {f["sha256"] for f in metadata["distribution"] if f["@type"] == "cr:FileObject"} == {
        s["sha256"] for s in report["shards"]
    }
    dataset = mlc.Dataset(jsonld=str(variant / "croissant.json"))
    assert "error" not in dataset.metadata.issues.report().lower()
    for split in ("train", "test"):
        truth = {s["key"]: (s["label"], s["image"]) for s in read_shards(split_shards(variant, split))}
        records = list(dataset.records(record_set=split))
        assert len(records) == report["totals"][split]["samples"] == len(truth)
        for record in records:
            key = record[f"{split}/key"].decode()
            label, pixels = truth[key]
            assert int(record[f"{split}/label"]) == label
            image = np.asarray(record[f"{split}/image"].convert("RGB"))
            assert np.array_equal(image, pixels)


def test_hugging_face_datasets_reads_a_variant_folder_by_its_card(built, tmp_path, monkeypatch):
    """The card's `configs` tell Hugging Face `datasets` which tars are which split: `load_dataset`
    on a pulled variant folder gives every sample with its class, offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    import datasets

    root, report = built
    loaded = datasets.load_dataset(str(root / "variant"), cache_dir=str(tmp_path / "hf-cache"))
    assert set(loaded) == {"train", "test"}
    for split in ("train", "test"):
        rows = loaded[split]
        assert len(rows) == report["totals"][split]["samples"]
        counts = {str(c): n for c, n in zip(*np.unique([int(r) for r in rows["cls"]], return_counts=True))}
        assert counts == report["totals"][split]["by_class"]


def test_plain_webdataset_reads_a_variant_folder(built):
    """WebDataset alone (no csxa) reads the shards: every sample, decoded, with its class."""
    import webdataset as wds

    from csxa_data.shards.format import split_shards

    root, report = built
    for split in ("train", "test"):
        urls = [str(p) for p in split_shards(root / "variant", split)]
        samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
        assert len(samples) == report["totals"][split]["samples"]
        assert all(s["png"].size == (32, 32) and s["cls"] in (0, 1) for s in samples)
        assert {s["json"]["split"] for s in samples} == {split}


def test_a_stamped_variant_names_its_version_in_card_and_croissant(built, tmp_path):
    """What publish's release commit builds: the card's "This version" with the notes one level down,
    csxa.version in the front matter, and a Croissant version that mlcroissant accepts."""
    import mlcroissant as mlc

    from csxa_data.croissant import croissant
    from csxa_data.stamp import Stamp, data_fingerprint
    from csxa_data.variants.card import dataset_card

    root, report = built
    variant = root / "variant"
    stats = json.loads((variant / "stats.json").read_text())
    validation = {"release": "data/synthetic/release", "synthetic": True}
    stamp = Stamp("v1.2.0", "Widened crops", "## Changes since v1.1.0\n\n- added: 0\n", "0" * 64)
    card = dataset_card("wide_cropped", report, stats, validation, registry="https://example.org/csxa.git", stamp=stamp)
    assert yaml.safe_load(card.split("---")[1])["csxa"]["version"] == "v1.2.0"
    assert "## This version\n\n`wide_cropped@v1.2.0` from https://example.org/csxa.git: Widened crops." in card
    assert "\n### Changes since v1.1.0\n\n- added: 0\n" in card
    unstamped = dataset_card("wide_cropped", report, stats, validation)
    assert "version" not in yaml.safe_load(unstamped.split("---")[1])["csxa"] and "Unpublished" in unstamped
    assert not stamp.describes(data_fingerprint((root / "variant" / "shards.json").read_bytes(), stats, validation))
    later = dataset_card("wide_cropped", report, stats, validation, stamped=stamp)
    assert "Unpublished: built after `wide_cropped@v1.2.0`, from other data" in later and "Widened" not in later

    metadata = croissant("wide_cropped", report, licence="CC BY 4.0", stamp=stamp)
    assert metadata["version"] == "1.2.0"
    (tmp_path / "croissant.json").write_text(json.dumps(metadata))
    issues = mlc.Dataset(jsonld=str(tmp_path / "croissant.json")).metadata.issues.report()
    assert "error" not in issues.lower() and "version" not in issues.lower(), issues


def test_a_build_names_the_stamped_version_only_for_the_shards_published(built, small_synth, tmp_path):
    """The build compares the stamp's shards.json sha256 with its own: the same data gets the version,
    other data (the same release cut into other shards) says it was built after it."""
    from csxa_data.stamp import Stamp, data_fingerprint

    root, _ = built
    published = data_fingerprint(
        (root / "variant" / "shards.json").read_bytes(),
        json.loads((root / "variant" / "stats.json").read_text()),
        json.loads((root / "ingest" / "validation.json").read_text()),
    )
    stamp = Stamp("v1.0.0", "First", "First version of wide_cropped.", published)
    for folder, shard_size in (("same", 20), ("other", 21)):
        build_variant(
            "wide_cropped",
            VariantSpec(crop="landmarks", grow_x=10, grow_y=20, out_size=32),
            read_manifest(root / "ingest" / "manifest.csv"),
            small_synth / "release",
            tmp_path / folder,
            BuildParams(shard_size=shard_size, min_shards=2),
            workers=2,
            progress=False,
            validation=json.loads((root / "ingest" / "validation.json").read_text()),
            stamp=stamp,
        )
    assert "`wide_cropped@v1.0.0` from REGISTRY_URL: First." in (tmp_path / "same" / "README.md").read_text()
    assert json.loads((tmp_path / "same" / "croissant.json").read_text())["version"] == "1.0.0"
    assert "built after `wide_cropped@v1.0.0`" in (tmp_path / "other" / "README.md").read_text()
    assert "version" not in json.loads((tmp_path / "other" / "croissant.json").read_text())
