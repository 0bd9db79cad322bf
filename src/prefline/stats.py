"""Statistics shared by data, evals and gate: pure functions of arrays, seeded, no I/O.

- Intervals: percentile bootstrap of a mean, Wilson and exact (Clopper-Pearson) intervals of a
  share, and the Agresti-Min interval of a paired difference of shares.
- Paired comparisons over many cells at once (a cell is one metric in one slice): a Poisson
  bootstrap of the mean difference and ratio, vectorized as two matrix products over all cells.
- Tests: exact McNemar for binary paired values, Wilcoxon signed-rank for continuous ones
  (scipy), and one-sided tests against a margin (is the change worse than allowed?).
- Multiple comparisons: Benjamini-Hochberg and Holm adjusted p-values.
- Sample size: how many items a test against a margin would need, from the observed spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sp


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


# --- intervals of one sample -------------------------------------------------------------


def bootstrap_mean(values, samples: int = 2000, confidence: float = 0.9, seed: int = 0) -> Interval:
    """Mean with a percentile bootstrap interval (a degenerate interval for n < 2)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, mean, mean)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return Interval(mean, float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha)))


def paired_bootstrap_delta(baseline, candidate, samples: int = 2000, confidence: float = 0.9, seed: int = 0) -> Interval:
    """Mean of candidate - baseline over paired items, with a percentile bootstrap interval.

    Items are resampled as pairs, so item difficulty (shared by both runs) cancels out.
    """
    b, c = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if b.shape != c.shape:
        raise ValueError(f"paired samples differ in size: {b.shape} vs {c.shape}")
    return bootstrap_mean(c - b, samples=samples, confidence=confidence, seed=seed)


def wilson_interval(successes, n, confidence: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a share, elementwise; NaN where n is 0.

    Unlike the normal (Wald) interval it stays honest at the extremes: 8 of 8 gives
    [0.747, 1.000] at 90%, not [1, 1].
    """
    k, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    z = _sp.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def wilson(successes: int, n: int, confidence: float = 0.9) -> list[float] | None:
    """Wilson interval of one share rounded to 4 places, for reports; None when n is 0."""
    if n == 0:
        return None
    low, high = wilson_interval(successes, n, confidence)
    return [round(float(low), 4), round(float(high), 4)]


def exact_interval(successes, n, confidence: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson (exact binomial) interval of a share, elementwise; NaN where n is 0."""
    k, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    alpha = 1 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, _sp.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, _sp.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    bad = n <= 0
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


# --- paired comparisons over many cells --------------------------------------------------


@dataclass(frozen=True)
class CellBootstrap:
    """Per cell: the paired means, their difference with a percentile interval, and the ratio of means."""

    baseline: np.ndarray
    candidate: np.ndarray
    diff: np.ndarray
    diff_low: np.ndarray
    diff_high: np.ndarray
    ratio: np.ndarray
    n: np.ndarray


# P(Poisson(1) <= k) for k = 0..12; beyond 12 has probability below 1e-10
_POISSON1_CDF = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(13)]).astype(np.float32)


def poisson_weights(rng: np.random.Generator, rows: int, items: int) -> np.ndarray:
    """Poisson(1) resampling weights as float32, by inverting the CDF of uniform draws (faster than
    ``rng.poisson`` followed by a cast, and the same distribution)."""
    u = rng.random((rows, items), dtype=np.float32)
    w = np.zeros((rows, items), dtype=np.float32)
    for threshold in _POISSON1_CDF:
        w += u > threshold
    return w


def _quantiles(samples: np.ndarray, qs: list[float]) -> np.ndarray:
    """Column quantiles ignoring NaN, with the slow NaN-aware path only for the columns that have one."""
    out = np.full((len(qs), samples.shape[1]), np.nan)
    gaps = np.isnan(samples).any(axis=0)
    if (~gaps).any():
        out[:, ~gaps] = np.quantile(samples[:, ~gaps], qs, axis=0)
    for col in np.flatnonzero(gaps):
        seen = samples[:, col][~np.isnan(samples[:, col])]
        if seen.size:
            out[:, col] = np.quantile(seen, qs)
    return out


def cell_bootstrap(baseline: np.ndarray, candidate: np.ndarray, present: np.ndarray, samples: int = 2000,
                   confidence: float = 0.9, seed: int = 0, chunk: int = 250) -> CellBootstrap:
    """Paired bootstrap of mean differences in many cells at once.

    ``baseline``, ``candidate``: (items x cells) values; ``present``: (items x cells) booleans,
    True where the item belongs to the cell and has a value in both runs. Each resample gives
    every item a Poisson(1) weight (the Poisson bootstrap: for n items it matches the multinomial
    resample up to O(1/n), and weights drawn once serve every cell, so a slice of the items is
    resampled exactly as the whole). A cell's resampled mean difference is then a weighted mean,
    and all cells come from one matrix product per chunk of resamples: weights x [differences |
    membership]. Resamples in which a cell gets no weight at all are left out of its quantiles.
    """
    present = np.asarray(present, dtype=bool)
    b = np.where(present, np.asarray(baseline, dtype=float), 0.0)
    c = np.where(present, np.asarray(candidate, dtype=float), 0.0)
    n = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        base_mean, cand_mean = b.sum(axis=0) / n, c.sum(axis=0) / n
    # cells that share their items (e.g. every metric scored on every item, in one slice) share a weight sum
    patterns, which = np.unique(present, axis=1, return_inverse=True)
    which = which.reshape(-1)
    stacked = np.hstack([(c - b).astype(np.float32), patterns.astype(np.float32)])
    cells = present.shape[1]
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, samples, chunk):
        sums = poisson_weights(rng, min(chunk, samples - start), present.shape[0]) @ stacked
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs.append(sums[:, :cells] / sums[:, cells:][:, which])
    alpha = (1.0 - confidence) / 2.0
    d = np.concatenate(diffs).astype(float)
    d[~np.isfinite(d)] = np.nan
    d_low, d_high = _quantiles(d, [alpha, 1 - alpha])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = cand_mean / base_mean
    return CellBootstrap(base_mean, cand_mean, cand_mean - base_mean, d_low, d_high, ratio, n)


def mcnemar_exact(worse, better) -> np.ndarray:
    """Two-sided exact McNemar p-value from the discordant counts, elementwise.

    ``worse``/``better``: items that went one way / the other between the runs. Under no
    change each discordant item is a fair coin, so p = min(1, 2 * P(Binomial(b + c, 1/2) <= min(b, c))),
    and 1 when nothing changed.
    """
    b, c = np.asarray(worse, dtype=float), np.asarray(better, dtype=float)
    m = b + c
    p = np.minimum(1.0, 2.0 * _sp.binom.cdf(np.minimum(b, c), m, 0.5))
    return np.where(m == 0, 1.0, p)


def wilcoxon_signed_rank(diffs) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; 1 when none differ.

    Zero differences are dropped (Wilcoxon's method). Without ties the null distribution is exact
    up to 50 differences (scipy ``method="exact"``) and the normal approximation above (scipy
    ``method="asymptotic"``: tie-corrected variance, no continuity correction, scipy's default). With
    tied differences and at most 13 of them, the p-value is the exact sign-flip permutation p-value
    (every one of the 2**n sign patterns: the p-value scipy's default gives, computed at once from
    the fixed ranks instead of re-ranking each pattern, which took seconds per call); with ties and
    more than 13, the normal approximation. These are the p-values scipy's "auto" gives, chosen here
    explicitly.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    ranks = _sp.rankdata(np.abs(d))
    tied = np.unique(ranks).size < ranks.size
    if not tied or d.size > _EXACT_TIED_MAX:
        return float(_sp.wilcoxon(d, zero_method="wilcox", method="exact" if not tied and d.size <= 50 else "asymptotic").pvalue)
    return _signed_rank_sign_flip_p(ranks, float(ranks[d > 0].sum()))


_EXACT_TIED_MAX = 13  # 2**13 sign patterns: exhaustive enumeration stays under a millisecond


def _signed_rank_sign_flip_p(ranks: np.ndarray, observed: float) -> float:
    """Two-sided p of the signed-rank statistic ``observed`` (the sum of the positive differences'
    ranks) over all 2**n sign patterns of fixed ``ranks``: twice the smaller tail, at most 1."""
    n = ranks.size
    patterns = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
    null = patterns @ ranks
    tolerance = 1e-9 * max(1.0, abs(observed))
    less = np.count_nonzero(null <= observed + tolerance) / null.size
    greater = np.count_nonzero(null >= observed - tolerance) / null.size
    return float(min(1.0, 2 * min(less, greater)))


def margin_test(values, margin: float = 0.0) -> tuple[float, float, float]:
    """One-sided t-test that the mean of ``values`` exceeds ``margin``: (mean, standard error, p).

    ``values`` are per-item changes in the worse direction (candidate - baseline for a metric
    where lower is better, or ``candidate - ratio * baseline`` for a ratio bound). With zero
    spread the data decide alone: p is 0 when the mean exceeds the margin and 1 otherwise.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan), math.nan, math.nan
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    if se == 0:
        return mean, 0.0, 0.0 if mean > margin else 1.0
    return mean, se, float(_sp.t.sf((mean - margin) / se, df=x.size - 1))


def paired_share_difference(worse: int, better: int, n: int) -> tuple[float, float]:
    """Agresti-Min estimate and standard error of a paired difference of shares.

    ``worse``: items where the candidate has the bad outcome and the baseline not; ``better``: the
    reverse; ``n``: all paired items. Adding 1/2 to each cell of the 2x2 table (Agresti and Min,
    2005) keeps the Wald interval honest when few or no items changed: 40 unchanged items give a
    standard error of 0.024, not 0.
    """
    total = n + 2.0
    p_worse, p_better = (worse + 0.5) / total, (better + 0.5) / total
    diff = p_worse - p_better
    return diff, math.sqrt(max((p_worse + p_better - diff * diff) / total, 0.0))


# --- multiple comparisons ----------------------------------------------------------------


def adjust_pvalues(p, method: str = "bh") -> np.ndarray:
    """Adjusted p-values for a family of tests: ``bh`` (Benjamini-Hochberg, false discovery
    rate) or ``holm`` (Holm's step-down, family-wise error). NaN entries are not tests: they
    stay NaN and do not count in the family size."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "bh":
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    elif method == "holm":
        adj = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        raise ValueError(f"unknown correction {method!r}: use bh or holm")
    result = np.empty(m)
    result[order] = np.minimum(adj, 1.0)
    out[ok] = result
    return out


# --- sample size -------------------------------------------------------------------------


def items_needed(sd: float, distance: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Items a one-sided test at level ``alpha`` needs to tell an effect ``distance`` away from
    the margin with probability ``power``, for per-item spread ``sd``: ((z_a + z_b) * sd / distance)^2.
    None when the estimate sits on the margin (no number of items decides) or nothing varies."""
    if not (sd > 0) or not (abs(distance) > 0) or math.isnan(distance):
        return None
    z = _sp.norm.ppf(1 - alpha) + _sp.norm.ppf(power)
    return int(math.ceil((z * sd / abs(distance)) ** 2))


__all__ = [
    "CellBootstrap", "Interval", "adjust_pvalues", "bootstrap_mean", "cell_bootstrap", "exact_interval", "items_needed", "poisson_weights",
    "margin_test", "mcnemar_exact", "paired_bootstrap_delta", "paired_share_difference", "wilcoxon_signed_rank",
    "wilson", "wilson_interval",
]
