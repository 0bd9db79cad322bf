"""One bound of a gate rule tested on one slice's paired values: estimate, interval, p-value.

Every bound is turned into a per-item quantity whose mean must stay at or below a limit:

    max_increase m   c - b        <= m          max_value v   c    <= v
    max_decrease m   b - c        <= m          min_value v   -c   <= -v
    max_ratio r      c - r * b    <= 0          (a ratio of means, tested as a difference)
    min_ratio r      r * b - c    <= 0

The test asks whether the data show that mean above the limit (one-sided, H0: within the
bound). For 0/1 metrics a difference uses the Agresti-Min interval of paired shares and a
hard limit the exact binomial test with a Wilson bound; anything else a t-test. ``upper`` is
the one-sided (1 - alpha) bound of that mean: at or inside the limit means the bound is shown
to hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sp

from prefline.stats import items_needed, margin_test, paired_share_difference, wilson_interval

ABSOLUTE = ("max_value", "min_value")


@dataclass(frozen=True)
class BoundTest:
    estimate: float  # in the bound's own terms: a change, a ratio or the candidate's mean
    low: float  # two-sided (1 - 2 alpha) interval of the estimate: its worse end is the one-sided bound
    high: float
    p_value: float  # one-sided: the data show the bound broken
    holds: bool  # the worse end of the interval is inside the bound
    method: str
    items_needed: int | None  # items a test would need to decide, from the observed spread


def _excess(bound: str, limit: float, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, float]:
    """The per-item quantity whose mean the bound caps, and the cap."""
    return {
        "max_increase": (c - b, limit), "max_decrease": (b - c, limit),
        "max_ratio": (c - limit * b, 0.0), "min_ratio": (limit * b - c, 0.0),
        "max_value": (c, limit), "min_value": (-c, -limit),
    }[bound]


def test_bound(bound: str, limit: float, baseline: np.ndarray, candidate: np.ndarray, binary: bool, alpha: float) -> BoundTest:
    """Test one bound on paired values (NaN-free arrays of equal length, at least 2 items)."""
    b, c = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    n = b.size
    x, cap = _excess(bound, limit, b, c)
    z = sp.norm.ppf(1 - alpha)
    sign = -1.0 if bound in ("max_decrease", "min_value", "min_ratio") else 1.0  # estimate moves against x
    if binary and bound in ("max_increase", "max_decrease"):
        worse, better = int((x > 0).sum()), int((x < 0).sum())
        diff, se = paired_share_difference(worse, better, n)
        upper = diff + z * se
        p = float(sp.norm.sf((diff - cap) / se)) if se > 0 else float(diff > cap)
        estimate = float(c.mean() - b.mean())
        low, high = sorted((sign * (diff - z * se), sign * upper))
        return BoundTest(estimate, low, high, p, upper <= cap, "agresti-min", items_needed(se * math.sqrt(n + 2), diff - cap, alpha))
    if binary and bound in ("max_value", "min_value"):
        k = int(c.sum())
        wl, wh = (float(v) for v in wilson_interval(k, n, 1 - 2 * alpha))
        if bound == "max_value":
            p, holds = float(sp.binom.sf(k - 1, n, limit)), wh <= limit
        else:
            p, holds = float(sp.binom.cdf(k, n, limit)), wl >= limit
        share = (k + 0.5) / (n + 1)
        needed = items_needed(math.sqrt(share * (1 - share)), k / n - limit, alpha)
        if (bound == "max_value") == (k / n < limit):  # on the passing side: when would the Wilson bound cross the limit?
            needed = _wilson_items(k / n, limit, bound, alpha)
        return BoundTest(k / n, wl, wh, p, holds, "exact binomial, wilson", needed)
    mean, se, p = margin_test(x, cap)
    q = sp.t.ppf(1 - alpha, df=n - 1)
    upper = mean + q * se
    sd = se * math.sqrt(n)
    if bound in ("max_ratio", "min_ratio"):
        base_mean = float(b.mean())
        estimate, low, high = math.nan, math.nan, math.nan
        if base_mean > 0:  # delta-method interval of the ratio of means, for display; the decision is the test on x
            estimate = float(c.mean()) / base_mean
            se_ratio = float((c - estimate * b).std(ddof=1)) / math.sqrt(n) / base_mean
            low, high = estimate - q * se_ratio, estimate + q * se_ratio
        return BoundTest(estimate, low, high, p, upper <= cap, "t-test", items_needed(sd, mean - cap, alpha))
    estimate = float(c.mean()) if bound in ("max_value", "min_value") else float(c.mean() - b.mean())
    return BoundTest(estimate, estimate - q * se, estimate + q * se, p, upper <= cap, "t-test", items_needed(sd, mean - cap, alpha))


def _wilson_items(share: float, limit: float, bound: str, alpha: float, most: int = 10**7) -> int | None:
    """The fewest items at which the Wilson bound of ``share`` is inside ``limit`` (the share staying as observed),
    by bisection: the bound tightens as items grow. None beyond ``most`` items."""
    def inside(m: int) -> bool:
        low, high = wilson_interval(share * m, m, 1 - 2 * alpha)
        return bool(high <= limit) if bound == "max_value" else bool(low >= limit)

    if not inside(most):
        return None
    lo, hi = 1, most
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if inside(mid) else (mid + 1, hi)
    return lo
