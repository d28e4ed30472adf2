"""Croissant metadata (MLCommons, the format Hugging Face, Kaggle and OpenML publish) for a variant:
``croissant.json`` beside its shards, so that any Croissant reader finds the files, their sha256 and
the records (key, image, label, case metadata) of each split.

Each shard is a ``FileObject``; per split, ``FileSet``s select the ``.png``, ``.cls`` and ``.json``
members of that split's shards; per split, a ``RecordSet`` joins them on the sample key.
"""

from __future__ import annotations

from csxa_data.cards import CSXA_CITATION, SEED_PAPER

CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
KEY = r"^(\d{7}(?:_[ab])?)(?:\.{suffix})?$"  # mlcroissant's `filename` of a tar member drops the suffix


def _member_set(split: str, kind: str, shards: list[str], encoding: str) -> dict:
    return {
        "@type": "cr:FileSet",
        "@id": f"{split}-{kind}",
        "name": f"{split}-{kind}",
        "description": f"The .{kind} member of every sample in the {split} shards.",
        "containedIn": [{"@id": name} for name in shards],
        "encodingFormat": encoding,
        "includes": f"*.{kind}",
    }


def _key_field(record: str, file_set: str, kind: str) -> dict:
    return {
        "@type": "cr:Field",
        "@id": f"{record}/key",
        "name": "key",
        "description": "The sample key: the film's 7-digit stem, with _a or _b for a colour variant's channel orders.",
        "dataType": "sc:Text",
        "source": {
            "fileSet": {"@id": file_set},
            "extract": {"fileProperty": "filename"},
            "transform": {"regex": KEY.replace("{suffix}", kind)},
        },
    }


def _records(split: str) -> list[dict]:
    """The label records of a split, then its samples joined with them on the key."""
    labels = f"{split}_labels"
    return [
        {
            "@type": "cr:RecordSet",
            "@id": labels,
            "name": labels,
            "description": f"The class of every {split} sample (its .cls member).",
            "key": {"@id": f"{labels}/key"},
            "field": [
                _key_field(labels, f"{split}-cls", "cls"),
                {
                    "@type": "cr:Field",
                    "@id": f"{labels}/label",
                    "name": "label",
                    "description": "0 asymptomatic, 1 cervical spondylosis.",
                    "dataType": "sc:Text",
                    "source": {"fileSet": {"@id": f"{split}-cls"}, "extract": {"fileProperty": "content"}},
                },
            ],
        },
        {
            "@type": "cr:RecordSet",
            "@id": split,
            "name": split,
            "description": f"The {split} split: one record per sample (image, label).",
            "field": [
                {**_key_field(split, f"{split}-png", "png"), "references": {"field": {"@id": f"{labels}/key"}}},
                {
                    "@type": "cr:Field",
                    "@id": f"{split}/image",
                    "name": "image",
                    "description": "The preprocessed film (PNG, RGB).",
                    "dataType": "sc:ImageObject",
                    "source": {"fileSet": {"@id": f"{split}-png"}, "extract": {"fileProperty": "content"}},
                },
                {
                    "@type": "cr:Field",
                    "@id": f"{split}/label",
                    "name": "label",
                    "description": "0 asymptomatic, 1 cervical spondylosis.",
                    "dataType": "sc:Text",
                    "source": {"field": {"@id": f"{labels}/label"}},
                },
            ],
        },
    ]


def croissant(name: str, report: dict, *, licence: str, registry: str = "", stamp=None) -> dict:
    """The Croissant 1.0 description of variant ``name`` from its ``shards.json`` ``report``, with the
    ``version`` of its :class:`~csxa_data.stamp.Stamp` where publish wrote one."""
    shards = report["shards"]
    splits = [split for split in report["totals"] if any(s["split"] == split for s in shards)]
    distribution = [
        {
            "@type": "cr:FileObject",
            "@id": shard["name"],
            "name": shard["name"],
            "description": f"A WebDataset shard of the {shard['split']} split ({shard['samples']} samples).",
            "contentUrl": shard["name"],
            "encodingFormat": "application/x-tar",
            "sha256": shard["sha256"],
        }
        for shard in shards
    ]
    for split in splits:
        names = [s["name"] for s in shards if s["split"] == split]
        distribution += [_member_set(split, "png", names, "image/png"), _member_set(split, "cls", names, "text/plain")]
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": f"csxa-{name}",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "description": (
            f"The CSXA variant {name}: one of the six preprocessings of the seed paper ({SEED_PAPER}), "
            "as WebDataset shards of lateral cervical spine X-rays labelled asymptomatic or cervical "
            "spondylosis, split by case. Built by csxa; the dataset card (README.md) says what ingest "
            "repaired and dropped."
        ),
        "citeAs": CSXA_CITATION,
        "license": licence,
        "url": registry or "https://doi.org/10.57760/sciencedb.15391",
        **({"version": stamp.version.removeprefix("v")} if stamp else {}),
        "keywords": ["medical", "x-ray", "cervical spine", "spondylosis", "webdataset"],
        "distribution": distribution,
        "recordSet": [record for split in splits for record in _records(split)],
    }
