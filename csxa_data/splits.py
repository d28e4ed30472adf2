"""Cross-validation folds by case, over the train split, stable under adding a case.

Each case's fold is ``floor(k x h)``, where ``h`` in [0, 1) is a keyed hash of its case number
(BLAKE2b keyed with the salt): a case's fold depends on its own number alone, so a new release
version that adds or removes cases moves no other case between folds, as the registry's
train/test split does. All samples of a case (a colour variant's two channel orders) share the
case's fold. Stratification by class comes from the salt: :func:`find_fold_salt` searches, once
for a release, the first salt whose folds hold every class in near-equal shares, and
``cv.seed`` freezes it (a later case that joins moves the shares by one at most).

The folds cover the train split alone: the test split stays the untouched hold-out that every
cross-validated choice is finally checked on, and the registry's split does not move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from csxa_data.csvtext import read_csv_file
from csxa_data.errors import CsxaError, conform
from csxa_data.params import dataclass_from_section
from schemas import Folds


@dataclass(frozen=True)
class CvParams:
    """The ``cv`` section of params.yaml."""

    folds: int = 5  # the paper's protocol; the demo uses 3
    repeats: int = 1  # repeated cross-validation: each repeat its own salt
    seed: int | list = 0  # the fold salt (a list: one per repeat), found once by `csxa-data fold-salt`

    @classmethod
    def from_dict(cls, data: dict | None) -> CvParams:

        params = dataclass_from_section(cls, data or {}, "cv")
        if isinstance(params.folds, bool) or not isinstance(params.folds, int) or params.folds < 2:
            raise CsxaError(f"cv.folds must be a whole number of at least 2, not {params.folds!r}", path="params.yaml")
        repeat_salts(params.seed, params.repeats)  # checks repeats and seed
        return params


def check_fold_count(labels: pd.Series, folds: int) -> None:
    """At least 2 folds, and no more than the smallest class has cases (else a fold lacks it)."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise CsxaError(f"cv.folds must be a whole number of at least 2, not {folds!r}", path="params.yaml")
    counts = pd.Series(labels).value_counts()
    if len(counts) < 2:
        raise CsxaError(
            f"cross-validation needs both classes in the train split; it holds class(es) {sorted(counts.index)}"
        )
    fewest = int(counts.min())
    if fewest < 2:
        raise CsxaError(
            f"class {counts.idxmin()} has {fewest} train case: cross-validation needs at least 2 of each "
            "class (one in each of at least 2 folds)"
        )
    if folds > fewest:
        raise CsxaError(
            f"cv.folds {folds} is larger than the {fewest} train cases of class "
            f"{counts.idxmin()}: some fold would have none; use at most {fewest} folds",
            path="params.yaml",
        )


def assign_folds(numbers: pd.Series, labels: pd.Series, folds: int, salt: int) -> pd.Series:
    """The fold (0 .. folds-1) of every case, indexed like ``numbers``: ``floor(folds x
    case_draw(number, salt))``."""
    numbers, labels = pd.Series(numbers), pd.Series(labels)
    if numbers.duplicated().any():
        raise CsxaError(f"case(s) listed twice: {sorted(numbers[numbers.duplicated()].tolist())[:5]}")
    check_fold_count(labels, folds)
    draws = numbers.map(lambda n: case_draw(n, salt)).to_numpy(dtype=float)
    return pd.Series(np.minimum((draws * folds).astype(np.int64), folds - 1), index=numbers.index, name="fold")


def fold_counts(folds: pd.Series, labels: pd.Series) -> pd.DataFrame:
    """Cases per fold (rows) and class (columns)."""
    return pd.crosstab(folds, labels).reindex(range(int(folds.max()) + 1), fill_value=0)


def _balanced(counts: np.ndarray, tolerance: float) -> bool:
    """counts: folds x classes; every count within max(1, tolerance x mean) of its class's mean."""
    mean = counts.mean(axis=0)
    return bool((np.abs(counts - mean) <= np.maximum(1.0, tolerance * mean)).all())


def is_stratified(folds: pd.Series, labels: pd.Series, tolerance: float = 0.1) -> bool:
    """Every class's count in every fold within ``max(1, tolerance x its mean per fold)`` of that mean."""
    return _balanced(fold_counts(folds, labels).to_numpy(dtype=float), tolerance)


def find_fold_salt(
    numbers: pd.Series, labels: pd.Series, folds: int, *, start: int = 0, tries: int = 100_000, tolerance: float = 0.1
) -> int:
    """The first salt from ``start`` whose folds are stratified (:func:`is_stratified`): searched
    once for a release, then frozen in ``cv.seed``."""
    check_fold_count(labels, folds)
    numbers = [int(n) for n in numbers]
    codes, _ = pd.factorize(pd.Series(labels), sort=True)
    classes = int(codes.max()) + 1
    for salt in range(start, start + tries):
        fold = np.minimum((np.array([case_draw(n, salt) for n in numbers]) * folds).astype(np.int64), folds - 1)
        counts = np.bincount(fold * classes + codes, minlength=folds * classes).reshape(folds, classes)
        if _balanced(counts.astype(float), tolerance):
            return salt
    raise CsxaError(f"no salt in {start}..{start + tries - 1} gives stratified folds; raise the tolerance")


def find_fold_salts(
    numbers: pd.Series, labels: pd.Series, folds: int, repeats: int, *, start: int = 0, tolerance: float = 0.1
) -> list[int]:
    """``repeats`` stratified salts: the first from ``start``, each next one the first after the
    previous (what ``csxa-data fold-salt --repeats R`` prints, to freeze in ``cv.seed``)."""
    salts: list[int] = []
    for _ in range(repeats):
        salts.append(
            find_fold_salt(numbers, labels, folds, start=salts[-1] + 1 if salts else start, tolerance=tolerance)
        )
    return salts


def repeat_salts(seed: int | list[int], repeats: int) -> list[int]:
    """The salt of each repeat from ``cv.seed``: a list gives one salt per repeat (as
    :func:`find_fold_salts` prints them); a single number ``s`` gives ``s, s + 1, ..``. Either way
    the salts are fixed numbers, never searched at run time, so folds stay put as cases are added."""
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or not 1 <= repeats <= 100:
        raise CsxaError(f"cv.repeats must be a whole number within 1..100, not {str(repeats)[:40]}", path="params.yaml")
    salts = (
        list(seed)
        if isinstance(seed, (list, tuple))
        else [seed + r for r in range(repeats)]
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
        else None
    )
    if salts is None or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in salts):
        raise CsxaError(f"cv.seed must be a whole number or a list of them, not {seed!r}", path="params.yaml")
    if len(salts) != repeats:
        raise CsxaError(
            f"cv.seed lists {len(salts)} salt(s) for {repeats} repeat(s); give one per repeat", path="params.yaml"
        )
    if len(set(salts)) != len(salts):
        raise CsxaError(
            f"cv.seed lists a salt twice ({salts}): two repeats would be the same folds", path="params.yaml"
        )
    return [int(s) for s in salts]


def repeated_train_folds(
    manifest: pd.DataFrame, folds: int, seed: int | list[int], repeats: int = 1
) -> tuple[pd.DataFrame, list[str]]:
    """``number, label, repeat, fold`` for every train case and repeat (sorted by repeat, number),
    and a warning per repeat whose folds are not stratified within tolerance (a fold count too
    large for the smallest class is an error)."""
    parts, warnings = [], []
    for r, salt in enumerate(repeat_salts(seed, repeats)):
        part = train_folds(manifest, folds, salt)
        if not is_stratified(part.fold, part.label):
            counts = fold_counts(part.fold, part.label)
            warnings.append(
                f"repeat {r} (salt {salt}): folds not stratified within 10%: cases per fold and class "
                f"{counts.to_dict(orient='list')}; `csxa-data fold-salt` finds stratified salts"
            )
        parts.append(part.assign(repeat=r)[["number", "label", "repeat", "fold"]])
    return pd.concat(parts, ignore_index=True), warnings


def train_folds(manifest: pd.DataFrame, folds: int, salt: int) -> pd.DataFrame:
    """``number, label, fold`` for every case of the manifest's train split, sorted by number."""
    train = manifest[manifest.split == "train"].sort_values("number", ignore_index=True)
    if train.empty:
        raise CsxaError("the manifest has no train cases to fold")
    return pd.DataFrame(
        {
            "number": train.number.astype("int64"),
            "label": train.label.astype("int64"),
            "fold": assign_folds(train.number, train.label, folds, salt),
        }
    )


def validate_folds(frame: pd.DataFrame, path) -> pd.DataFrame:
    """``frame`` checked against ``schemas.Folds``; a breach is one line naming the file and check."""

    return conform(Folds, frame, path)


def read_folds(path) -> pd.DataFrame:
    """``folds.csv`` as written by ``csxa-data folds``, checked against its contract."""

    return validate_folds(read_csv_file(path, "not found; run `csxa-data folds` (or `dvc repro folds`) first"), path)


def case_draw(number: int, salt: int) -> float:
    """A case's fixed position in [0, 1): a keyed hash of its number and the salt, nothing else."""
    digest = hashlib.blake2b(str(int(number)).encode(), digest_size=8, key=str(int(salt)).encode()).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_cases(numbers: pd.Series, labels: pd.Series, test_fraction: float, seed: int) -> pd.Series:
    """'train'/'test' per case: test where the case's keyed hash (:func:`case_draw`, salt ``seed``)
    falls below ``test_fraction``. Each case's side depends on its own number alone, so a new
    release version that adds or removes cases moves no other case between train and test; each
    class is split in the same proportion (stratified in expectation, within sampling error)."""
    draws = numbers.map(lambda n: case_draw(n, seed))
    return pd.Series(np.where(draws < test_fraction, "test", "train"), index=numbers.index, dtype=object)


def find_split_salt(
    numbers: pd.Series, labels: pd.Series, test_fraction: float, start: int = 0, tries: int = 100_000
) -> int:
    """The first salt from ``start`` whose split puts exactly round(n x test_fraction) cases of each
    class in test: searched once for a release, then frozen in ``ingest.seed``."""
    for salt in range(start, start + tries):
        split = split_cases(numbers, labels, test_fraction, salt)
        if all(
            int(((split == "test") & (labels == label)).sum()) == round(int((labels == label).sum()) * test_fraction)
            for label in labels.unique()
        ):
            return salt
    raise CsxaError(f"no salt in {start}..{start + tries - 1} splits every class exactly; keep the nearest")


def validation_cases(labels: np.ndarray, stems: list[str], fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the cases held out for validation: ``fraction`` of each class (rounded),
    drawn by a seeded permutation of the cases sorted by stem."""
    mask = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    order = np.argsort(np.asarray(stems), kind="mergesort")
    for cls in np.unique(labels):
        members = order[labels[order] == cls]
        take = int(round(fraction * len(members)))
        mask[rng.permutation(members)[:take]] = True
    return mask
