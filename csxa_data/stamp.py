"""The version stamp of a published variant: ``variants.<name>.published`` in params.yaml, written by
`csxa-data publish` in the release commit it tags, read by the variant's build into its dataset card
and Croissant metadata.

A commit cannot name itself, but it can name the version it is about to be tagged as: the stamp is a
parameter of the variant's stage, so the card is a function of the committed inputs and a fresh
`dvc repro` of that commit rebuilds the published bytes. Only that variant's stage depends on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from csxa_data.errors import CsxaError

KEY = "published"
FIELDS = {"version", "title", "notes", "fingerprint"}


@dataclass(frozen=True)
class Stamp:
    """What a variant's card says of its version: the version, the release title, the notes (the
    Markdown of :func:`csxa_data.diff.diff_markdown` against the previous version) and the
    :func:`data_fingerprint` of what was published, so that a later build from other data says it
    is not that version."""

    version: str
    title: str
    notes: str
    fingerprint: str

    def describes(self, fingerprint: str) -> bool:
        """Whether a build with this :func:`data_fingerprint` is the version stamped."""
        return fingerprint == self.fingerprint

    @classmethod
    def from_params(cls, name: str, section: dict | None) -> Stamp | None:
        """The stamp in ``variants.<name>`` (None before the first publish), checked key by key."""
        from csxa_data.registry import VERSION_TAG

        value = (section or {}).get(KEY)
        if value is None:
            return None
        where = f"variants.{name}.{KEY}"
        if not isinstance(value, dict) or set(value) != FIELDS:
            raise CsxaError(f"{where} must hold {', '.join(sorted(FIELDS))} (written by `csxa-data publish`)")
        if not all(isinstance(value[key], str) for key in value):
            raise CsxaError(f"{where}: {', '.join(sorted(FIELDS))} must be text")
        if not VERSION_TAG.fullmatch(value["version"]):
            raise CsxaError(f"{where}.version {value['version']!r} is not a version like v1.2.0")
        if not re.fullmatch(r"[0-9a-f]{64}", value["fingerprint"]):
            raise CsxaError(f"{where}.fingerprint must be the sha256 fingerprint of the data published")
        return cls(value["version"], value["title"], value["notes"], value["fingerprint"])

    def as_params(self) -> dict:
        return {"version": self.version, "title": self.title, "notes": self.notes, "fingerprint": self.fingerprint}


def data_fingerprint(shards_json: bytes, stats: dict, validation: dict) -> str:
    """What a version's data is: its ``shards.json`` bytes (which pin every shard by sha256), its
    statistics and ingest's report (repairs, drops, near-duplicates), canonical JSON, hashed."""
    canonical = json.dumps({"stats": stats, "validation": validation}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(shards_json + b"\0" + canonical.encode()).hexdigest()


def one_line(text: str) -> str:
    """A title as one line of printable text (a YAML scalar, a commit subject and a card line)."""
    return "".join(c if c.isprintable() else " " for c in " ".join(text.split())).strip()


def without_stamp(section: dict | None):
    """``variants.<name>`` less its stamp: the build settings alone."""
    if not isinstance(section, dict):
        return section
    return {key: value for key, value in section.items() if key != KEY}


def is_stamp_parameter(flat_key: str) -> bool:
    """A flattened parameter name (``params.yaml:variants.NAME.published.notes``) that is a stamp,
    not a build setting: what changed between two versions leaves it out."""
    parts = flat_key.split(":", 1)[-1].split(".")
    return len(parts) >= 3 and parts[0] == "variants" and parts[2] == KEY


def write_stamp(params_file: str | Path, name: str, stamp: Stamp) -> None:
    """Set ``variants.<name>.published`` in ``params_file``, keeping its comments, order and layout
    (a round trip through ruamel.yaml, as `dvc exp run -S` edits params)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import LiteralScalarString

    from csxa_data.atomic import atomic_path

    path = Path(params_file)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    # ruamel writes None as nothing; params.yaml spells it null
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    document = yaml.load(path.read_text(encoding="utf-8"))
    variants = document.get("variants") if document else None
    if not variants or name not in variants:
        raise CsxaError(f"no variants.{name} to stamp", path=path)
    values = stamp.as_params()
    values["title"] = one_line(values["title"])
    notes = "\n".join(line.rstrip() for line in values["notes"].replace("\r\n", "\n").split("\n")).rstrip("\n")
    values["notes"] = LiteralScalarString("".join(c if c.isprintable() or c == "\n" else "?" for c in notes) + "\n")
    if variants[name] is None:  # a variant with every setting at its default
        variants[name] = {}
    variants[name][KEY] = values
    mode = path.stat().st_mode
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            yaml.dump(document, handle)
        tmp.chmod(mode)
