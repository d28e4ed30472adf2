"""A variant's dataset card, ``data/variants/NAME/README.md``: written by ``csxa-data build`` into the
variant folder, so that whoever pulls, imports or streams a variant gets its card with it. A pure
function of the reports the build already writes (``validation.json``, ``shards.json``,
``stats.json``) and of the version stamp publish wrote (:mod:`csxa_data.stamp`).
"""

from __future__ import annotations

import yaml

from csxa_data.cards import (
    CAUTION,
    CLASSES,
    CSXA_CITATION,
    SEED_PAPER,
    SOURCE_TERMS,
    front_matter,
    markdown_table,
    release_kind,
)
from csxa_data.ingest.duplicates import duplicates_sentences


def _test_share(totals: dict) -> str:
    """'The test split is N% spondylosis', from the counts, or '' without test samples."""
    test = totals.get("test", {})
    samples = sum(test.get("by_class", {}).values())
    if not samples:
        return ""
    share = 100 * test["by_class"].get("1", 0) / samples
    return f"The test split is {share:.0f}% spondylosis: read balanced accuracy and AUROC, not accuracy."


def _orders_note(spec: dict) -> list[str]:
    """What a colour variant's samples hold: which channel orders, and what its statistics cover."""
    if spec.get("colour") != "stacked":
        return []
    if spec.get("both_orders_in_train", True):
        held = (
            "Train samples hold both channel orders (`STEM_a`, `STEM_b`), so the statistics of channels 1 and "
            "2 are those of both orders pooled"
        )
    else:
        held = (
            "Train samples hold order a only (key `STEM`): order b is the same pixels with channels 1 and 2 "
            "swapped, which `csxa-train` derives; the statistics are those of order a, and a model that sees "
            "both orders pools channels 1 and 2 (`csxa-train` does)"
        )
    return [
        f"Channel orders: a = grey, equalised, inverted; b = grey, inverted, equalised. {held}. Test samples "
        "hold order a (key `STEM`).",
        "",
    ]


def _version_section(name: str, where: str, stamp, stamped) -> list[str]:
    if stamp is None:
        if stamped is not None:
            said = (
                f"Unpublished: built after `{name}@{stamped.version}`, from other data (its shards differ from that "
                f"version's; `csxa-data diff {name} {stamped.version} HEAD` says how)."
            )
        else:
            said = f"Unpublished: built from a workspace, not from a published version of `{name}`."
        return [
            "## This version",
            "",
            f"{said} `csxa-data versions {name}` lists the published versions; publishing writes the version and "
            "its release notes here.",
            "",
        ]
    notes = stamp.notes.strip().splitlines()
    if notes and notes[0].startswith("#"):  # the notes' own heading, one level below this section's
        notes[0] = "#" + notes[0]
    return [
        "## This version",
        "",
        f"`{name}@{stamp.version}` from {where}: {stamp.title}. The tag `{name}@{stamp.version}` marks the "
        f"commit whose dvc.lock records these files (a commit cannot name itself: `csxa-data versions {name}` "
        "names it).",
        "",
        *notes,
        "",
    ]


def dataset_card(
    name: str,
    report: dict,
    stats: dict,
    validation: dict,
    *,
    registry: str = "",
    settings: dict | None = None,
    stamp=None,
    stamped=None,
) -> str:
    """The card of one variant: source release (DOI, licence, citation), what ingest repaired and
    dropped (counts per rule), class balance per split, the preprocessing settings it uses, shard
    checksums, and how to get it from ``registry`` (the registry's git URL, ``registry.url`` in
    params.yaml; a placeholder until one is set). ``settings``: the variant's settings that it uses
    (``VariantSpec.used``; by default every one in ``report``). ``stamp``: the version these files are
    (:class:`csxa_data.stamp.Stamp`: its title and release notes); None says unpublished, and
    ``stamped``, a stamp in params whose shards differ from these, that they were built after it."""
    totals = report["totals"]
    spec = settings if settings is not None else report.get("spec", {})
    where = registry or "REGISTRY_URL"
    licence, source_datasets, source = SOURCE_TERMS[release_kind(validation)]
    samples = sum(t["samples"] for t in totals.values())
    front = {
        "pretty_name": f"CSXA {name} (csxa variant)",
        "license": "other",
        "license_details": licence,
        "task_categories": ["image-classification"],
        "tags": ["medical", "x-ray", "cervical-spine", "spondylosis", "webdataset", "csxa"],
        "size_categories": ["1K<n<10K" if samples >= 1000 else "n<1K"],
        "source_datasets": source_datasets,
        "configs": [{"config_name": name, "data_files": [{"split": s, "path": f"{s}-*.tar"} for s in totals]}],
        "csxa": {
            "variant": name,
            **({"version": stamp.version} if stamp else {}),
            "spec": spec,
            "build": report.get("build", {}),
            "samples": {s: t["samples"] for s, t in totals.items()},
        },
    }
    lines = [
        f"# CSXA variant `{name}`",
        "",
        f"One of the six preprocessings of the seed paper ({SEED_PAPER}), as WebDataset shards built by "
        f"`csxa-data build --variant {name}` from {source}.",
        "",
        *_version_section(name, where, stamp, stamped),
        "## Source",
        "",
        f"- Release read: `{validation.get('release', '?')}`; md5 of the official files: "
        + (", ".join(f"{e.get('file')} {e.get('status')}" for e in validation.get("md5", [])) or "not checked"),
        f"- CSXA: {CSXA_CITATION}.",
        "- Licence: " + front["license_details"] + ".",
        "",
        "## What ingest did",
        "",
    ]
    sources = validation.get("sources", {})
    lines += markdown_table(
        ["source", "in", "kept", "dropped"],
        [[s, c.get("in"), c.get("kept"), c.get("dropped")] for s, c in sources.items()],
    )
    drops = [[s, rule, n] for s, rules in validation.get("drops_by_rule", {}).items() for rule, n in rules.items()]
    repairs = [[rule, n] for rule, n in validation.get("repairs_by_rule", {}).items()]
    lines += ["", "Drops by rule:" if drops else "No drops.", ""]
    if drops:
        lines += markdown_table(["source", "rule", "count"], drops) + [""]
    lines += ["Repairs by rule:" if repairs else "No repairs.", ""]
    if repairs:
        lines += markdown_table(["rule", "count"], repairs) + [""]
    lines += [
        "The rules are explained in the csxa docs (release and ingest); every row and file is in "
        "`manifest.csv` or `drops.csv` of the ingest stage.",
        "",
        "## Data quality",
        "",
        *duplicates_sentences(validation.get("near_duplicates")),
        "",
        "Each pair is in `duplicates.csv` of the ingest stage, side by side in its `duplicates.png`. Likely "
        "label errors are ranked after cross-validation, which is built on this variant, so they are not in it: "
        "`results/quality/label_issues.csv` (and `.md`, `.png`) of the same registry commit, from "
        "`csxa-train label-issues` (cleanlab over every cross-validation's out-of-fold predictions).",
        "",
        "## Class balance",
        "",
    ]
    lines += markdown_table(
        ["split", "cases", "samples", *CLASSES.values(), "skipped cases"],
        [
            [s, t.get("cases"), t["samples"], *(t["by_class"].get(c, 0) for c in CLASSES), t.get("skipped_cases", 0)]
            for s, t in totals.items()
        ],
    )
    lines += [
        "",
        "The split is by case and stable across versions (a keyed hash of the case number); "
        "normalisation statistics come from the train split alone.",
        "",
        "## Preprocessing",
        "",
        "```yaml",
        yaml.safe_dump({name: spec}, sort_keys=False).strip(),
        "```",
        "",
        *_orders_note(report.get("spec", {})),
        f"Train-split statistics (pixel / 255): mean {stats.get('mean')}, std {stats.get('std')}.",
        "",
        "## Shards",
        "",
    ]
    lines += markdown_table(
        ["shard", "split", "samples", "by class", "sha256"],
        [[s["name"], s["split"], s["samples"], s["by_class"], f"`{s['sha256']}`"] for s in report["shards"]],
    )
    lines += [
        "",
        "A sample is `KEY.png`, `KEY.cls` (0 asymptomatic, 1 spondylosis) and `KEY.json` (metadata: "
        "`schemas.SampleMeta`). Readers decode only these three members; `csxa-train` verifies each "
        "shard's sha256 and counts against `shards.json` as it streams.",
        "",
        "## Get it",
        "",
        "```bash",
        f"csxa-data versions {name} --repo {where}  # versions, commits, release notes",
        f"dvc artifacts get {where} {name} --rev vX.Y.Z  # the files of one version",
        f"dvc import {where} data/variants/{name} --rev {name}@vX.Y.Z  # tracked in your repository",
        f"csxa-train fit --registry {where} --variant {name} --rev latest --out results/mine  # stream",
        "```",
        "",
        *([] if registry else [f"`{where}`: set `registry.url` in params.yaml and the card names the registry.", ""]),
        f"In Python: `csxa_data.load_variant({name!r}, registry=..., rev='vX.Y.Z', split='train')`, verified as "
        "`csxa-train` verifies. A commit cannot name itself, so a copy's version is the tag "
        f"`{name}@vX.Y.Z` on the commit that built it: `csxa-data versions` lists them with their release notes, "
        "an import's `.dvc` file records `rev` and `rev_lock`, and `load_variant(...).provenance` names both.",
        "",
        "## Caution",
        "",
        CAUTION,
        _test_share(totals),
        "",
    ]
    return front_matter(front) + "\n" + "\n".join(lines)
