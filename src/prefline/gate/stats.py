"""Statistics for comparing runs: pure functions of arrays, seeded, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


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
