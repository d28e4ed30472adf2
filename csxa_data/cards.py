"""What every card shares: Markdown with YAML front matter (the convention dataset and model hubs
read), tables, the CSXA citation, the caution, and how a card names the release it was built from.

- ``csxa_data.variants.card.dataset_card`` -> ``data/variants/NAME/README.md``, written by
  ``csxa-data build`` into the variant folder;
- ``csxa_train.card.model_card`` -> ``results/EXP/MODEL_CARD.md``, written by ``csxa-train fit``.

Both are pure functions of the reports the stages already write, so a card never disagrees with its
data. Training imports only this module, so a change to the dataset card retrains nothing.
"""

from __future__ import annotations

import yaml

CSXA_DOI = "10.57760/sciencedb.15391"
CSXA_ARTICLE_DOI = "10.1038/s41597-024-03383-0"
CSXA_CITATION = (
    "Ran Y. et al. A high-quality dataset featuring classified and annotated cervical spine X-ray "
    "atlas. Scientific Data 11 (2024). doi:10.1038/s41597-024-03383-0. Data: CSXA V3.0, Science Data "
    "Bank, doi:10.57760/sciencedb.15391"
)
SEED_PAPER = "Reddy et al. (2026), the effect of preprocessing on cervical spondylosis classification on CSXA"
CLASSES = {"0": "asymptomatic", "1": "spondylosis"}
CAUTION = (
    "Research use only. This is not a diagnostic device and has not been validated for clinical use; "
    "it must not inform the care of any patient."
)


def front_matter(fields: dict) -> str:
    """YAML front matter, the header dataset and model hubs read."""
    return "---\n" + yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=100) + "---\n"


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def release_kind(validation: dict) -> str:
    """'official' when the md5 of all three official files matched; 'synthetic' for a release that
    ingest found written by ``csxa-data synth`` (its workbook author, and its faults.csv beside the
    release); else 'unverified' (an unpacked or altered copy, or md5 not checked: it may hold real
    radiographs)."""
    statuses = [entry.get("status") for entry in validation.get("md5", [])]
    if len(statuses) == 3 and all(s == "match" for s in statuses):
        return "official"
    return "synthetic" if validation.get("synthetic") is True else "unverified"


# what a card says of each kind of release: licence, source datasets, and the source in prose
SOURCE_TERMS = {  # release kind -> (licence, source_datasets, how the card names the source)
    "official": (
        "the CSXA release's own terms (Science Data Bank, CSXA V3.0); read them before use",
        [f"doi:{CSXA_DOI}"],
        "the official CSXA V3.0 release (md5 of all three files verified)",
    ),
    "synthetic": (
        "synthetic data made by csxa: no patient data",
        ["synthetic (csxa-data synth)"],
        "**not the official release**: the synthetic atlas written by `csxa-data synth`; numbers below "
        "say nothing about real radiographs",
    ),
    "unverified": (
        "unverified copy: if it holds CSXA radiographs, the CSXA release's own terms (Science Data Bank, "
        "CSXA V3.0) apply; read them before use",
        [f"doi:{CSXA_DOI} (unverified copy)"],
        "**a release not verified as the official one** (its md5 did not all match CSXA V3.0's, or was not "
        "checked: an unpacked or altered copy); treat it as patient data unless you know otherwise",
    ),
}
