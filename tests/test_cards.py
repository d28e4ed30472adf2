"""Dataset and model cards, generated from the reports the stages write."""

from __future__ import annotations

import json

import pytest
import yaml

from csxa_data.build import BuildParams, VariantSpec, build_variant, read_manifest
from csxa_data.cards import dataset_card, model_card, release_kind
from csxa_data.ingest import IngestParams, run_ingest, write_ingest


def front_matter(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.fixture(scope="module")
def built(small_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    write_ingest(run_ingest(small_synth / "release", IngestParams(), workers=2, progress=False), root / "ingest")
    validation = json.loads((root / "ingest" / "validation.json").read_text())
    report = build_variant("wide_cropped", VariantSpec(crop="landmarks", grow_x=10, grow_y=20, out_size=32),
                           read_manifest(root / "ingest" / "manifest.csv"), small_synth / "release",
                           root / "variant", BuildParams(shard_size=20, min_shards=2), workers=2, progress=False,
                           validation=validation)
    return root, report


def test_dataset_card_states_what_the_reports_say(built):
    root, report = built
    validation = json.loads((root / "ingest" / "validation.json").read_text())
    stats = json.loads((root / "variant" / "stats.json").read_text())
    assert (root / "variant" / "README.md").read_text() == dataset_card("wide_cropped", report, stats, validation)
    card = dataset_card("wide_cropped", report, stats, validation, registry="https://example.org/csxa")
    meta, body = front_matter(card)
    assert meta["pretty_name"] == "CSXA wide_cropped (csxa variant)"
    assert meta["task_categories"] == ["image-classification"]
    assert meta["csxa"]["samples"] == {s: t["samples"] for s, t in report["totals"].items()}
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "train-*.tar"},
                                               {"split": "test", "path": "test-*.tar"}]
    # the synthetic atlas is never passed off as the official release
    assert release_kind(validation) == "other" and "synthetic" in meta["license_details"]
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


def test_an_official_release_is_named_as_such():
    validation = {"md5": [{"file": f, "status": "match"} for f in ("a", "b", "c")]}
    assert release_kind(validation) == "official"
    assert release_kind({"md5": [{"file": "a", "status": "match"}, {"file": "b", "status": "differs"}]}) == "other"


def test_model_card_puts_every_metric_beside_the_baseline():
    metrics = {"n": 100, "accuracy": 0.96, "balanced_accuracy": 0.5, "auroc": None, "sensitivity": 1.0,
               "specificity": 0.0, "test_class_counts": {"0": 4, "1": 96},
               "baseline": {"accuracy": 0.96, "balanced_accuracy": 0.5, "sensitivity": 1.0, "specificity": 0.0}}
    card = model_card("original_resnet", metrics, {"model": "resnet18", "weights": "none", "epochs": 2},
                      {"variant": "original", "source": "data/variants/original", "shards_sha256": ["ab" * 32]})
    meta, body = front_matter(card)
    assert meta["model_name"] == "original_resnet" and meta["csxa"]["data"]["variant"] == "original"
    assert "| balanced accuracy | 0.500 | 0.500 |" in body and "| AUROC | n/a |" in body
    assert "| accuracy | 0.960 | 0.960 |" in body
    assert "not a diagnostic device" in body and "ab" * 32 in body
