"""csxa_train.stats and the metric edge cases, each against an independent reference value."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from csxa_data.errors import CsxaError
from csxa_train import stats
from csxa_train.metrics import (
    calibration_table,
    choose_threshold,
    classification_metrics,
    evaluate_predictions,
    expected_calibration_error,
    parse_threshold_rule,
)

PAPER = {95.48: 0.0732, 95.73: 0.0406, 94.76: 0.269, 94.92: 0.213}  # Table 1 accuracy -> printed p


@pytest.mark.parametrize("accuracy,printed", sorted(PAPER.items()))
def test_two_proportion_ztest_reproduces_the_papers_p_values(accuracy, printed):
    n = 1241
    k, k_ref = round(accuracy / 100 * n), round(94.19 / 100 * n)
    z, p = stats.two_proportion_ztest(k, n, k_ref, n, alternative="greater")
    assert round(p, 4 if printed < 0.1 else 3) == printed
    _, two = stats.two_proportion_ztest(k, n, k_ref, n, alternative="two-sided")
    assert two == pytest.approx(2 * p) and two > 0.05  # none of the paper's differences is two-sided significant
    _, less = stats.two_proportion_ztest(k, n, k_ref, n, alternative="less")
    assert less == pytest.approx(1 - p) and z > 0


def test_two_sided_ztest_equals_the_chi_square_test_without_correction():
    from scipy.stats import chi2_contingency

    for k1, n1, k2, n2 in ((30, 100, 45, 110), (1169, 1241, 1188, 1241), (3, 20, 0, 25)):
        z, p = stats.two_proportion_ztest(k1, n1, k2, n2)
        chi2, p_chi, _, _ = chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False)
        assert p == pytest.approx(p_chi) and z * z == pytest.approx(chi2)
    assert stats.two_proportion_ztest(5, 5, 7, 7) == (0.0, 1.0)
    with pytest.raises(CsxaError, match="alternative"):
        stats.two_proportion_ztest(1, 2, 1, 2, alternative="larger")
    with pytest.raises(CsxaError, match="0 <= k <= n"):
        stats.two_proportion_ztest(3, 2, 1, 2)


def test_mcnemar_exact_counts_discordant_pairs_and_matches_the_binomial_sum():
    ref = np.array([1] * 10 + [0] * 20 + [1] * 5 + [0] * 15, bool)  # 5 only-reference, 15 only-other
    other = np.array([1] * 10 + [0] * 20 + [0] * 5 + [1] * 15, bool)
    result = stats.mcnemar_exact(ref, other)
    assert (result["only_reference_correct"], result["only_other_correct"]) == (5, 15)
    expected = 2 * sum(math.comb(20, i) for i in range(6)) / 2**20  # two-sided exact: 2 * P(X <= 5)
    assert result["p"] == pytest.approx(expected) and result["p"] == pytest.approx(0.04138946533203125)
    assert stats.mcnemar_exact(ref, ref)["p"] == 1.0
    with pytest.raises(CsxaError, match="paired"):
        stats.mcnemar_exact(ref, other[:-1])


def test_wilson_interval_matches_the_closed_form():
    k, n, z = 45, 60, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = stats.wilson_interval(k, n)
    assert low == pytest.approx(centre - half) and high == pytest.approx(centre + half)
    assert stats.wilson_interval(0, 0) == (None, None)
    assert stats.wilson_interval(0, 10)[0] == 0.0


def test_holm_adjustment():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.02]) == pytest.approx([0.02])


def test_auroc_rows_match_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(5, 40))
    scores = np.round(rng.random((5, 40)), 1)  # many ties
    for row, value in enumerate(stats.auroc_rows(labels, scores)):
        assert value == pytest.approx(roc_auc_score(labels[row], scores[row]))
    assert np.isnan(stats.auroc_rows(np.ones((1, 5)), np.linspace(0, 1, 5))[0])


def test_stratified_bootstrap_keeps_the_class_counts_and_is_seeded():
    labels = np.array([0] * 7 + [1] * 93)
    index = stats.stratified_bootstrap_indices(labels, 500, seed=3)
    assert index.shape == (500, 100)
    assert ((labels[index] == 0).sum(1) == 7).all()
    assert np.array_equal(index, stats.stratified_bootstrap_indices(labels, 500, seed=3))
    assert not np.array_equal(index, stats.stratified_bootstrap_indices(labels, 500, seed=4))
    low, high = stats.bootstrap_interval(np.arange(1001.0))
    assert (low, high) == pytest.approx((25.0, 975.0))
    assert stats.bootstrap_interval([np.nan, np.nan]) == (None, None)


# --- edge cases of the metrics ------------------------------------------------------------------


def test_one_class_test_set_balanced_accuracy_as_scikit_learn_and_auroc_undefined():
    from sklearn.metrics import balanced_accuracy_score

    labels, preds, scores = np.ones(6, int), np.array([1, 1, 0, 1, 0, 1]), np.linspace(0.1, 0.9, 6)
    with pytest.warns(UserWarning):
        expected = balanced_accuracy_score(labels, preds)
    m = classification_metrics(labels, preds, scores)
    assert m["balanced_accuracy"] == pytest.approx(expected) == pytest.approx(4 / 6)
    assert m["auroc"] is None and m["specificity"] == 0.0
    details = evaluate_predictions(pd.DataFrame({"label": labels, "score": scores}), majority_class=1)
    assert details["auroc"] is None and details["baseline"]["auroc"] is None


@pytest.mark.parametrize(
    "scores,match",
    [([0.1, np.nan, 0.5], "NaN or outside"), ([0.1, 1.2, 0.5], "NaN or outside"), ([-0.1, 0.2, 0.5], "NaN or outside")],
)
def test_nan_or_out_of_range_scores_are_a_clear_error(scores, match):
    with pytest.raises(CsxaError, match=match):
        classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 1]), np.array(scores))


@pytest.mark.parametrize("labels", [[0, 2, 1], [0, -1, 1], [True, False, True]])
def test_labels_other_than_0_or_1_are_a_clear_error(labels):
    with pytest.raises(CsxaError, match="labels must be 0"):
        classification_metrics(np.array(labels), np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9]))


def test_threshold_rules_on_validation_scores():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.75, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95])
    assert choose_threshold(labels, scores, 0.5)[0] == 0.5
    youden, note = choose_threshold(labels, scores, "youden")
    assert youden == 0.4 and "validation" in note  # all positives, three of four negatives right: J = 0.75
    t, _ = choose_threshold(labels, scores, "sensitivity@0.8")
    assert t == 0.6 and ((scores >= t) & (labels == 1)).sum() / 6 >= 0.8
    assert choose_threshold(np.ones(4, int), np.linspace(0, 1, 4), "youden")[0] == 0.5
    for bad in ("median", "sensitivity@1.5", 1.5, True):
        with pytest.raises(CsxaError, match="train.threshold"):
            parse_threshold_rule(bad)


def test_expected_calibration_error_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.05, 0.15, 0.12, 0.95, 0.85])
    table = calibration_table(labels, scores, bins=10)
    assert table["count"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 1, 1]
    # bins: [0,.1): score .05 vs 0; [.1,.2): mean .135 vs 1/2; [.8,.9): .85 vs 1; [.9,1]: .95 vs 1
    expected = (1 * 0.05 + 2 * abs(0.135 - 0.5) + 1 * 0.15 + 1 * 0.05) / 5
    assert expected_calibration_error(table) == pytest.approx(expected)
    assert calibration_table(np.array([1]), np.array([1.0]), 10)["count"].iloc[-1] == 1  # 1.0 falls in the last bin
