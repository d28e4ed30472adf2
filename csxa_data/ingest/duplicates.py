"""Near-duplicate films: the same film (or the same patient's film re-exported) under two case
numbers, which would leak between train and test.

Each kept film gets a 256-bit perceptual hash (``imagehash.phash``, 16 x 16 DCT bits) of its grey
pixels after the inversion fix, on the central part of the film: a border of up to a tenth of a side
and text burned into the corners fall outside it, and the DCT of a downscaled copy does not see a
resize or a re-encoding. Pairs within ``max_distance`` differing bits are found with a multi-index
hash: the 256 bits cut into ``max_distance // 2 + 1`` bands, two hashes that close differ in at most
one bit of at least one band (pigeonhole), so only films nearly agreeing on a band are compared,
never all n^2 pairs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

HASH_SIZE = 16  # 16 x 16 = 256 bits
HASH_BYTES = HASH_SIZE * HASH_SIZE // 8
MARGIN = 0.12  # the share of each side left out of the hash: borders and corner text live there
POLICIES = ("report", "group", "drop")


def film_hash(grey: np.ndarray, inverted: bool) -> bytes:
    """The perceptual hash of a grey film (``inverted``: a negative, turned positive first)."""
    import imagehash
    from PIL import Image

    if inverted:
        grey = 255 - grey
    height, width = grey.shape
    dy, dx = int(height * MARGIN), int(width * MARGIN)
    centre = np.ascontiguousarray(grey[dy : height - dy, dx : width - dx])
    bits = imagehash.phash(Image.fromarray(centre), hash_size=HASH_SIZE).hash
    return np.packbits(bits.flatten()).tobytes()


def hamming(a: bytes, b: bytes) -> int:
    """How many bits differ between two hashes."""
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def _bands(max_distance: int) -> list[slice]:
    """Bands such that two hashes at most ``max_distance`` bits apart differ in at most one bit of one
    band (pigeonhole: ``max_distance`` bits over ``m`` bands leave one band with ``<= max_distance // m``)."""
    bits = HASH_BYTES * 8
    count = max(max_distance // 2 + 1, bits // 62 + 1)  # each band at most 62 bits wide (one int64 code)
    edges = np.linspace(0, bits, count + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def near_pairs(hashes: dict[int, bytes], max_distance: int) -> list[tuple[int, int, int]]:
    """Every pair of keys whose hashes differ in at most ``max_distance`` bits, as (smaller key,
    larger key, distance), sorted.

    Multi-index hashing: in each band, a hash is looked up (in the band's sorted codes) under its
    own code and its codes one bit away, so only hashes that nearly agree on a band are compared; with
    bands about 20 bits wide that is a few candidates per hash, and time and memory grow about
    linearly with the number of hashes."""
    if max_distance < 0 or len(hashes) < 2:
        return []
    keys = np.array(sorted(hashes), dtype=np.int64)
    packed = np.frombuffer(b"".join(hashes[k] for k in keys.tolist()), np.uint8).reshape(len(keys), HASH_BYTES)
    bits = np.unpackbits(packed, axis=1)
    words = packed.view(">u8")  # four 64-bit words per hash, for the distance
    found = []
    for band in _bands(max_distance):
        width = band.stop - band.start
        codes = bits[:, band].astype(np.int64).dot(1 << np.arange(width - 1, -1, -1, dtype=np.int64))
        order = np.argsort(codes, kind="stable")
        ordered = codes[order]
        flips = np.concatenate([[0], 1 << np.arange(width, dtype=np.int64)]) if max_distance else np.zeros(1, np.int64)
        queries = codes[:, None] ^ flips[None, :]
        low = np.searchsorted(ordered, queries, "left").ravel()
        count = np.searchsorted(ordered, queries, "right").ravel() - low
        asker = np.repeat(np.repeat(np.arange(len(codes)), len(flips)), count)
        starts = np.repeat(low, count)
        offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        other = order[starts + offsets]
        keep = asker < other
        asker, other = asker[keep], other[keep]
        distance = np.bitwise_count(words[asker] ^ words[other]).sum(axis=1, dtype=np.int64)
        close = distance <= max_distance
        found.append(np.stack([asker[close], other[close], distance[close]], axis=1))
    pairs = np.unique(np.concatenate(found), axis=0) if found else np.zeros((0, 3), np.int64)
    return [(int(keys[i]), int(keys[j]), int(d)) for i, j, d in pairs.tolist()]


def duplicate_groups(pairs: list[tuple[int, int, int]]) -> list[list[int]]:
    """Cases joined by near-duplicate pairs (a chain a-b, b-c is one group), each sorted, by first case."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for x in list(parent):
        groups[root(x)].append(x)
    return sorted(sorted(g) for g in groups.values())


# --- the policy --------------------------------------------------------------------------------


@dataclass
class Decision:
    """What the ``ingest.near_duplicates`` policy did: cases given their group's split (``group``),
    cases dropped with the first case of their group and the closest distance (``drop``)."""

    policy: str
    groups: list[list[int]]
    split: dict[int, str] = field(default_factory=dict)  # only the cases the policy moved
    dropped: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # case -> (closest twin, bits, first)


def near_duplicate_pairs(kept: list[dict], facts: dict[int, dict], max_bits: int) -> tuple[list, list[dict]]:
    """The near-duplicate pairs among the kept cases, and the films that could not be hashed (by case:
    they are kept, and compared with nothing)."""
    hashes, problems = {}, []
    for record in kept:
        fact = facts[record["number"]]
        if "hash" in fact:
            hashes[record["number"]] = bytes.fromhex(fact["hash"])
        else:
            problems.append({"number": record["number"], "stem": record["stem"], "problem": fact.get("hash_problem")})
    return near_pairs(hashes, max_bits), problems


def apply_policy(policy: str, pairs: list[tuple[int, int, int]], rule_split: dict[int, str]) -> Decision:
    """``report``: nothing changes. ``group``: every case of a group takes the split the rule gives its
    smallest case number (no other case moves). ``drop``: all but the smallest case of a group go."""
    groups = duplicate_groups(pairs)
    decision = Decision(policy, groups)
    for group in groups:
        first, rest = group[0], group[1:]
        if policy == "group":
            decision.split.update({case: rule_split[first] for case in rest if rule_split[case] != rule_split[first]})
        elif policy == "drop":
            for case in rest:
                distance, twin = min((d, b if a == case else a) for a, b, d in pairs if case in (a, b))
                decision.dropped[case] = (twin, distance, first)
    return decision


def duplicates_table(
    pairs: list[tuple[int, int, int]], rule_split: dict[int, str], decision: Decision, stems: dict[int, str]
) -> pd.DataFrame:
    """``duplicates.csv``: one row per pair, with the split the rule gives each case, whether the pair
    straddles train and test, and each case's split after the policy (or ``dropped``)."""

    def after(case: int) -> str:
        return "dropped" if case in decision.dropped else decision.split.get(case, rule_split[case])

    rows = [
        {
            "case_a": a,
            "case_b": b,
            "stem_a": stems[a],
            "stem_b": stems[b],
            "distance": d,
            "split_a": rule_split[a],
            "split_b": rule_split[b],
            "straddles": rule_split[a] != rule_split[b],
            "policy": decision.policy,
            "after_a": after(a),
            "after_b": after(b),
        }
        for a, b, d in pairs
    ]
    types = {"case_a": "int64", "case_b": "int64", "distance": "int64", "straddles": bool}
    return pd.DataFrame(rows, columns=DUPLICATE_COLUMNS).astype({c: types.get(c, "str") for c in DUPLICATE_COLUMNS})


DUPLICATE_COLUMNS = [
    "case_a",
    "case_b",
    "stem_a",
    "stem_b",
    "distance",
    "split_a",
    "split_b",
    "straddles",
    "policy",
    "after_a",
    "after_b",
]


def injected_duplicates(release_root: Path) -> set[tuple[int, int]] | None:
    """The pairs ``csxa-data synth`` injected (its ``faults.csv``), or None for a release without one."""
    from csxa_data.release.reader import injected_faults

    rows = injected_faults(release_root, "near_duplicate")
    if rows is None:
        return None
    pairs = set()
    for row in rows:
        match = re.search(r"copy of case ([0-9]+)", row["detail"] or "")
        number = row["number"] or ""
        if match and number.isascii() and number.isdigit():
            pairs.add(tuple(sorted((int(match.group(1)), int(number)))))
    return pairs


def duplicates_summary(
    policy: str,
    max_bits: int,
    table: pd.DataFrame,
    decision: Decision,
    hash_problems: list[dict],
    injected: set[tuple[int, int]] | None,
    kept: set[int],
) -> dict:
    """``validation.json``'s ``near_duplicates``: what was found and done, and, for a synthetic release,
    how it compares with the pairs injected."""
    found = {(int(a), int(b)) for a, b in zip(table.case_a, table.case_b)}
    summary = {
        "policy": policy,
        "max_bits": max_bits,
        "films_hashed": len(kept) - len(hash_problems),
        "hash_problems": hash_problems,
        "pairs": len(table),
        "straddling": int(table.straddles.sum()) if len(table) else 0,
        "groups": len(decision.groups),
        "moved": sorted(decision.split),
        "dropped": sorted(decision.dropped),
    }
    if injected is not None:
        reachable = {p for p in injected if set(p) <= kept}  # a pair with a dropped case cannot be found
        summary["truth"] = {
            "injected": len(injected),
            "not_kept": len(injected - reachable),
            "found": len(found & reachable),
            "missed": [list(p) for p in sorted(reachable - found)],
            "false_pairs": [list(p) for p in sorted(found - injected)],
        }
    return summary


def duplicate_sheet(table: pd.DataFrame, read_png, max_bits: int, max_pairs: int = 24, tile: int = 160):
    """``duplicates.png``: each pair side by side (positive, as hashed), captioned with the cases, the
    distance, the split each got from the rule and after the policy; ``read_png(case)`` gives a film's bytes."""
    from PIL import Image

    from csxa_data.release.images import decode_film, is_inverted
    from csxa_data.sheets import tile_grid

    def picture(case: int):
        try:
            grey, _ = decode_film(read_png(case)).grey()
        except Exception:  # noqa: BLE001 - a film that cannot be shown is a grey tile, not a failed ingest
            return Image.new("L", (tile, tile), 64)
        return Image.fromarray(255 - grey if is_inverted(grey) else grey)

    rows = []
    for row in table.head(max_pairs).itertuples():
        straddles = ", straddles train and test" if row.straddles else ""
        title = f"{row.case_a:04d} and {row.case_b:04d}: {row.distance} of 256 bits differ{straddles}"
        rows.append(
            (
                title,
                [
                    (picture(row.case_a), f"{row.case_a:04d}: {row.split_a} -> {row.after_a}"),
                    (picture(row.case_b), f"{row.case_b:04d}: {row.split_b} -> {row.after_b}"),
                ],
            )
        )
    if len(table) > max_pairs:
        rows.append((f"... and {len(table) - max_pairs} more pairs in duplicates.csv", []))
    return tile_grid(rows or [(f"No near-duplicate films (at most {max_bits} of 256 bits apart)", [])], tile)


def duplicates_sentences(summary: dict | None) -> list[str]:
    """What ingest's near-duplicate search found and did, in a few lines of Markdown (the ingest report
    and the dataset card), from ``validation.json``'s ``near_duplicates``."""
    if not summary:
        return ["Near-duplicate films were not searched for (a release ingested before csxa looked)."]
    done = {
        "report": "reported, nothing changed",
        "group": f"grouped: {len(summary['moved'])} case(s) moved to their group's split, no other case moved",
        "drop": f"dropped: {len(summary['dropped'])} case(s), all but the first of each group (rule near_duplicate)",
    }[summary["policy"]]
    lines = [
        f"- Near-duplicate films (perceptual hash, at most {summary['max_bits']} of 256 bits apart): "
        f"{summary['pairs']} pair(s) in {summary['groups']} group(s) among {summary['films_hashed']} films, "
        f"{summary['straddling']} straddling train and test by the split rule; policy `{summary['policy']}`: {done}."
    ]
    if summary["hash_problems"]:
        shown = ", ".join(f"{p['number']:04d}" for p in summary["hash_problems"][:10])
        lines.append(f"- Films that could not be hashed (kept, compared with nothing): {shown}.")
    truth = summary.get("truth")
    if truth is not None:
        gone = f" ({truth['not_kept']} with a case ingest dropped)" if truth.get("not_kept") else ""
        lines.append(
            f"- Against the {truth['injected']} pair(s) the synthetic release injected{gone}: {truth['found']} "
            f"found, {len(truth['missed'])} missed, {len(truth['false_pairs'])} false pair(s)."
        )
    return lines
