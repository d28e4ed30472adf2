"""Statistics for comparing experiments on the same test cases, thin over scipy.

- ``two_proportion_ztest``: the seed paper's test (pooled two-proportion z-test on accuracies).
  It treats the two accuracies as independent samples, which they are not (same test cases), so
  the report gives it for comparison with the paper and leads with the paired tests below.
- ``mcnemar_exact``: the exact McNemar test on the paired per-case predictions (a binomial test on
  the discordant pairs, ``scipy.stats.binomtest``).
- ``wilson_interval``: a proportion's 95% interval (``BinomTestResult.proportion_ci``).
- ``stratified_bootstrap_indices``, ``bootstrap_interval``: seeded resampling of test cases within
  each class (so every resample keeps the test set's class counts) and percentile intervals.
- ``auroc_rows``: AUROC of many resamples at once (Mann-Whitney ranks).
- ``holm``: Holm's step-down adjustment of a family of p-values.
"""

from __future__ import annotations

import math

import numpy as np

from csxa_data.errors import CsxaError

ALTERNATIVES = ("two-sided", "greater", "less")


def two_proportion_ztest(k1: int, n1: int, k2: int, n2: int, alternative: str = "two-sided") -> tuple[float, float]:
    """Pooled two-proportion z-test of k1/n1 against k2/n2: ``(z, p)`` with z = (p1 - p2) / SE
    under the pooled proportion; ``alternative`` in scipy's words: ``greater`` tests p1 > p2."""
    from scipy.stats import norm

    if alternative not in ALTERNATIVES:
        raise CsxaError(f"alternative must be one of {list(ALTERNATIVES)}, not {alternative!r}")
    for k, n in ((k1, n1), (k2, n2)):
        if not (0 <= k <= n and n > 0):
            raise CsxaError(f"two_proportion_ztest needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    diff = k1 / n1 - k2 / n2
    if se == 0:  # both proportions 0 or both 1: no evidence either way
        return 0.0, 1.0
    z = diff / se
    p = {"two-sided": 2 * norm.sf(abs(z)), "greater": norm.sf(z), "less": norm.cdf(z)}[alternative]
    return float(z), float(min(p, 1.0))


def mcnemar_exact(reference_correct: np.ndarray, other_correct: np.ndarray) -> dict:
    """Exact McNemar test on paired correctness: b = cases only the reference gets right, c = cases
    only the other gets right; p = two-sided binomial test of c in b + c at 1/2 (1.0 when b + c = 0)."""
    from scipy.stats import binomtest

    ref, other = np.asarray(reference_correct, bool), np.asarray(other_correct, bool)
    if ref.shape != other.shape:
        raise CsxaError(f"mcnemar needs paired predictions: {len(ref)} against {len(other)} cases")
    b, c = int((ref & ~other).sum()), int((~ref & other).sum())
    p = 1.0 if b + c == 0 else float(binomtest(c, b + c, 0.5, alternative="two-sided").pvalue)
    return {"only_reference_correct": b, "only_other_correct": c, "p": p}


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of the proportion k/n (None, None when n is 0)."""
    from scipy.stats import binomtest

    if n == 0:
        return None, None
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def stratified_bootstrap_indices(labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x n row indices: each row draws, with replacement, as many cases of each class
    as the test set holds (seeded, so the same seed gives the same resamples for every experiment,
    which makes the differences paired)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        parts.append(members[rng.integers(0, len(members), size=(resamples, len(members)))])
    return np.concatenate(parts, axis=1) if parts else np.zeros((resamples, 0), dtype=np.int64)


def bootstrap_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap replicates (NaN replicates, e.g. an undefined AUROC, left out)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def auroc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``labels`` / ``scores`` (R x n), by the Mann-Whitney rank sum (ties
    count one half); NaN for a row with one class."""
    from scipy.stats import rankdata

    labels, scores = np.atleast_2d(labels).astype(bool), np.atleast_2d(scores)
    ranks = rankdata(scores, axis=1)
    n_pos = labels.sum(1)
    n_neg = labels.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * labels).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


# --- across cross-validation folds -------------------------------------------------------------


def _fold_differences(differences) -> np.ndarray:
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or len(d) < 2:
        raise CsxaError(f"a t-test across folds needs at least 2 per-fold differences, got {d.size}")
    if not np.isfinite(d).all():
        raise CsxaError("a per-fold difference is NaN or infinite")
    return d


def _t_pvalue(t: float, df: int, alternative: str) -> float:
    from scipy.stats import t as student

    if alternative not in ALTERNATIVES:
        raise CsxaError(f"alternative must be one of {list(ALTERNATIVES)}, not {alternative!r}")
    if alternative == "greater":
        return float(student.sf(t, df))
    if alternative == "less":
        return float(student.cdf(t, df))
    return float(2 * student.sf(abs(t), df))


def paired_ttest_folds(differences, alternative: str = "two-sided") -> tuple[float, float]:
    """The paper's paired t-test across folds, uncorrected: ``t = mean(d) / sqrt(var(d) / J)``
    over the J per-fold differences ``d`` of a metric between two experiments (ddof 1), J - 1
    degrees of freedom; returns ``(t, p)``. The folds share training cases, so the differences
    are correlated and this test is too liberal (Nadeau and Bengio 2003): shown beside
    :func:`corrected_resampled_ttest` so that readers see the difference."""
    d = _fold_differences(differences)
    var = d.var(ddof=1)
    if var == 0:
        return (math.copysign(math.inf, d.mean()) if d.mean() else math.nan), (0.0 if d.mean() else 1.0)
    t = float(d.mean() / math.sqrt(var / len(d)))
    return t, _t_pvalue(t, len(d) - 1, alternative)


def corrected_resampled_ttest(
    differences, n_train: int, n_test: int, alternative: str = "two-sided"
) -> tuple[float, float]:
    """Nadeau and Bengio's corrected resampled t-test (Machine Learning 52, 2003): the variance
    of the J per-fold differences is inflated for the overlap between training sets,
    ``t = mean(d) / sqrt((1 / J + n_test / n_train) var(d))`` (ddof 1), J - 1 degrees of freedom;
    ``n_train`` and ``n_test`` are the cases a fold trains and tests on (``n_test / n_train =
    1 / (k - 1)`` for k-fold). Returns ``(t, p)``."""
    d = _fold_differences(differences)
    if not (n_train >= 1 and n_test >= 1):
        raise CsxaError(f"n_train and n_test must be at least 1, not {n_train} and {n_test}")
    var = d.var(ddof=1)
    if var == 0:
        return (math.copysign(math.inf, d.mean()) if d.mean() else math.nan), (0.0 if d.mean() else 1.0)
    t = float(d.mean() / math.sqrt((1 / len(d) + n_test / n_train) * var))
    return t, _t_pvalue(t, len(d) - 1, alternative)
