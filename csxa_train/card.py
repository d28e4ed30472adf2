"""MODEL_CARD.md: the data version, protocol and test metrics of a run beside the majority baseline,
its intended use and the caution that it is not a diagnostic device."""

from __future__ import annotations

import yaml

from csxa_data.cards import CAUTION, SEED_PAPER, front_matter, markdown_table
from csxa_train.data import read_variant_json
from csxa_train.params import TrainParams


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def model_card(experiment: str, metrics: dict, config: dict, data: dict) -> str:
    """The card of one trained model: its data version, protocol, test metrics beside the majority
    baseline, intended use and the caution that it is not a diagnostic device. ``data`` describes
    the variant it was trained on (``variant``, ``source``, ``shards_sha256`` ...)."""
    front = {
        "model_name": experiment,
        "license": "other",
        "tags": ["medical", "x-ray", "cervical-spine", "spondylosis", "csxa", config.get("model", "?")],
        "datasets": [data.get("variant", "?")],
        "pipeline_tag": "image-classification",
        "csxa": {
            "experiment": experiment,
            "model": config.get("model"),
            "weights": config.get("weights"),
            "data": data,
        },
    }
    baseline = metrics.get("baseline", {})
    rows = []
    for key, label in [
        ("balanced_accuracy", "balanced accuracy"),
        ("auroc", "AUROC"),
        ("sensitivity", "sensitivity"),
        ("specificity", "specificity"),
        ("accuracy", "accuracy"),
        ("precision", "precision"),
        ("f1", "F1"),
    ]:
        if key in metrics:
            rows.append([label, _fmt(metrics.get(key)), _fmt(baseline.get(key)) if baseline else "n/a"])
    protocol = {
        k: config.get(k)
        for k in (
            "model",
            "weights",
            "balance",
            "epochs",
            "batch_size",
            "lr",
            "lr_step",
            "lr_gamma",
            "image_size",
            "seed",
            "augment",
        )
        if k in config
    }
    lines = [
        f"# Model card: `{experiment}`",
        "",
        f"A `{config.get('model')}` classifier (asymptomatic vs cervical spondylosis) trained by `csxa-train fit` "
        f"on the CSXA variant `{data.get('variant', '?')}`, repeating the protocol of the seed paper "
        f"({SEED_PAPER}).",
        "",
        "## Data",
        "",
        f"- Variant: `{data.get('variant', '?')}` from `{data.get('source', '?')}`",
        f"- Version: {data.get('version', 'unpublished, workspace')}",
        f"- Test samples: {metrics.get('n', '?')} ({metrics.get('test_class_counts', {})} by class)",
        f"- Shard sha256 (the exact data version): {', '.join(data.get('shards_sha256', [])[:3])}"
        f"{' ...' if len(data.get('shards_sha256', [])) > 3 else ''}",
        "",
        "## Protocol",
        "",
        "```yaml",
        yaml.safe_dump(protocol, sort_keys=False).strip(),
        "```",
        "",
        "## Test metrics",
        "",
        "Spondylosis is the positive class. The majority baseline always answers the train split's "
        "majority class; a model is only useful where it beats it on balanced accuracy and AUROC.",
        "",
    ]
    lines += markdown_table(["metric", "model", "majority baseline"], rows)
    chosen = metrics.get("at_threshold")
    if isinstance(chosen, dict) and "threshold" in metrics:
        lines += [
            "",
            f"At the threshold chosen on the validation part of the train split ({_fmt(metrics['threshold'])}, "
            f"{metrics.get('threshold_note', '')}): balanced accuracy {_fmt(chosen.get('balanced_accuracy'))}, "
            f"sensitivity {_fmt(chosen.get('sensitivity'))}, specificity {_fmt(chosen.get('specificity'))}.",
        ]
    lines += [
        "",
        "## Intended use",
        "",
        "Research on preprocessing and evaluation methods for cervical spine radiographs; comparisons "
        "between experiments of this registry on the same test split.",
        "",
        "## Caution",
        "",
        CAUTION,
        "",
    ]
    return front_matter(front) + "\n" + "\n".join(lines)


def model_card_text(title: str, details: dict, config: TrainParams) -> str:
    """The card of a run of ``config`` on its variant (read from the variant's ``shards.json``)."""
    from csxa_data.load import provenance_of

    report = read_variant_json(config.variant, "shards.json")
    origin = provenance_of(str(config.variant))
    data = {
        "variant": report.get("variant"),
        "source": str(config.variant),
        "version": origin.describe(),
        "registry_commit": origin.commit,
        "shards_sha256": [s["sha256"] for s in report["shards"]],
    }
    return model_card(title, details, config.to_dict(), data)
