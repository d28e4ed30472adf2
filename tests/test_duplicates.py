"""Near-duplicate films, with real synthetic releases and real ingest runs: the hash is robust to what a
re-export does and tells distinct films apart, the multi-index search finds exactly what a brute-force
search finds, every injected pair is found with no false pair, and the policies `group` (only the
grouped cases move) and `drop` (logged, counts reconcile) do what they say."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from csxa_data.ingest.duplicates import HASH_BYTES, film_hash, hamming, near_pairs
from csxa_data.ingest.outputs import read_manifest, write_ingest
from csxa_data.ingest.params import IngestParams
from csxa_data.ingest.run import run_ingest
from csxa_data.release.images import decode_film, is_inverted
from csxa_data.release.reader import PNG_SET, open_file_set
from csxa_data.splits import split_cases
from csxa_data.synthetic import film as F
from csxa_data.synthetic.generate import SynthParams, write_synthetic_release


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """A 120-case release with 6 near-duplicate films and 3 label flips injected."""
    out = tmp_path_factory.mktemp("dups") / "synth"
    params = SynthParams(seed=5, cases=120, size_scale=0.2, near_duplicate_rate=0.05, label_flip_rate=0.025)
    write_synthetic_release(out, params, workers=2, progress=False)
    faults = pd.read_csv(out / "faults.csv", dtype=str, keep_default_na=False)
    pairs = {
        tuple(sorted((int(row.detail.split()[3]), int(row.number))))
        for row in faults[faults.fault == "near_duplicate"].itertuples()
    }
    return out, pairs


def greys(release) -> dict[str, np.ndarray]:
    files = open_file_set(release, PNG_SET)
    return {name: decode_film(files.read(name)).grey()[0] for name in sorted(files.table().name)}


def test_the_hash_sees_through_a_re_export_and_tells_films_apart(small_synth):
    """Resized by 0.85 and 1.15, a border, burned-in text, inverted and stored as RGB: within the
    default 24 bits of the original; any two distinct films of the release: further apart than that."""
    films = greys(small_synth / "release")
    hashes = {name: film_hash(g, is_inverted(g)) for name, g in films.items()}
    distinct = [hamming(a, b) for a, b in itertools.combinations(hashes.values(), 2)]
    assert min(distinct) > IngestParams().near_duplicate_bits
    rng = np.random.default_rng(0)
    for name, grey in list(films.items())[:12]:
        for scale in (0.85, 1.15):
            copy = Image.fromarray(grey).resize((round(grey.shape[1] * scale), round(grey.shape[0] * scale)))
            copy = F.burn_text(F.add_border(np.asarray(copy), rng), rng)
            copy = np.asarray(F.to_mode(F.invert(copy), "RGB").convert("L"))
            assert hamming(film_hash(copy, is_inverted(copy)), hashes[name]) <= IngestParams().near_duplicate_bits


@pytest.mark.parametrize("max_distance", [0, 5, 24])
def test_the_band_index_finds_exactly_what_brute_force_finds(max_distance):
    rng = np.random.default_rng(max_distance)
    hashes = {n: rng.integers(0, 256, HASH_BYTES, dtype=np.uint8).tobytes() for n in range(1, 301)}
    for n in range(301, 341):  # near copies of the first 40, up to 30 bits flipped
        copy = bytearray(hashes[n - 300])
        for bit in rng.choice(HASH_BYTES * 8, size=int(rng.integers(0, 31)), replace=False):
            copy[bit // 8] ^= 1 << (bit % 8)
        hashes[n] = bytes(copy)
    hashes[341] = hashes[7]  # an exact copy
    brute = sorted(
        (a, b, hamming(hashes[a], hashes[b]))
        for a, b in itertools.combinations(sorted(hashes), 2)
        if hamming(hashes[a], hashes[b]) <= max_distance
    )
    assert near_pairs(hashes, max_distance) == brute and (7, 341, 0) in brute


def test_every_injected_pair_is_found_and_no_other(copied, tmp_path):
    out, injected = copied
    assert len(injected) == 6
    result = run_ingest(out / "release", IngestParams(), workers=2, progress=False)
    found = set(zip(result.duplicates.case_a, result.duplicates.case_b))
    assert found == injected
    truth = result.validation["near_duplicates"]["truth"]
    assert truth == {"injected": 6, "not_kept": 0, "found": 6, "missed": [], "false_pairs": []}
    assert (result.duplicates.distance <= IngestParams().near_duplicate_bits).all()
    written = write_ingest(result, tmp_path / "ingest")
    table = pd.read_csv(written / "duplicates.csv")
    assert set(zip(table.case_a, table.case_b)) == injected
    with Image.open(written / "duplicates.png") as sheet:
        assert sheet.height > 6 * 160  # one row per pair
    assert "6 found, 0 missed, 0 false pair(s)" in (written / "validation.md").read_text()


def straddling_seed(injected: set[tuple[int, int]], fraction: float) -> int:
    """A split salt under which at least two injected pairs straddle train and test."""
    cases = sorted({c for pair in injected for c in pair})
    for seed in range(1000):
        side = dict(zip(cases, split_cases(pd.Series(cases), pd.Series([1] * len(cases)), fraction, seed)))
        if sum(side[a] != side[b] for a, b in injected) >= 2:
            return seed
    raise AssertionError("no salt splits two pairs")


def test_group_moves_only_the_grouped_cases(copied):
    """The same release under `report` and `group`: the cases whose split differs are exactly the
    second cases of the straddling pairs, now on their first case's side."""
    out, injected = copied
    seed = straddling_seed(injected, 0.25)
    report = run_ingest(out / "release", IngestParams(seed=seed), workers=2, progress=False)
    grouped = run_ingest(out / "release", IngestParams(seed=seed, near_duplicates="group"), workers=2, progress=False)
    before = dict(zip(report.manifest.number, report.manifest.split))
    after = dict(zip(grouped.manifest.number, grouped.manifest.split))
    assert before.keys() == after.keys()
    moved = {case for case in before if before[case] != after[case]}
    straddling = {b for a, b in injected if before[a] != before[b]}
    assert len(straddling) >= 2 and moved == straddling
    assert all(after[a] == after[b] for a, b in injected)
    assert grouped.validation["near_duplicates"]["moved"] == sorted(straddling)
    rows = grouped.duplicates.set_index("case_b")
    assert all(rows.at[b, "after_b"] == before[a] for a, b in injected)


def test_drop_logs_each_later_case_and_the_counts_reconcile(copied, tmp_path):
    out, injected = copied
    result = run_ingest(out / "release", IngestParams(near_duplicates="drop"), workers=2, progress=False)
    write_ingest(result, tmp_path / "ingest")
    drops = pd.read_csv(tmp_path / "ingest" / "drops.csv")
    dropped = drops[drops.rule == "near_duplicate"]
    assert sorted(dropped.number.astype(int).unique()) == sorted(b for _, b in injected)
    assert sorted(dropped.source) == sorted(["sheet", "png", "json"] * len(injected))
    assert all(
        f"near-duplicate film of case {a:04d}" in dropped[dropped.number == b].reason.iloc[0] for a, b in injected
    )
    manifest = read_manifest(tmp_path / "ingest" / "manifest.csv")
    assert not set(manifest.number) & {b for _, b in injected}
    assert set(manifest.number) >= {a for a, _ in injected}
    sources = result.validation["sources"]
    assert all(c["in"] == c["kept"] + c["dropped"] for c in sources.values())


def test_a_film_that_cannot_be_hashed_is_reported_and_kept(copied, monkeypatch):
    """One film whose hash fails (a stand-in for a decoder or imagehash failure on a hostile film): the
    case is kept, named in the report by case, and compared with nothing; ingest finishes."""
    from csxa_data.ingest import examine

    out, injected = copied
    victim = min(a for a, _ in injected)
    films = greys(out / "release")
    shape = next(g.shape for name, g in films.items() if int(name[:4]) == victim)
    assert sum(g.shape == shape for g in films.values()) == 1  # the film is known by its size
    real = examine.film_hash

    def failing(grey, inverted):
        if grey.shape == shape:
            raise ValueError("no usable pixels")
        return real(grey, inverted)

    monkeypatch.setattr(examine, "film_hash", failing)
    result = run_ingest(out / "release", IngestParams(), workers=1, progress=False)
    problems = result.validation["near_duplicates"]["hash_problems"]
    assert [p["number"] for p in problems] == [victim] and "no usable pixels" in problems[0]["problem"]
    assert victim in set(result.manifest.number)
    assert victim not in set(result.duplicates.case_a) and len(result.duplicates) == len(injected) - 1


def test_synth_records_label_flips_and_copies_only_in_faults_csv(copied):
    """A flipped case's sheet class is not its film's (truth.csv), a copy carries its source's class,
    and the release itself says nothing of either."""
    out, injected = copied
    faults = pd.read_csv(out / "faults.csv", dtype=str, keep_default_na=False)
    truth = pd.read_csv(out / "truth.csv").set_index("number")
    flipped = sorted(faults[faults.fault == "label_flip"].number.astype(int))
    assert len(flipped) == 3 and all(truth.at[n, "label_sheet"] != truth.at[n, "label"] for n in flipped)
    assert (truth.label_sheet != truth.label).sum() == 3
    assert all(truth.at[b, "label"] == truth.at[a, "label"] for a, b in injected)
    assert not set(flipped) & {c for pair in injected for c in pair}
    sheet = pd.read_excel(out / "release" / "datasets.xlsx", header=1)
    said = dict(zip(sheet.Number, sheet.Class))
    assert all(said[n] == ("asymptomatic" if truth.at[n, "label"] else "symptomatic") for n in flipped)


def test_a_chain_is_one_group_and_each_dropped_case_names_its_own_twin():
    """Pairs 1-2 and 2-3 (1 and 3 too far apart to pair): one group; `group` moves only the cases the
    rule put elsewhere; `drop` keeps 1 and names 2 as case 3's twin, with their own distance."""
    from csxa_data.ingest.duplicates import apply_policy, duplicate_groups

    pairs = [(1, 2, 10), (2, 3, 20), (7, 9, 0)]
    assert duplicate_groups(pairs) == [[1, 2, 3], [7, 9]]
    rule = {1: "train", 2: "test", 3: "train", 7: "test", 9: "test"}
    assert apply_policy("group", pairs, rule).split == {2: "train"}
    dropped = apply_policy("drop", pairs, rule).dropped
    assert dropped == {2: (1, 10, 1), 3: (2, 20, 1), 9: (7, 0, 7)}
    assert apply_policy("report", pairs, rule).split == {} and apply_policy("report", pairs, rule).dropped == {}


def test_a_fault_record_with_odd_numbers_is_read_without_a_traceback(tmp_path):
    """faults.csv is outside data to ingest: a superscript or Arabic-Indic digit, a missing column or
    undecodable bytes leave the pair out (or the truth unknown), never a traceback."""
    from csxa_data.ingest.duplicates import injected_duplicates
    from csxa_train.label_issues import injected_flips

    release = tmp_path / "release"
    release.mkdir()
    faults = tmp_path / "faults.csv"
    faults.write_text(
        "number,stem,fault,label,detail\n"
        "²,x,near_duplicate,,copy of case 0001 (scale 1.0)\n"
        "٣,x,label_flip,,sheet a\n"
        "0007,x,near_duplicate,,copy of case ٣\n"
        "0009,x,near_duplicate,,copy of case 0004 (scale 0.9)\n"
        "0011,x,label_flip,,sheet a\n",
        encoding="utf-8",
    )
    assert injected_duplicates(release) == {(4, 9)} and injected_flips(release) == {11}
    faults.write_bytes(b"number,fault\n\xff\xfe,label_flip\n")
    assert injected_duplicates(release) is None and injected_flips(release) is None
