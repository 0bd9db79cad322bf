"""Candidate-vs-baseline win rates from pairwise judgments, raw and length-controlled.

A judge that likes longer answers makes a verbose candidate look better than it is. The
length-controlled win rate removes that: fit a logistic model of the judged preference

    P(candidate preferred) = sigmoid(theta + phi * tanh(d / sd(d)))

where d is the candidate's length minus the baseline's on the same prompt (the
standardized, tanh-squashed length term of AlpacaEval 2's length-controlled win rate,
Dubois et al. 2024, arXiv:2404.04475), and report sigmoid(theta): the win rate predicted at
zero length difference. Ties count half. A small L2 penalty keeps the fit finite when the
judgments are perfectly separated by length.

One candidate alone: its length coefficient is fitted from its own judgments, so where its
answers are nearly all shorter (or longer) than the baseline's, "zero length difference" lies
outside what the fit saw and the prediction there is a guess. The win rate is therefore
predicted at the length term nearest to zero within the central 80% of the length differences
it saw (10th to 90th percentile): at zero when zero is inside, else at the nearer edge.

Several candidates against the same baseline on the same prompts
(:func:`joint_length_controlled_winrates`) are fitted together, as AlpacaEval 2's GLM does:

    logit P(candidate m preferred on prompt i) = theta_m + gamma_m * delta_i + (phi + eps_m) * tanh(d_mi / sd_m)

with a per-prompt difficulty delta_i shared by all candidates and a per-candidate slope gamma_m
on it (AlpacaEval's instruction-difficulty term), a length coefficient phi shared by all (the
judge's taste for length) plus a per-candidate deviation eps_m, and L2 penalties on delta
(difficulty is a random effect), on gamma_m - 1, and on eps (a candidate's own length effect is
shrunk towards the shared one, so a candidate whose lengths barely vary borrows the others'
estimate). The length-controlled win rate of m is the mean over its prompts of
sigmoid(theta_m + gamma_m * delta_i + slope_m * x0_m): the predicted preference with the length
term at zero, or at the nearest edge of the central range of m's own length terms when zero lies
outside it (as for a single candidate).
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


SEEN_QUANTILES = (0.10, 0.90)


def _nearest_seen_zero(x: np.ndarray) -> float:
    """The length term closest to zero within the central range of the ones seen."""
    low, high = np.quantile(x, SEEN_QUANTILES)
    return float(np.clip(0.0, low, high))


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

    def predict(w_, d_):
        x = _length_term(d_)
        theta, phi = _fit(w_, x, l2)
        return float(expit(theta + phi * _nearest_seen_zero(x))), phi

    estimate, phi = predict(w, d)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(samples):
        idx = rng.integers(0, w.size, size=w.size)
        boot.append(predict(w[idx], d[idx])[0])
    alpha = (1 - confidence) / 2
    lc = Interval(estimate, float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)))
    warning = None
    if abs(lc.estimate - raw.estimate) > WARN_POINTS:
        warning = (f"length-controlled win rate {lc.estimate:.1%} differs from the raw {raw.estimate:.1%} by more than "
                   f"{WARN_POINTS:.0%}: the judge's preference follows response length")
    return WinRate(n=int(w.size), raw=raw, length_controlled=lc, length_coefficient=phi, warning=warning)


@dataclass
class JointWinRates:
    """Raw and length-controlled win rates of several candidates fitted together."""

    names: list[str]
    n: list[int]
    raw: list[Interval]
    length_controlled: list[Interval]
    length_coefficient: float  # phi, shared by all candidates
    candidate_length_coefficients: list[float]  # phi + eps_m
    warnings: list[str | None]

    def as_dict(self) -> dict:
        def iv(i: Interval) -> dict:
            return {"estimate": i.estimate, "ci": [i.low, i.high]}

        return {"length_coefficient": self.length_coefficient,
                "candidates": [{"name": name, "n": n, "raw": iv(raw), "length_controlled": iv(lc), "length_coefficient": phi, "warning": warn}
                               for name, n, raw, lc, phi, warn in zip(self.names, self.n, self.raw, self.length_controlled,
                                                                      self.candidate_length_coefficients, self.warnings)]}


def _joint_fit(w: np.ndarray, x: np.ndarray, seen: np.ndarray, l2_difficulty: float, l2_length: float, l2_slope: float,
               l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """Penalized maximum likelihood of theta (M), gamma (M), delta (N), phi (1), eps (M); unseen cells carry no weight."""
    m, n = w.shape
    mask = seen.astype(float)
    w0 = np.where(seen, w, 0.0)
    x0 = np.where(seen, x, 0.0)

    def unpack(params):
        return params[:m], params[m:2 * m], params[2 * m:2 * m + n], params[2 * m + n], params[2 * m + n + 1:]

    def loss(params):
        theta, gamma, delta, phi, eps = unpack(params)
        slope = phi + eps
        z = theta[:, None] + gamma[:, None] * delta[None, :] + slope[:, None] * x0
        nll = -(mask * (w0 * log_expit(z) + (1 - w0) * log_expit(-z))).sum()
        r = mask * (expit(z) - w0)  # d nll / d z
        grad = np.concatenate([r.sum(axis=1) + l2 * theta, (r * delta[None, :]).sum(axis=1) + l2_slope * (gamma - 1),
                               (r * gamma[:, None]).sum(axis=0) + l2_difficulty * delta,
                               [(r * x0).sum() + l2 * phi], (r * x0).sum(axis=1) + l2_length * eps])
        penalty = 0.5 * (l2 * (theta @ theta + phi * phi) + l2_difficulty * (delta @ delta) + l2_length * (eps @ eps)
                         + l2_slope * ((gamma - 1) @ (gamma - 1)))
        return nll + penalty, grad

    if start is None:
        start = np.concatenate([np.zeros(m), np.ones(m), np.zeros(n + 1 + m)])
    return minimize(loss, start, jac=True, method="L-BFGS-B").x


def _joint_estimates(w, d, seen, penalties, start=None):
    m, n = w.shape
    scale = np.array([d[i][seen[i]].std() for i in range(m)])
    x = np.tanh(d / np.where(scale > 0, scale, 1.0)[:, None])
    params = _joint_fit(w, x, seen, *penalties, start=start)
    theta, gamma, delta, slope = params[:m], params[m:2 * m], params[2 * m:2 * m + n], params[2 * m + n] + params[2 * m + n + 1:]
    nearest = np.array([_nearest_seen_zero(x[i][seen[i]]) for i in range(m)])
    controlled = expit(theta[:, None] + gamma[:, None] * delta[None, :] + (slope * nearest)[:, None])
    lc = np.array([controlled[i][seen[i]].mean() for i in range(m)])
    return lc, params


def joint_length_controlled_winrates(wins, length_diff, names: list[str] | None = None, samples: int = 200,
                                     confidence: float = 0.9, seed: int = 0, l2_difficulty: float = 1.0,
                                     l2_length: float = 10.0, l2_slope: float = 1.0, l2: float = 1e-2) -> JointWinRates:
    """Length-controlled win rates of M candidates judged against one baseline on N shared prompts.

    ``wins``: (M, N) judged preference of candidate m over the baseline on prompt i, in [0, 1],
    NaN where m was not judged on i; ``length_diff``: (M, N) candidate length minus baseline length.
    ``l2_difficulty``: penalty on the per-prompt difficulties (1: a standard-normal prior in logits);
    ``l2_length``: penalty on each candidate's deviation from the shared length coefficient;
    ``l2_slope``: penalty on each candidate's difficulty slope gamma_m away from 1.
    Intervals: percentile bootstrap over prompts (all candidates resampled together).
    """
    w = np.asarray(wins, dtype=float)
    d = np.asarray(length_diff, dtype=float)
    if w.ndim != 2 or w.shape != d.shape:
        raise ValueError("joint_length_controlled_winrates needs wins and length_diff of the same shape (candidates, prompts)")
    seen = ~np.isnan(w) & ~np.isnan(d)
    counts = seen.sum(axis=1)
    if np.any(counts < 2):
        raise ValueError("every candidate needs judgments on two or more prompts")
    if np.any((w[seen] < 0) | (w[seen] > 1)):
        raise ValueError("wins must lie in [0, 1]")
    m = w.shape[0]
    names = names or [f"candidate {i + 1}" for i in range(m)]
    penalties = (l2_difficulty, l2_length, l2_slope, l2)
    lc, params = _joint_estimates(w, d, seen, penalties)
    rng = np.random.default_rng(seed)
    raw_boot, lc_boot = [], []
    for _ in range(samples):
        idx = rng.integers(0, w.shape[1], size=w.shape[1])
        s_ = seen[:, idx]
        if np.any(s_.sum(axis=1) < 2):
            continue
        # start from the full fit, its prompt difficulties resampled with the prompts: far fewer iterations
        start = np.concatenate([params[:2 * m], params[2 * m:2 * m + w.shape[1]][idx], params[2 * m + w.shape[1]:]])
        lc_boot.append(_joint_estimates(w[:, idx], d[:, idx], s_, penalties, start)[0])
        raw_boot.append(np.nansum(np.where(s_, w[:, idx], np.nan), axis=1) / s_.sum(axis=1))
    alpha = (1 - confidence) / 2
    raw_est = np.array([w[i][seen[i]].mean() for i in range(m)])

    def intervals(est, boot):
        boot = np.asarray(boot)
        if len(boot) == 0:
            return [Interval(float(e), float(e), float(e)) for e in est]
        low, high = np.quantile(boot, alpha, axis=0), np.quantile(boot, 1 - alpha, axis=0)
        return [Interval(float(e), float(lo), float(hi)) for e, lo, hi in zip(est, low, high)]

    warnings = [None if abs(c - r) <= WARN_POINTS else
                (f"length-controlled win rate {c:.1%} differs from the raw {r:.1%} by more than {WARN_POINTS:.0%}: "
                 "the judge's preference follows response length") for c, r in zip(lc, raw_est)]
    phi, eps = float(params[2 * m + w.shape[1]]), params[2 * m + w.shape[1] + 1:]
    return JointWinRates(names=list(names), n=[int(c) for c in counts], raw=intervals(raw_est, raw_boot),
                         length_controlled=intervals(lc, lc_boot), length_coefficient=phi,
                         candidate_length_coefficients=[float(phi + e) for e in eps], warnings=warnings)


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
