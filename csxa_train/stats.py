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
