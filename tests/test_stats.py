"""Bootstrap intervals, checked against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from prefline.gate.stats import bootstrap_mean, paired_bootstrap_delta


def test_mean_is_exact_and_interval_contains_it():
    ci = bootstrap_mean([1.0, 2.0, 3.0, 4.0], samples=4000, confidence=0.9, seed=1)
    assert ci.estimate == 2.5
    assert ci.low < 2.5 < ci.high
    # Resampled means of 4 values lie in [1, 4]; a 90% interval is well inside.
    assert 1.0 <= ci.low and ci.high <= 4.0


def test_constant_values_give_a_point_interval():
    ci = bootstrap_mean([0.0, 0.0, 0.0])
    assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, 0.0)
    single = bootstrap_mean([7.0])
    assert (single.low, single.high) == (7.0, 7.0)


def test_interval_matches_the_normal_approximation_for_large_n():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=2000)
    ci = bootstrap_mean(x, samples=4000, confidence=0.9, seed=0)
    se = x.std(ddof=1) / np.sqrt(x.size)
    # 90% normal interval half-width is 1.645 standard errors.
    assert ci.high - ci.low == pytest.approx(2 * 1.645 * se, rel=0.1)


def test_paired_delta_cancels_item_difficulty():
    base = [10.0, 100.0, 1000.0]
    cand = [11.0, 101.0, 1001.0]  # every item exactly one longer
    ci = paired_bootstrap_delta(base, cand)
    assert (ci.estimate, ci.low, ci.high) == (1.0, 1.0, 1.0)


def test_seeded_and_shape_checked():
    assert bootstrap_mean([1, 5, 2, 8], seed=3) == bootstrap_mean([1, 5, 2, 8], seed=3)
    with pytest.raises(ValueError, match="differ in size"):
        paired_bootstrap_delta([1, 2], [1])
    with pytest.raises(ValueError):
        bootstrap_mean([])
