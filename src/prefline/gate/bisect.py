"""Bisect: which adapter in an ordered list (a surface's release history, or any list) first regressed.

The first adapter is known good, the last known bad. Both are evaluated on the whole suite (or
their recorded runs are used) and diagnosed; the top regression names the metric and slice to
follow, unless given. Each adapter in between is then evaluated on that slice's items only, in
the order a binary search asks for them, so ``n`` adapters take about ``log2(n)`` evaluations;
generations come through the cache, so an adapter evaluated before generates nothing.

An adapter counts as **bad** when its slice mean has moved from the good value past the midpoint
toward the bad one (in the metric's bad direction), as **good** otherwise. The midpoint rule
needs no margin and splits a step change cleanly; with gradual drift it names the adapter where
more than half of the change had happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.ledger import Ledger


@dataclass
class BisectStep:
    adapter: str
    run: int
    value: float
    verdict: str  # good, bad


@dataclass
class BisectResult:
    metric: str
    slice: str
    items: int
    adapters: list[str]
    good: BisectStep
    bad: BisectStep
    first_bad: str
    last_good: str
    steps: list[BisectStep] = field(default_factory=list)  # the adapters in between that were evaluated, in order
    threshold: float = 0.0

    @property
    def evaluations(self) -> int:
        return len(self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "evaluations": self.evaluations}


def bisect(ledger: Ledger, adapters: list[str], suite_ref: str, *, decoding: DecodingConfig | None = None, model: str | None = None,
           metric: str | None = None, slice_name: str | None = None, good_run: int | None = None, bad_run: int | None = None,
           alpha: float = 0.05, progress: Callable[[str], None] | None = None) -> BisectResult:
    """Find the first bad adapter in ``adapters`` (names; ``base`` for the base model), oldest first."""
    from prefline.evals.run import Engines, run_eval
    from prefline.evals.suite import Suite, load_suite
    from prefline.gate.diagnose import diagnose

    say = progress or (lambda _m: None)
    if len(adapters) < 2:
        raise PreflineError(f"bisect needs at least two adapters (a good one first, a bad one last), got {len(adapters)}")
    if (metric is None) != (slice_name is None):
        raise PreflineError("give both --metric and --slice, or neither (then the top regression is followed)")
    suite = load_suite(suite_ref)
    decoding = decoding or DecodingConfig()
    engines = Engines()
    rows = {name: (None if name == "base" else ledger.get_adapter(name)) for name in adapters}

    def evaluate(name: str, on: Suite) -> int:
        row = rows[name]
        say(f"evaluating {name} on {len(on.items)} item(s) of suite {suite.name}")
        return run_eval(on, ledger, model_spec=row["base_model"] if row else model, adapter=name if row else None,
                        decoding=decoding, show_progress=False, engines=engines)

    good_run = good_run or evaluate(adapters[0], suite)
    bad_run = bad_run or evaluate(adapters[-1], suite)
    if metric is None:
        found = diagnose(ledger, good_run, bad_run, alpha=alpha, top=0)
        if not found.findings:
            raise PreflineError(f"{adapters[-1]} (run {bad_run}) shows no regression against {adapters[0]} (run {good_run}) "
                                f"at alpha {alpha:g}: nothing to bisect")
        metric, slice_name = found.findings[0].metric, found.findings[0].slice
    direction = _direction(metric)
    chosen = [item for item in suite.items if slice_name == "overall" or
              any(f"{k}={v}" == slice_name for k, v in item.slices.items())]
    if not chosen:
        raise PreflineError(f"slice {slice_name!r} holds no item of suite {suite.name}")
    ids = {item.id for item in chosen}
    good_value, bad_value = _mean(ledger, good_run, metric, ids), _mean(ledger, bad_run, metric, ids)
    sign = 1.0 if direction == "lower" else -1.0
    if sign * (bad_value - good_value) <= 0:
        raise PreflineError(f"{metric} in {slice_name} is not worse for {adapters[-1]} ({bad_value:.4g}) than for "
                            f"{adapters[0]} ({good_value:.4g}): nothing to bisect")
    threshold = good_value + (bad_value - good_value) / 2
    sub = Suite(name=f"{suite.name}[{slice_name}]", version=suite.version, description=f"{slice_name} items of {suite.name}",
                path=suite.path, items=chosen, scorers=suite.scorers)
    lo, hi, steps = 0, len(adapters) - 1, []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        run = evaluate(adapters[mid], sub)
        value = _mean(ledger, run, metric, ids)
        verdict = "bad" if sign * (value - threshold) > 0 else "good"
        steps.append(BisectStep(adapters[mid], run, value, verdict))
        say(f"{adapters[mid]}: {metric} {value:.4g} in {slice_name} -> {verdict}")
        if verdict == "bad":
            hi = mid
        else:
            lo = mid
    return BisectResult(metric, slice_name, len(chosen), list(adapters), BisectStep(adapters[0], good_run, good_value, "good"),
                        BisectStep(adapters[-1], bad_run, bad_value, "bad"), adapters[hi], adapters[lo], steps, threshold)


def _direction(metric: str) -> str:
    from prefline.gate.comparison import metric_info

    info = metric_info().get(metric)
    if info is None or info.direction == "neutral":
        raise PreflineError(f"metric {metric!r} has no better direction to bisect on")
    return info.direction


def _mean(ledger: Ledger, run: int, metric: str, ids: set[str]) -> float:
    values = [s["value"] for s in ledger.scores(run) if s["metric"] == metric and s["item_id"] in ids and s["value"] is not None]
    if not values:
        raise PreflineError(f"run {run} has no {metric} score on the bisected items")
    return sum(values) / len(values)


__all__ = ["BisectResult", "BisectStep", "bisect"]
