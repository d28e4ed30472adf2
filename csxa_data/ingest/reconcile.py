"""Every row and file accounted for: the counts in, kept and dropped per source must reconcile, and
ingest's own tables must meet their contracts."""

from __future__ import annotations

import pandas as pd

from csxa_data.errors import CsxaError
from csxa_data.release.reader import SYNTHETIC_CREATOR, Release
from schemas import Drops, Landmarks, Manifest, NearDuplicates, Repairs


def reconcile(release: Release, manifest: pd.DataFrame, drops: pd.DataFrame, repairs: pd.DataFrame) -> dict:
    """Counts in and out per source, per rule, class and split; refuses if anything is unaccounted for."""
    inputs = {
        "sheet": len(release.columns),
        "png": len(release.pngs) + len(release.pngs.skipped),
        "json": len(release.jsons) + len(release.jsons.skipped),
    }
    sources = {}
    for source, count in inputs.items():
        dropped = drops[drops.source == source]
        if dropped.key.duplicated().any():
            twice = dropped.key[dropped.key.duplicated()].tolist()
            raise CsxaError(f"counts do not reconcile: {source} item(s) {twice} dropped twice")
        sources[source] = {"in": count, "kept": len(manifest), "dropped": len(dropped)}
        if count != len(manifest) + len(dropped):
            raise CsxaError(
                f"counts do not reconcile for {source}: {count} in, {len(manifest)} kept, {len(dropped)} dropped"
            )
    by_split_class = manifest.groupby(["split", "label"]).size()
    return {
        "release": str(release.root),
        # written by csxa-data synth: its workbook author, and its faults.csv beside the release (a
        # dataset card then says "no patient data"; anything short of both is an unverified copy)
        "synthetic": release.sheet.attrs.get("creator") == SYNTHETIC_CREATOR
        and (release.root.parent / "faults.csv").is_file(),
        "md5": release.checksums.to_dict("records"),
        "sources": sources,
        "drops_by_rule": {s: drops[drops.source == s].rule.value_counts().sort_index().to_dict() for s in inputs},
        "repairs_by_rule": repairs.rule.value_counts().sort_index().to_dict(),
        "kept": {
            "cases": len(manifest),
            "by_class": {str(k): int(v) for k, v in manifest.label.value_counts().sort_index().items()},
            "by_split": {str(k): int(v) for k, v in manifest.split.value_counts().sort_index().items()},
            "by_split_and_class": {f"{s}/{c}": int(n) for (s, c), n in by_split_class.items()},
            "inverted": int(manifest.inverted.sum()),
            "modes": {str(k): int(v) for k, v in manifest["mode"].value_counts().sort_index().items()},
            "channels_unequal": int((~manifest.channels_equal).sum()),
        },
    }


def check_contracts(manifest, landmarks, repairs, drops, duplicates=None) -> None:
    """Our own outputs must satisfy the published contracts; a failure here is a bug, not bad data."""
    import pandera.pandas as pa

    for name, contract, table in (
        ("manifest", Manifest, manifest),
        ("landmarks", Landmarks, landmarks),
        ("repairs", Repairs, repairs),
        ("drops", Drops, drops),
        *([("duplicates", NearDuplicates, duplicates)] if duplicates is not None else []),
    ):
        try:
            contract.validate(table, lazy=True)
        except pa.errors.SchemaErrors as exc:
            first = exc.failure_cases.iloc[0]
            raise CsxaError(
                f"internal error: the {name} table breaks its own contract schemas.{contract.__name__} "
                f"(column {first['column']!r}, check {first['check']!r}, value {first['failure_case']!r}); "
                "please report it with the release's drops.csv"
            ) from None
