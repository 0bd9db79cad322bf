"""Paired comparison of two eval runs: every metric in every slice, with intervals and tests.

Items are paired by id on the same suite hash. With ``common_items`` two runs on different
suite hashes are compared on the items both suites hold unchanged (same id, same item hash),
and every output says so. For each metric x slice cell: n, the two means, their difference
with a paired bootstrap interval (Poisson bootstrap over items, seeded), and a two-sided
p-value from the paired test that fits the metric: exact McNemar when every value is 0 or 1,
Wilcoxon signed-rank otherwise. The p-values of all cells form one family, adjusted with
Benjamini-Hochberg (default) or Holm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prefline.errors import PreflineError
from prefline.ledger import Ledger
from prefline.stats import adjust_pvalues, cell_bootstrap, mcnemar_exact, wilcoxon_signed_rank

FORMAT_VERSION = 1
CORRECTIONS = ("bh", "holm")


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None: valid JSON for jq and for PostgreSQL's JSON columns."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


@dataclass(frozen=True)
class MetricInfo:
    direction: str  # higher, lower or neutral is better
    axis: str  # capability, reliability, safety
    category: str  # behaviour, truthfulness, formatting, safety, latency


UNKNOWN_METRIC = MetricInfo("neutral", "capability", "behaviour")


def metric_info() -> dict[str, MetricInfo]:
    """Direction, axis and category of every metric the registered scorers produce."""
    from prefline.evals.scorers import SCORERS, get_scorers

    get_scorers(None)  # registers the built-in scorers
    return {m: MetricInfo(d, s.axis, s.category) for s in SCORERS.values() for m, d in s.metrics.items()}


@dataclass
class PairedData:
    """Per-item values of two runs on the same items: (items x metrics) arrays, NaN where a metric does not apply."""

    items: list[str]
    metrics: list[str]
    baseline: np.ndarray
    candidate: np.ndarray
    slices: dict[str, np.ndarray]  # "overall" and "key=value" -> boolean mask over items
    info: dict[str, MetricInfo] = field(default_factory=dict)
    excluded_items: int = 0  # with common_items: items of either suite left out (new, removed or changed)

    def binary(self) -> np.ndarray:
        """Per metric: True when every value of both runs is 0 or 1 (a per-item yes/no)."""
        both = np.vstack([self.baseline, self.candidate])
        return np.array([np.all(np.isin(col[~np.isnan(col)], (0.0, 1.0))) for col in both.T], dtype=bool)


@dataclass(frozen=True)
class ComparisonRow:
    metric: str
    slice: str
    n: int
    baseline: float
    candidate: float
    diff: float  # candidate - baseline
    ci_low: float
    ci_high: float
    ratio: float | None  # candidate / baseline
    test: str  # mcnemar, wilcoxon
    p_value: float
    p_adjusted: float
    direction: str
    axis: str
    category: str

    @property
    def worse(self) -> bool:
        """The candidate moved in the metric's bad direction."""
        return (self.direction == "lower" and self.diff > 0) or (self.direction == "higher" and self.diff < 0)


@dataclass
class Comparison:
    baseline_run: int
    candidate_run: int
    suite: str
    common_items: bool
    items: int
    excluded_items: int
    correction: str
    samples: int
    confidence: float
    seed: int
    rows: list[ComparisonRow] = field(default_factory=list)

    def row(self, metric: str, slice_name: str = "overall") -> ComparisonRow:
        for r in self.rows:
            if r.metric == metric and r.slice == slice_name:
                return r
        raise KeyError(f"no row for {metric} in {slice_name}")

    @property
    def scope(self) -> str:
        """One line that says what was paired; every output carries it."""
        if self.common_items:
            return (f"compared on the {self.items} items both suites hold unchanged (--common-items); "
                    f"{self.excluded_items} item(s) new, removed or changed were left out")
        return f"all {self.items} items of suite {self.suite} paired"

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "rows"}
        return json_ready({"format_version": FORMAT_VERSION, **out, "scope": self.scope, "rows": [asdict(r) for r in self.rows]})


def slice_masks(tags: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """``overall`` and every ``key=value`` tag of the items, each a boolean mask over the items."""
    out = {"overall": np.ones(len(tags), dtype=bool)}
    for name in sorted({f"{k}={v}" for t in tags for k, v in t.items()}):
        key, value = name.split("=", 1)
        out[name] = np.array([str(t.get(key)) == value for t in tags], dtype=bool)
    return out


def load_paired(ledger: Ledger, baseline_run: dict[str, Any], candidate_run: dict[str, Any], common_items: bool = False) -> PairedData:
    """Both runs' per-item values, aligned on the items they share; refuses different suites unless ``common_items``."""
    for run in (baseline_run, candidate_run):
        if run["status"] != "done":
            raise PreflineError(f"eval run {run['id']} did not finish (status: {run['status']}); re-run it before comparing")
    base_gen = {g["item_id"]: g for g in ledger.generations(baseline_run["id"])}
    cand_gen = {g["item_id"]: g for g in ledger.generations(candidate_run["id"])}
    same_suite = baseline_run["suite_hash"] == candidate_run["suite_hash"]
    if not same_suite and not common_items:
        raise PreflineError(
            f"runs {baseline_run['id']} and {candidate_run['id']} used different suites "
            f"({baseline_run['suite_name']} {baseline_run['suite_hash'][:12]} vs {candidate_run['suite_name']} {candidate_run['suite_hash'][:12]}); "
            "only runs on the same suite hash are compared (--common-items compares the items both hold unchanged)")
    items = sorted(i for i in base_gen if i in cand_gen and base_gen[i]["item_hash"] == cand_gen[i]["item_hash"])
    if not items:
        raise PreflineError(f"runs {baseline_run['id']} and {candidate_run['id']} share no unchanged item")
    excluded = len(set(base_gen) | set(cand_gen)) - len(items)
    index = {item: k for k, item in enumerate(items)}
    base_rows, cand_rows = ledger.scores(baseline_run["id"]), ledger.scores(candidate_run["id"])
    metrics = sorted({r["metric"] for r in base_rows} & {r["metric"] for r in cand_rows})
    column = {m: j for j, m in enumerate(metrics)}
    arrays = []
    for rows in (base_rows, cand_rows):
        values = np.full((len(items), len(metrics)), np.nan)
        for r in rows:
            if r["value"] is not None and r["item_id"] in index and r["metric"] in column:
                values[index[r["item_id"]], column[r["metric"]]] = r["value"]
        arrays.append(values)
    info = metric_info()
    return PairedData(items, metrics, arrays[0], arrays[1], slice_masks([base_gen[i]["slices"] for i in items]),
                      {m: info.get(m, UNKNOWN_METRIC) for m in metrics},
                      excluded if common_items else 0)


def compare_paired(data: PairedData, correction: str = "bh", samples: int = 2000, confidence: float = 0.9, seed: int = 0,
                   slice_keys: list[str] | None = None) -> list[ComparisonRow]:
    """The rows of a comparison from aligned values: the pure part of :func:`compare`, used by the benchmark too."""
    if correction not in CORRECTIONS:
        raise PreflineError(f"unknown correction {correction!r}: use one of {', '.join(CORRECTIONS)}")
    names = [s for s in data.slices if s == "overall" or slice_keys is None or s.split("=", 1)[0] in slice_keys]
    masks = np.stack([data.slices[s] for s in names], axis=1)  # items x slices
    valid = ~np.isnan(data.baseline) & ~np.isnan(data.candidate)  # items x metrics
    # cells are metric-major: cell = metric * len(names) + slice
    present = (valid[:, :, None] & masks[:, None, :]).reshape(len(data.items), -1)
    base = np.repeat(data.baseline, len(names), axis=1)
    cand = np.repeat(data.candidate, len(names), axis=1)
    boot = cell_bootstrap(base, cand, present, samples=samples, confidence=confidence, seed=seed)
    binary = np.repeat(data.binary(), len(names))
    b0, c0 = np.nan_to_num(base), np.nan_to_num(cand)
    went_up = ((c0 > b0) & present).sum(axis=0)
    went_down = ((c0 < b0) & present).sum(axis=0)
    p = np.where(binary, mcnemar_exact(went_up, went_down), np.nan)
    for cell in np.flatnonzero(~binary & (boot.n > 0)):
        rows = present[:, cell]
        p[cell] = wilcoxon_signed_rank(cand[rows, cell] - base[rows, cell])
    p[boot.n == 0] = np.nan
    adjusted = adjust_pvalues(p, correction)
    out = []
    for cell in np.flatnonzero(boot.n > 0):
        metric = data.metrics[cell // len(names)]
        info = data.info.get(metric, UNKNOWN_METRIC)
        ratio = float(boot.ratio[cell]) if np.isfinite(boot.ratio[cell]) else None
        out.append(ComparisonRow(
            metric=metric, slice=names[cell % len(names)], n=int(boot.n[cell]), baseline=float(boot.baseline[cell]),
            candidate=float(boot.candidate[cell]), diff=float(boot.diff[cell]), ci_low=float(boot.diff_low[cell]),
            ci_high=float(boot.diff_high[cell]), ratio=ratio, test="mcnemar" if binary[cell] else "wilcoxon",
            p_value=float(p[cell]), p_adjusted=float(adjusted[cell]), direction=info.direction, axis=info.axis, category=info.category))
    return out


def compare(ledger: Ledger, baseline: int | str, candidate: int | str, *, common_items: bool = False, correction: str = "bh",
            samples: int = 2000, confidence: float = 0.9, seed: int = 0, slice_keys: list[str] | None = None) -> Comparison:
    """Compare two eval runs item by item: one :class:`ComparisonRow` per metric and slice."""
    return compare_with_data(ledger, baseline, candidate, common_items=common_items, correction=correction, samples=samples,
                             confidence=confidence, seed=seed, slice_keys=slice_keys)[0]


def compare_with_data(ledger: Ledger, baseline: int | str, candidate: int | str, *, common_items: bool = False, correction: str = "bh",
                      samples: int = 2000, confidence: float = 0.9, seed: int = 0,
                      slice_keys: list[str] | None = None) -> tuple[Comparison, PairedData]:
    """:func:`compare`, with the paired values it was computed from (which ``diagnose`` reads too, so a
    report that shows both bootstraps once)."""
    base_run, cand_run = ledger.get_run(baseline), ledger.get_run(candidate)
    data = load_paired(ledger, base_run, cand_run, common_items)
    rows = compare_paired(data, correction=correction, samples=samples, confidence=confidence, seed=seed, slice_keys=slice_keys)
    suite = base_run["suite_name"] if base_run["suite_name"] == cand_run["suite_name"] else f"{base_run['suite_name']}/{cand_run['suite_name']}"
    return Comparison(baseline_run=base_run["id"], candidate_run=cand_run["id"], suite=suite,
                      common_items=common_items,
                      items=len(data.items), excluded_items=data.excluded_items, correction=correction, samples=samples,
                      confidence=confidence, seed=seed, rows=rows), data
