"""Candidate-vs-baseline win rates from pairwise judgments, raw and length-controlled.

A judge that likes longer answers makes a verbose candidate look better than it is. The
length-controlled win rate removes that: fit a logistic model of the judged preference

    P(candidate preferred) = sigmoid(theta + phi * tanh(d / sd(d)))

where d is the candidate's length minus the baseline's on the same prompt (the
standardized, tanh-squashed length term of AlpacaEval 2's length-controlled win rate,
Dubois et al. 2024, arXiv:2404.04475), and report sigmoid(theta): the win rate predicted at
zero length difference. Ties count half. A small L2 penalty keeps the fit finite when the
judgments are perfectly separated by length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from prefline.stats import Interval, bootstrap_mean

WARN_POINTS = 0.10


@dataclass
class WinRate:
    n: int
    raw: Interval
    length_controlled: Interval
    length_coefficient: float
    warning: str | None

    def as_dict(self) -> dict:
        def iv(i: Interval) -> dict:
            return {"estimate": i.estimate, "ci": [i.low, i.high]}

        return {"n": self.n, "raw": iv(self.raw), "length_controlled": iv(self.length_controlled),
                "length_coefficient": self.length_coefficient, "warning": self.warning}


def _fit(wins: np.ndarray, x: np.ndarray, l2: float) -> tuple[float, float]:
    def loss(params):
        theta, phi = params
        z = theta + phi * x
        nll = -(wins * log_expit(z) + (1 - wins) * log_expit(-z)).sum()
        p = expit(z)
        grad = np.array([(p - wins).sum(), ((p - wins) * x).sum()]) + l2 * params
        return nll + 0.5 * l2 * (params @ params), grad

    result = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def _length_term(length_diff: np.ndarray) -> np.ndarray:
    scale = length_diff.std()
    return np.tanh(length_diff / scale) if scale > 0 else np.zeros_like(length_diff)


def length_controlled_winrate(wins, length_diff, samples: int = 1000, confidence: float = 0.9, seed: int = 0, l2: float = 1e-2) -> WinRate:
    """Raw and length-controlled win rate of the candidate, each with a bootstrap interval over prompts.

    ``wins``: 1 (candidate preferred), 0 (baseline preferred) or 0.5 (tie) per prompt;
    ``length_diff``: candidate length minus baseline length per prompt (tokens or words).
    """
    w = np.asarray(wins, dtype=float)
    d = np.asarray(length_diff, dtype=float)
    if w.shape != d.shape or w.size < 2:
        raise ValueError("length_controlled_winrate needs two or more prompts with one judgment and one length difference each")
    if np.any((w < 0) | (w > 1)):
        raise ValueError("wins must lie in [0, 1]")
    raw = bootstrap_mean(w, samples=samples, confidence=confidence, seed=seed)
    theta, phi = _fit(w, _length_term(d), l2)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(samples):
        idx = rng.integers(0, w.size, size=w.size)
        boot.append(expit(_fit(w[idx], _length_term(d[idx]), l2)[0]))
    alpha = (1 - confidence) / 2
    lc = Interval(float(expit(theta)), float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)))
    warning = None
    if abs(lc.estimate - raw.estimate) > WARN_POINTS:
        warning = (f"length-controlled win rate {lc.estimate:.1%} differs from the raw {raw.estimate:.1%} by more than "
                   f"{WARN_POINTS:.0%}: the judge's preference follows response length")
    return WinRate(n=int(w.size), raw=raw, length_controlled=lc, length_coefficient=phi, warning=warning)


def combine_swapped(first: str, second: str) -> tuple[float, bool]:
    """Merge one prompt's two judgments made in both orders into a candidate score and a flip flag.

    ``first``: the verdict with the candidate shown as A; ``second``: with the candidate as B.
    Each verdict is "A", "B" or "tie". A verdict that follows the position, not the response
    (A both times, or B both times), is a flip and counts as a tie.
    """
    first_score = {"A": 1.0, "B": 0.0, "tie": 0.5}[first]
    second_score = {"A": 0.0, "B": 1.0, "tie": 0.5}[second]
    flipped = first in ("A", "B") and first == second
    if flipped:
        return 0.5, True
    return (first_score + second_score) / 2, False
