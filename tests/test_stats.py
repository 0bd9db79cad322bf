"""prefline.stats, checked against numbers worked out by hand (in the docstrings) and against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from prefline.stats import (adjust_pvalues, bootstrap_mean, cell_bootstrap, exact_interval, items_needed, margin_test, mcnemar_exact,
                            paired_bootstrap_delta, paired_share_difference, wilcoxon_signed_rank, wilson, wilson_interval)


def test_bootstrap_interval_matches_the_normal_approximation_for_large_n():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=2000)
    ci = bootstrap_mean(x, samples=4000, confidence=0.9, seed=0)
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert ci.estimate == pytest.approx(x.mean())
    # a 90% normal interval is 1.645 standard errors either side
    assert ci.high - ci.low == pytest.approx(2 * 1.645 * se, rel=0.1)
    assert bootstrap_mean([1, 5, 2, 8], seed=3) == bootstrap_mean([1, 5, 2, 8], seed=3)
    with pytest.raises(ValueError):
        bootstrap_mean([])


def test_paired_delta_cancels_item_difficulty():
    ci = paired_bootstrap_delta([10.0, 100.0, 1000.0], [11.0, 101.0, 1001.0])  # every item exactly one longer
    assert (ci.estimate, ci.low, ci.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="differ in size"):
        paired_bootstrap_delta([1, 2], [1])


def test_wilson_is_honest_at_the_extremes():
    """8 of 8 at 90%: z = 1.6449, z^2 = 2.7055; centre = (1 + z^2/16) / (1 + z^2/8) = 0.8736,
    half = z * sqrt(z^2 / 256) / (1 + z^2/8) = 0.1264, so [0.7473, 1.0], not [1, 1]."""
    assert wilson(8, 8) == [pytest.approx(0.7473, abs=1e-4), 1.0]
    assert wilson(5, 10) == [pytest.approx(0.2693, abs=1e-4), pytest.approx(0.7307, abs=1e-4)]
    assert wilson(0, 0) is None
    k, n = np.array([0, 3, 17, 40]), np.array([10, 7, 40, 40])
    low, high = wilson_interval(k, n, 0.95)
    for i in range(4):
        ci = sp.binomtest(int(k[i]), int(n[i])).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low[i], high[i]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_exact_interval_matches_scipy_and_the_closed_form():
    """8 of 8 at 90%: the lower end solves p^8 = 0.05, p = 0.05 ** (1/8) = 0.6877."""
    low, high = exact_interval([8, 3, 0], [8, 10, 5], 0.9)
    assert low[0] == pytest.approx(0.05 ** (1 / 8)) and high[0] == 1.0
    ci = sp.binomtest(3, 10).proportion_ci(confidence_level=0.9, method="exact")
    assert (low[1], high[1]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert low[2] == 0.0 and high[2] == pytest.approx(1 - 0.05 ** (1 / 5))
    assert np.isnan(exact_interval([0], [0])[0][0])


def test_mcnemar_exact_by_hand_and_against_scipy():
    """1 item worse, 6 better: P(Bin(7, 1/2) <= 1) = (1 + 7) / 128 = 0.0625, two-sided 0.125."""
    p = mcnemar_exact([1, 0, 3, 10], [6, 0, 3, 2])
    assert p[0] == pytest.approx(0.125)
    assert p[1] == 1.0  # nothing changed
    assert p[2] == 1.0  # balanced
    assert p[3] == pytest.approx(sp.binomtest(2, 12, 0.5).pvalue)


def test_wilcoxon_signed_rank():
    """Five positive differences, no ties: the exact null puts 1/32 on each extreme, p = 2/32."""
    assert wilcoxon_signed_rank([1, 2, 3, 4, 5]) == pytest.approx(0.0625)
    assert wilcoxon_signed_rank([5, -1, 2, 4, 3]) == pytest.approx(0.125)  # W- = 1: {} or {1} of 32 sign patterns, each side
    assert wilcoxon_signed_rank([0, 0, 0]) == 1.0
    d = np.random.default_rng(1).normal(0.3, 1, size=80)
    assert wilcoxon_signed_rank(np.append(d, [0.0, np.nan])) == pytest.approx(sp.wilcoxon(d).pvalue)


def test_wilcoxon_above_50_differences_is_the_normal_approximation_without_continuity_correction():
    """+-1..60, negative for 1, 4, ..., 58 (20 of them): W- = 20 * 59 / 2 = 590, W+ = 1830 - 590 = 1240.
    Mean 60 * 61 / 4 = 915, variance 60 * 61 * 121 / 24 = 18452.5; z = 325 / 135.84 = 2.3925, p = 0.01673
    (with a continuity correction it would be 0.01690)."""
    d = np.arange(1, 61) * np.where(np.arange(60) % 3, 1.0, -1.0)
    assert wilcoxon_signed_rank(d) == pytest.approx(2 * sp.norm.sf(325 / np.sqrt(18452.5)))
    assert wilcoxon_signed_rank(d) == pytest.approx(0.01673, abs=1e-5)


def test_wilcoxon_with_ties_is_the_exact_sign_flip_p_value():
    """Ties among at most 13 differences: every sign pattern is enumerated.

    By hand, [1, 1, 2] (ranks 1.5, 1.5, 3, all positive: T+ = 6): of the 8 sign patterns only
    all-positive reaches 6, so the upper tail is 1/8 and p = 2/8. Against scipy's default (which
    runs the same permutation test, re-ranking each pattern) on tied samples of several sizes.
    """
    assert wilcoxon_signed_rank([1, 1, 2]) == pytest.approx(0.25)
    assert wilcoxon_signed_rank([1, -1]) == pytest.approx(1.0)
    rng = np.random.default_rng(7)
    for n in (4, 9, 13, 14, 30):
        d = rng.integers(-3, 4, size=n).astype(float)
        d = d[d != 0]
        assert wilcoxon_signed_rank(d) == pytest.approx(sp.wilcoxon(d).pvalue, abs=1e-12)


def test_margin_test_by_hand_and_against_scipy():
    """[1, 2, 3, 4] against 1: mean 2.5, sd 1.2910, se 0.6455, t = 1.5 / 0.6455 = 2.3238 on 3 df."""
    mean, se, p = margin_test([1, 2, 3, 4], 1.0)
    assert (mean, se) == (2.5, pytest.approx(0.645497, abs=1e-6))
    assert p == pytest.approx(sp.t.sf(2.32379, 3), abs=1e-5)
    assert p == pytest.approx(sp.ttest_1samp([1, 2, 3, 4], 1.0, alternative="greater").pvalue)
    assert margin_test([2, 2, 2], 1.0)[2] == 0.0  # every item rose by 2 > 1: nothing random about it
    assert margin_test([0, 0, 0], 1.0)[2] == 1.0


def test_agresti_min_interval_of_a_paired_difference():
    """40 unchanged items: cells + 1/2 over 42; each discordant share 0.5/42 = 0.0119,
    variance (0.0238 - 0) / 42, se = 0.0238. 10 worse, 2 better of 40: (10.5 - 2.5) / 42 = 0.1905."""
    diff, se = paired_share_difference(0, 0, 40)
    assert diff == 0 and se == pytest.approx(0.0238, abs=1e-4)
    diff, se = paired_share_difference(10, 2, 40)
    assert diff == pytest.approx(8 / 42)
    assert se == pytest.approx(np.sqrt((13 / 42 - (8 / 42) ** 2) / 42))


def test_benjamini_hochberg_and_holm_by_hand():
    """p = [0.01, 0.04, 0.03, 0.005]; sorted 0.005, 0.01, 0.03, 0.04.
    BH: times 4/rank = 0.02, 0.02, 0.04, 0.04, then running minimum from the top: unchanged.
    Holm: times (4, 3, 2, 1) = 0.02, 0.03, 0.06, 0.04, then running maximum: 0.02, 0.03, 0.06, 0.06."""
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_gap = adjust_pvalues([0.01, np.nan, 0.04], "holm")  # NaN is not a test: the family has two
    assert with_gap[0] == pytest.approx(0.02) and np.isnan(with_gap[1]) and with_gap[2] == pytest.approx(0.04)
    assert adjust_pvalues([0.9, 0.8], "bh") == pytest.approx([0.9, 0.9])
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues(p, "bonferonni")


def test_items_needed_by_hand():
    """sd 1, distance 0.5, alpha 0.05, power 0.8: (1.6449 + 0.8416)^2 * 4 = 24.73, so 25 items."""
    assert items_needed(1.0, 0.5) == 25
    assert items_needed(1.0, -0.5) == 25
    assert items_needed(0.0, 0.5) is None and items_needed(1.0, 0.0) is None


def test_cell_bootstrap_means_are_exact_per_cell():
    """Two cells over four items: cell 0 has items 0-3, cell 1 items 2-3 only."""
    base = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    cand = base + np.array([[1.0, 1.0], [1.0, 1.0], [3.0, 3.0], [3.0, 3.0]])
    present = np.array([[True, False], [True, False], [True, True], [True, True]])
    cells = cell_bootstrap(base, cand, present, samples=500, seed=0)
    assert list(cells.n) == [4, 2]
    assert cells.baseline == pytest.approx([2.5, 3.5]) and cells.candidate == pytest.approx([4.5, 6.5])
    assert cells.diff == pytest.approx([2.0, 3.0])
    assert cells.ratio == pytest.approx([4.5 / 2.5, 6.5 / 3.5])
    # cell 1: every item rose by exactly 3, so every resample says 3
    assert (cells.diff_low[1], cells.diff_high[1]) == (pytest.approx(3.0), pytest.approx(3.0))
    assert 1.0 <= cells.diff_low[0] < 2.0 < cells.diff_high[0] <= 3.0
    again = cell_bootstrap(base, cand, present, samples=500, seed=0)
    assert np.array_equal(again.diff_low, cells.diff_low)


def test_cell_bootstrap_width_matches_the_paired_standard_error():
    """For 3000 paired items the 90% interval of the mean difference is about 2 * 1.645 * sd(d) / sqrt(n),
    in a cell of all items and in a cell of a third of them."""
    rng = np.random.default_rng(2)
    base = rng.normal(5, 2, size=(3000, 1))
    cand = base + rng.normal(0.2, 1, size=(3000, 1))
    values_b, values_c = np.hstack([base, base]), np.hstack([cand, cand])
    present = np.ones((3000, 2), dtype=bool)
    present[1000:, 1] = False
    cells = cell_bootstrap(values_b, values_c, present, samples=2000, seed=0)
    for cell, rows in ((0, slice(None)), (1, slice(0, 1000))):
        d = (cand - base)[rows, 0]
        assert cells.diff_high[cell] - cells.diff_low[cell] == pytest.approx(2 * 1.645 * d.std(ddof=1) / np.sqrt(d.size), rel=0.1)
        assert cells.diff[cell] == pytest.approx(d.mean())


def test_poisson_weights_have_the_poisson_distribution():
    """Poisson(1): mean 1, variance 1, P(0) = P(1) = 1/e = 0.3679, P(2) = 1/(2e) = 0.1839."""
    from prefline.stats import poisson_weights

    w = poisson_weights(np.random.default_rng(0), 400, 1000)
    assert w.dtype == np.float32 and w.shape == (400, 1000)
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.var() == pytest.approx(1.0, abs=0.02)
    for k, p in ((0, 0.3679), (1, 0.3679), (2, 0.1839)):
        assert (w == k).mean() == pytest.approx(p, abs=0.005)
