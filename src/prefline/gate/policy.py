"""The policy a decision applies: the user's rules, default margins for unnamed metrics, major-change terms."""

from __future__ import annotations

import numpy as np

from prefline.config import GatePolicy, GateRule, load_policy

DEFAULT_SHARE_MARGIN = 0.10  # a share (values in [0, 1]) may get worse by this much (absolute)
DEFAULT_RATIO_MARGIN = 1.30  # any other metric may get worse by 30%


def default_policy() -> GatePolicy:
    return load_policy("default")


def default_rule(metric: str, direction: str, values: np.ndarray) -> GateRule | None:
    """The documented default margin for a metric no rule names; None for a neutral metric."""
    if direction not in ("higher", "lower"):
        return None
    seen = values[~np.isnan(values)]
    share = seen.size > 0 and bool(np.all((seen >= 0) & (seen <= 1)))
    if share:
        key = "max_increase" if direction == "lower" else "max_decrease"
        return GateRule(metric=metric, **{key: DEFAULT_SHARE_MARGIN})
    if direction == "lower":
        return GateRule(metric=metric, max_ratio=DEFAULT_RATIO_MARGIN)
    return GateRule(metric=metric, min_ratio=round(1 / DEFAULT_RATIO_MARGIN, 4))


def with_major_change(policy: GatePolicy) -> GatePolicy:
    """The policy with its ``major_change:`` terms applied (rules replace same-metric rules, keys add)."""
    terms = policy.major_change
    if terms is None:
        return policy
    replaced = {r.metric for r in terms.rules}
    update = {
        "rules": [r for r in policy.rules if r.metric not in replaced] + list(terms.rules),
        "slice_keys": list(dict.fromkeys([*policy.slice_keys, *terms.slice_keys])),
        "require_axes": list(dict.fromkeys([*policy.require_axes, *terms.require_axes])),
    }
    if terms.min_items is not None:
        update["min_items"] = terms.min_items
    if terms.error_rate is not None:
        update["error_rate"] = terms.error_rate
    return policy.model_copy(update=update)
