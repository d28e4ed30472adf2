"""Cross-validation folds by case (integrity, stratification, stability) and the t-tests across folds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from csxa_data.errors import CsxaError
from csxa_data.splits import assign_folds, find_fold_salt, fold_counts, is_stratified, train_folds
from csxa_train.stats import corrected_resampled_ttest, paired_ttest_folds

# 150 train cases, 30 asymptomatic: the release's shape, small
NUMBERS = pd.Series(np.arange(1, 301, 2))
LABELS = pd.Series(np.where(np.arange(150) % 5 == 0, 0, 1))


@pytest.fixture(scope="module")
def salt():
    return find_fold_salt(NUMBERS, LABELS, 5)


def test_every_case_in_exactly_one_fold(salt):
    folds = assign_folds(NUMBERS, LABELS, 5, salt)
    assert len(folds) == len(NUMBERS) and folds.index.equals(NUMBERS.index)
    assert set(folds) == set(range(5))
    # one fold per case: the folds partition the cases
    members = [set(NUMBERS[folds == k]) for k in range(5)]
    assert sum(map(len, members)) == len(NUMBERS) and set().union(*members) == set(NUMBERS)


def test_folds_are_stratified(salt):
    folds = assign_folds(NUMBERS, LABELS, 5, salt)
    assert is_stratified(folds, LABELS)
    counts = fold_counts(folds, LABELS)
    assert (counts[0] >= 5).all() and (counts[0] <= 7).all()  # 30 asymptomatic: 6 +- 1 per fold
    assert (abs(counts[1] - 24) <= 2.4).all()  # 120 spondylotic: 24 +- 10%
    # a salt that the search skipped is not stratified: the search does something
    assert salt == 0 or not is_stratified(assign_folds(NUMBERS, LABELS, 5, salt - 1), LABELS)


def test_folds_are_stable_under_adding_and_removing_cases(salt):
    before = assign_folds(NUMBERS, LABELS, 5, salt)
    grown_numbers = pd.concat([NUMBERS, pd.Series([2, 4, 1000])], ignore_index=True)
    grown_labels = pd.concat([LABELS, pd.Series([0, 1, 1])], ignore_index=True)
    after = assign_folds(grown_numbers, grown_labels, 5, salt)
    assert (after[: len(NUMBERS)].to_numpy() == before.to_numpy()).all()
    shrunk = assign_folds(NUMBERS[10:], LABELS[10:], 5, salt)
    assert (shrunk.to_numpy() == before[10:].to_numpy()).all()
    # nor does the order of the rows matter
    shuffled = np.random.default_rng(0).permutation(len(NUMBERS))
    again = assign_folds(NUMBERS[shuffled], LABELS[shuffled], 5, salt)
    assert (again.sort_index().to_numpy() == before.to_numpy()).all()


def test_folds_cover_the_train_split_alone(salt):
    manifest = pd.DataFrame(
        {
            "number": np.arange(1, 301),
            "label": np.where(np.arange(300) % 5 == 0, 0, 1),
            "split": np.where(np.arange(300) % 2 == 0, "train", "test"),
        }
    )
    folds = train_folds(manifest, 5, salt)
    assert folds.number.tolist() == manifest.number[manifest.split == "train"].tolist()
    assert list(folds.columns) == ["number", "label", "fold"]


@pytest.mark.parametrize(
    "folds, message",
    [
        (31, "cv.folds 31 is larger than the 30 train cases of class 0: some fold would have none; use at most 30"),
        (1, "cv.folds must be a whole number of at least 2, not 1"),
        (True, "cv.folds must be a whole number of at least 2, not True"),
    ],
)
def test_bad_fold_counts_are_one_clear_line(folds, message):
    with pytest.raises(CsxaError, match=message):
        assign_folds(NUMBERS, LABELS, folds, 0)


def test_a_class_with_one_train_case_is_not_told_to_use_one_fold():
    """Third audit: the message said 'use at most 1 folds', against its own rule of at least 2."""
    with pytest.raises(CsxaError, match=r"^class 0 has 1 train case: cross-validation needs at least 2 of each class"):
        assign_folds(pd.Series([1, 2, 3, 4]), pd.Series([0, 1, 1, 1]), 2, 0)


def test_a_case_listed_twice_is_refused():
    with pytest.raises(CsxaError, match=r"case\(s\) listed twice: \[3\]"):
        assign_folds(pd.Series([1, 3, 3, 5]), pd.Series([0, 1, 1, 0]), 2, 0)


# per-fold differences in a metric between two experiments, 5-fold CV: mean 0.02, sample variance
# (0.01^2 + 0 + 0.01^2 + 0.02^2 + 0.02^2) / 4 = 0.00025
DIFFERENCES = [0.01, 0.02, 0.03, 0.00, 0.04]


def t4_two_sided(t: float) -> float:
    """Two-sided p of Student's t with 4 degrees of freedom, in closed form: with
    theta = atan(t / 2), P(|T| > t) = 1 - sin(theta) (1 + cos(theta)^2 / 2)."""
    theta = math.atan(abs(t) / 2)
    return 1 - math.sin(theta) * (1 + math.cos(theta) ** 2 / 2)


def test_uncorrected_paired_ttest_by_hand():
    t, p = paired_ttest_folds(DIFFERENCES)
    # 0.02 / sqrt(0.00025 / 5) = 0.02 / sqrt(0.00005) = 2 sqrt(2)
    assert t == pytest.approx(2 * math.sqrt(2))
    assert p == pytest.approx(t4_two_sided(2 * math.sqrt(2))) and p == pytest.approx(0.0474, abs=5e-4)


def test_corrected_resampled_ttest_by_hand():
    # 5-fold: each fold trains on 4/5 and tests on 1/5, n_test / n_train = 1/4
    t, p = corrected_resampled_ttest(DIFFERENCES, n_train=400, n_test=100)
    # 0.02 / sqrt((1/5 + 1/4) x 0.00025) = 2 sqrt(2) x sqrt(0.2 / 0.45) = 4 sqrt(2) / 3
    assert t == pytest.approx(4 * math.sqrt(2) / 3)
    assert p == pytest.approx(t4_two_sided(4 * math.sqrt(2) / 3)) and p == pytest.approx(0.1324, abs=5e-4)
    # the correction only ever widens: same sign, smaller |t|, larger p
    t0, p0 = paired_ttest_folds(DIFFERENCES)
    assert abs(t) < abs(t0) and p > p0
    # one-sided halves the two-sided p for a positive t
    assert corrected_resampled_ttest(DIFFERENCES, 400, 100, alternative="greater")[1] == pytest.approx(p / 2)


def test_ttests_refuse_too_few_or_bad_differences():
    with pytest.raises(CsxaError, match="at least 2 per-fold differences"):
        paired_ttest_folds([0.1])
    with pytest.raises(CsxaError, match="NaN or infinite"):
        corrected_resampled_ttest([0.1, float("nan")], 4, 1)
    with pytest.raises(CsxaError, match="alternative must be one of"):
        paired_ttest_folds([0.1, 0.2], alternative="bigger")


def _manifest(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "number": np.arange(1, n + 1),
            "label": np.where(np.arange(n) % 5 == 0, 0, 1),
            "split": np.where(np.arange(n) % 4 == 0, "test", "train"),
        }
    )


def test_repeated_folds_have_one_stratified_salt_per_repeat_and_stay_put_when_cases_join():
    from csxa_data.splits import find_fold_salts, repeated_train_folds, validate_folds

    manifest = _manifest(300)
    train = manifest[manifest.split == "train"]
    salts = find_fold_salts(train.number, train.label, 3, 2, start=10)
    assert len(salts) == 2 and 10 <= salts[0] < salts[1]
    folds, warnings = repeated_train_folds(manifest, 3, salts, 2)
    assert warnings == [] and list(folds.columns) == ["number", "label", "repeat", "fold"]
    validate_folds(folds, "folds.csv")
    for r, salt in enumerate(salts):
        part = folds[folds.repeat == r].reset_index(drop=True)
        assert part.fold.tolist() == assign_folds(part.number, part.label, 3, salt).tolist()
    # a later release with 20 more cases: every earlier case keeps its fold in every repeat
    grown, _ = repeated_train_folds(_manifest(320), 3, salts, 2)
    merged = folds.merge(grown, on=["number", "repeat"], suffixes=("", "_grown"))
    assert len(merged) == len(folds) and (merged.fold == merged.fold_grown).all()
    # a single number s stands for the salts s, s + 1, ...
    single, _ = repeated_train_folds(manifest, 3, salts[0], 2)
    assert single[single.repeat == 1].fold.tolist() == train_folds(manifest, 3, salts[0] + 1).fold.tolist()


def test_the_folds_contract_refuses_a_case_in_two_folds_or_a_fold_without_a_class():
    from csxa_data.splits import validate_folds

    good = pd.DataFrame({"number": [1, 2, 3, 4], "label": [0, 1, 0, 1], "repeat": 0, "fold": [0, 0, 1, 1]})
    validate_folds(good, "folds.csv")
    twice = pd.concat([good, pd.DataFrame({"number": [1], "label": [0], "repeat": [0], "fold": [1]})])
    with pytest.raises(CsxaError, match="one_fold_per_case_and_repeat"):
        validate_folds(twice, "folds.csv")
    with pytest.raises(CsxaError, match="every_fold_holds_both_classes"):
        validate_folds(good.assign(fold=[0, 1, 1, 1]), "folds.csv")
