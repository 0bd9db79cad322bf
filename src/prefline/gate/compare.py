"""The gate: decide whether a candidate eval run may replace a baseline, under a policy.

Each bound of each rule is checked overall and in every slice (``gate/bounds.py`` says how).
All checks of one decision form one family: a check **fails** when its one-sided test is
significant at the policy's ``error_rate`` after the Benjamini-Hochberg (or Holm) adjustment,
**passes** when the worse end of its one-sided interval stays inside the bound, and is
**inconclusive** otherwise or when its slice has fewer than ``min_items`` items. A rule's
``on_inconclusive`` says what an inconclusive check means. A rule for a metric the runs did not
score is **not applicable** (an error with ``strict``).

Verdict per axis (capability, reliability, safety): fail when one of its checks fails,
inconclusive when one warns, else pass. Overall: fail when any axis fails, inconclusive when a
required axis is not a pass, else pass. Every decision is stored in the ledger with the policy
applied, the correction and the evidence, under a format version.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prefline.config import GatePolicy, GateRule
from prefline.errors import PreflineError
from prefline.gate.bounds import ABSOLUTE, test_bound
from prefline.gate.comparison import MetricInfo, PairedData, compare_paired, json_ready, load_paired
from prefline.gate.policy import default_policy, default_rule, with_major_change
from prefline.gate.preference import PREFERENCE_METRICS, preference_data, win_rate_slices
from prefline.ledger import Ledger
from prefline.stats import adjust_pvalues

FORMAT_VERSION = 2
AXES = ("capability", "reliability", "safety")


@dataclass
class Check:
    slice: str
    metric: str
    n: int
    baseline: float
    candidate: float
    delta: float  # candidate - baseline
    delta_low: float  # paired bootstrap interval of delta
    delta_high: float
    ratio: float | None
    status: str  # pass, fail, inconclusive, not applicable
    reason: str
    bound: str = ""  # max_increase, max_ratio, max_value, ...
    limit: float | None = None
    kind: str = "baseline"  # baseline: vs the baseline run; drift: vs the reference run
    axis: str = "capability"
    category: str = "behaviour"
    estimate: float | None = None  # in the bound's terms: a change, a ratio or the candidate's mean
    low: float | None = None  # the decision's interval of the estimate (worse end = one-sided bound)
    high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    method: str = ""
    items_needed: int | None = None
    on_inconclusive: str = "warn"
    outcome: str = ""  # what the check means for the verdict: pass, fail, warn

    @property
    def name(self) -> str:
        return f"{self.kind}: {self.metric} {self.bound} {self.limit:g} [{self.slice}]" if self.limit is not None else f"{self.kind}: {self.metric} [{self.slice}]"


@dataclass
class GateResult:
    baseline_run: int
    candidate_run: int
    policy: str
    verdict: str  # pass, fail, inconclusive
    checks: list[Check] = field(default_factory=list)
    decision_id: int | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    axes: dict[str, str] = field(default_factory=dict)
    reference_run: int | None = None
    major_change: bool = False
    correction: str = "bh"
    error_rate: float = 0.05
    reasons: list[str] = field(default_factory=list)  # why the verdict is inconclusive, or why a pass has inconclusive axes

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.outcome == "fail"]

    @property
    def inconclusive(self) -> list[Check]:
        return [c for c in self.checks if c.status == "inconclusive"]

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "checks"}
        return json_ready({"format_version": FORMAT_VERSION, **out, "checks": [asdict(c) for c in self.checks]})


def compare_runs(ledger: Ledger, baseline_id: int | str, candidate_id: int | str, policy: GatePolicy | None = None, record: bool = True,
                 reference_run: int | str | None = None, strict: bool = False, common_items: bool = False) -> GateResult:
    """Gate ``candidate_id`` against ``baseline_id`` (and, with a policy ``drift:`` section, against ``reference_run``)."""
    policy = policy or default_policy()
    base_run, cand_run = ledger.get_run(baseline_id), ledger.get_run(candidate_id)
    data = load_paired(ledger, base_run, cand_run, common_items)
    warnings = []
    if cand_run["created_at"] < base_run["created_at"]:
        warnings.append(f"candidate run {cand_run['id']} is older than baseline run {base_run['id']}: are the arguments reversed? "
                        "(prefline gate BASELINE CANDIDATE)")
    notes, major = data_notes(ledger, base_run, cand_run)
    if major and policy.major_change is not None:
        policy = with_major_change(policy)
        notes.append(f"the major-change terms of policy {policy.name!r} apply")
    elif major:
        notes.append(f"policy {policy.name!r} has no major_change: section; its usual terms apply")
    sources = [data, *preference_data(ledger, base_run, cand_run)]
    tagged = {name.split("=", 1)[0] for name in data.slices if name != "overall"}
    untagged = [key for key in policy.slice_keys if key not in tagged]
    if untagged:  # a misspelt key would otherwise break nothing down, silently
        warnings.append(f"slice key(s) {', '.join(map(repr, untagged))} of policy {policy.name!r} tag no item of these runs, "
                        f"so nothing is broken down by them (keys present: {', '.join(sorted(tagged)) or 'none'})")

    checks = _checks(policy, policy.rules, sources, "baseline", strict, lc=win_rate_slices(ledger, base_run, cand_run))
    ref_id = None
    if reference_run is not None:
        ref_run = ledger.get_run(reference_run)
        ref_id = ref_run["id"]
        if policy.drift is None:
            notes.append(f"reference run {ref_id} given, but policy {policy.name!r} has no drift: section; nothing was checked against it")
        else:
            ref_sources = [load_paired(ledger, ref_run, cand_run, common_items), *preference_data(ledger, ref_run, cand_run)]
            checks += _checks(policy, policy.drift.rules, ref_sources, "drift", strict, defaults=False,
                              lc=win_rate_slices(ledger, ref_run, cand_run))
    _decide(checks, policy)
    axes, verdict, reasons = _verdict(checks, policy)
    result = GateResult(baseline_run=base_run["id"], candidate_run=cand_run["id"], policy=policy.name, verdict=verdict, checks=checks,
                        notes=notes, warnings=warnings, axes=axes, reference_run=ref_id, major_change=major and policy.major_change is not None,
                        correction=policy.correction, error_rate=policy.error_rate, reasons=reasons)
    if data.excluded_items or common_items:
        result.notes.append(f"compared on the {len(data.items)} items both suites hold unchanged (--common-items); "
                            f"{data.excluded_items} item(s) left out")
    if record:
        result.decision_id = ledger.add_gate_decision(
            baseline_run_id=base_run["id"], candidate_run_id=cand_run["id"], policy=policy.model_dump(), verdict=verdict,
            results=result.as_dict())
    return result


def _checks(policy: GatePolicy, rules: list[GateRule], sources: list[PairedData], kind: str, strict: bool,
            defaults: bool = True, lc: dict[str, Any] | None = None) -> list[Check]:
    by_metric = {m: src for src in sources for m in src.metrics}
    rules = list(rules)
    if defaults and policy.all_metrics:
        named = {r.metric for r in rules}
        main = sources[0]
        for j, metric in enumerate(main.metrics):
            if metric not in named and metric not in PREFERENCE_METRICS:
                rule = default_rule(metric, main.info[metric].direction, np.concatenate([main.baseline[:, j], main.candidate[:, j]]))
                if rule is not None:
                    rules.append(rule)
    checks: list[Check] = []
    for rule in rules:
        if rule.metric == "win_rate_lc" and lc is not None:
            checks += _interval_checks(policy, rule, lc, kind)
            continue
        src = by_metric.get(rule.metric)
        if src is None:
            known = sorted(by_metric)
            if strict:
                raise PreflineError(f"policy {policy.name!r} gates metric {rule.metric} that the runs did not score (they have: {', '.join(known)})")
            checks.append(_not_applicable(rule, kind, "overall", f"the runs did not score {rule.metric}"))
            continue
        checks += _rule_checks(policy, rule, src, kind, strict)
    return checks


def _rule_checks(policy: GatePolicy, rule: GateRule, src: PairedData, kind: str, strict: bool) -> list[Check]:
    j = src.metrics.index(rule.metric)
    info: MetricInfo = src.info[rule.metric]
    binary = bool(src.binary()[j])
    names = rule.slices or ["overall"] + [s for s in src.slices if s != "overall" and s.split("=", 1)[0] in policy.slice_keys]
    rows = {(r.metric, r.slice): r for r in compare_paired(
        PairedData(src.items, [rule.metric], src.baseline[:, [j]], src.candidate[:, [j]], {s: src.slices[s] for s in names if s in src.slices},
                   {rule.metric: info}), samples=policy.bootstrap_samples, seed=policy.seed)}
    b_all, c_all = src.baseline[:, j], src.candidate[:, j]
    out = []
    for slice_name in names:
        if slice_name not in src.slices:
            if strict:
                raise PreflineError(f"policy {policy.name!r}: rule for {rule.metric} names slice {slice_name!r} that the runs do not have")
            out.append(_not_applicable(rule, kind, slice_name, f"the runs have no slice {slice_name}"))
            continue
        mask = src.slices[slice_name]
        for bound, limit in rule.bounds():
            need_base = bound not in ABSOLUTE
            keep = mask & ~np.isnan(c_all) & (~np.isnan(b_all) if need_base else True)
            n = int(keep.sum())
            if n == 0:
                if rule.slices:
                    out.append(_not_applicable(rule, kind, slice_name, f"{rule.metric} has no value in {slice_name}", bound, limit))
                continue
            b, c = b_all[keep], c_all[keep]
            b_mean = float(np.nanmean(b)) if np.any(~np.isnan(b)) else math.nan
            c_mean = float(c.mean())
            row = rows.get((rule.metric, slice_name))
            check = Check(slice=slice_name, metric=rule.metric, n=n, baseline=b_mean, candidate=c_mean, delta=c_mean - b_mean,
                          delta_low=row.ci_low if row else math.nan, delta_high=row.ci_high if row else math.nan,
                          ratio=c_mean / b_mean if b_mean else None, status="inconclusive", reason="", bound=bound, limit=limit,
                          kind=kind, axis=info.axis, category=info.category, on_inconclusive=rule.on_inconclusive)
            if n < policy.min_items:
                check.items_needed = policy.min_items  # at least; a test on that many would say how many more
                check.reason = f"only {n} item(s) (< min_items {policy.min_items}): too few to judge; at least {policy.min_items} needed"
            else:
                t = test_bound(bound, limit, np.nan_to_num(b), c, binary, policy.error_rate)
                check.estimate, check.low, check.high, check.p_value = t.estimate, t.low, t.high, t.p_value
                check.method, check.items_needed, check.status = t.method, t.items_needed, "pass" if t.holds else "inconclusive"
            out.append(check)
    for bound, limit in rule.bounds():
        if not any(c.bound == bound for c in out):  # e.g. a baseline adapter never evaluated on the candidate's held-out pairs
            out.append(_not_applicable(rule, kind, "overall", f"no item has a value of {rule.metric} in both runs", bound, limit))
    return out


def _interval_checks(policy: GatePolicy, rule: GateRule, slices: dict[str, Any], kind: str) -> list[Check]:
    """Checks of the length-controlled win rate from its stored per-slice estimate and 90% interval (no p-value).

    The baseline's win rate against itself is 0.5, so ``max_decrease: m`` means at least ``0.5 - m``."""
    info = PREFERENCE_METRICS["win_rate_lc"]
    names = rule.slices or ["overall"] + [s for s in slices if s != "overall" and s.split("=", 1)[0] in policy.slice_keys]
    out = []
    for name in names:
        lc = (slices.get(name) or {}).get("length_controlled")
        for bound, limit in rule.bounds():
            if lc is None:
                out.append(_not_applicable(rule, kind, name, f"no length-controlled win rate stored for {name}", bound, limit))
                continue
            estimate, (low, high), n = lc["estimate"], lc["ci"], slices[name]["n"]
            floor = {"min_value": limit, "max_decrease": 0.5 - limit, "min_ratio": 0.5 * limit}.get(bound)
            ceiling = {"max_value": limit, "max_increase": 0.5 + limit, "max_ratio": 0.5 * limit}.get(bound)
            holds = low >= floor if floor is not None else high <= ceiling
            broken = high < floor if floor is not None else low > ceiling
            shown = {"max_increase": (-0.5, 1.0), "max_decrease": (-0.5, 1.0), "max_ratio": (0.0, 2.0), "min_ratio": (0.0, 2.0)}
            shift, scale = shown.get(bound, (0.0, 1.0))  # in the bound's terms: a change from 0.5, a ratio to 0.5, or the rate
            check = Check(slice=name, metric=rule.metric, n=n, baseline=0.5, candidate=estimate, delta=estimate - 0.5, delta_low=low - 0.5,
                          delta_high=high - 0.5, ratio=estimate / 0.5, status="fail" if broken else "pass" if holds else "inconclusive",
                          reason="", bound=bound, limit=limit, kind=kind, axis=info.axis, category=info.category,
                          estimate=(estimate + shift) * scale, low=(low + shift) * scale, high=(high + shift) * scale,
                          method="stored 90% bootstrap interval", on_inconclusive=rule.on_inconclusive)
            if n < policy.min_items:
                check.status, check.items_needed = "inconclusive", policy.min_items
                check.reason = f"only {n} item(s) (< min_items {policy.min_items}): too few to judge; at least {policy.min_items} needed"
            out.append(check)
    return out


def _not_applicable(rule: GateRule, kind: str, slice_name: str, why: str, bound: str = "", limit: float | None = None) -> Check:
    bound, limit = (bound, limit) if bound else rule.bounds()[0]
    return Check(slice=slice_name, metric=rule.metric, n=0, baseline=math.nan, candidate=math.nan, delta=math.nan, delta_low=math.nan,
                 delta_high=math.nan, ratio=None, status="not applicable", reason=why, bound=bound, limit=limit, kind=kind,
                 on_inconclusive=rule.on_inconclusive, outcome="pass")


def _decide(checks: list[Check], policy: GatePolicy) -> None:
    """Adjust the family's p-values together, then settle each check's status and outcome."""
    tested = [c for c in checks if c.p_value is not None]
    adjusted = adjust_pvalues([c.p_value for c in tested], policy.correction)
    for c, p in zip(tested, adjusted):
        c.p_adjusted = float(p)
        if p <= policy.error_rate:
            c.status = "fail"
    for c in checks:
        if c.status == "not applicable":
            continue
        what = _describe(c)
        if c.status == "fail":
            evidence = f"p adj {c.p_adjusted:.2g} <= {policy.error_rate:g}" if c.p_adjusted is not None else "the whole interval"
            c.reason = f"{what}: beyond {c.bound} {c.limit:g} ({evidence})"
            c.outcome = "fail"
        elif c.status == "pass":
            c.reason = f"{what}: within {c.bound} {c.limit:g}"
            c.outcome = "pass"
        else:
            if c.estimate is not None and not c.reason:
                need = f"; about {c.items_needed} items would decide" if c.items_needed else ""
                p = f" (p adj {c.p_adjusted:.2g})" if c.p_adjusted is not None else ""
                c.reason = f"{what}: cannot tell against {c.bound} {c.limit:g}{p}{need}"
            c.outcome = {"fail": "fail", "warn": "warn", "pass": "pass"}[c.on_inconclusive]


def _describe(c: Check) -> str:
    if c.estimate is None or c.low is None:
        return f"n={c.n}"
    label = {"max_ratio": "ratio", "min_ratio": "ratio", "max_value": "mean", "min_value": "mean"}.get(c.bound, "change")
    fmt = "{:.3f}" if label != "change" else "{:+.3f}"
    return f"{label} {fmt.format(c.estimate)} [{fmt.format(c.low)}, {fmt.format(c.high)}]"


def _verdict(checks: list[Check], policy: GatePolicy) -> tuple[dict[str, str], str, list[str]]:
    axes: dict[str, str] = {}
    for axis in AXES:
        mine = [c for c in checks if c.axis == axis and c.status != "not applicable"]
        if not mine:
            axes[axis] = "not gated"
        elif any(c.outcome == "fail" for c in mine):
            axes[axis] = "fail"
        elif any(c.outcome == "warn" for c in mine):
            axes[axis] = "inconclusive"
        else:
            axes[axis] = "pass"
    reasons = [f"required axis {a} is {axes[a]}" for a in policy.require_axes if axes[a] != "pass"]
    verdict = "fail" if "fail" in axes.values() else "inconclusive" if reasons else "pass"
    unsure_axes = [a for a, v in axes.items() if v == "inconclusive"]
    if verdict == "pass" and unsure_axes:  # a pass that rests on the policy's terms, not on evidence that every bound holds
        warned = sum(1 for c in checks if c.outcome == "warn")
        required = (f"requires a clear pass only on {', '.join(policy.require_axes)}" if policy.require_axes
                    else "requires a clear pass on no axis")
        reasons.append(f"pass although {', '.join(unsure_axes)} {'is' if len(unsure_axes) == 1 else 'are'} inconclusive: no check failed; "
                       f"policy {policy.name!r} counts its {warned} inconclusive check(s) as warnings (on_inconclusive: warn) "
                       f"and {required} (require_axes)")
    return axes, verdict, reasons


def data_notes(ledger: Ledger, base_run: dict[str, Any], cand_run: dict[str, Any]) -> tuple[list[str], bool]:
    """A note, and True, when the candidate's adapter was trained on a dataset version marked as a major change.

    A version is a major change when more than the major-change share of its pairs differ from
    its primary parent (its previous version, or the source it was derived from). No note when
    both adapters learnt from the same version.
    """
    from prefline.data.lineage import backfill, parents

    cand = _adapter_and_dataset(ledger, cand_run)
    if cand is None:
        return [], False
    base = _adapter_and_dataset(ledger, base_run)
    adapter, dataset = cand
    if base is not None and base[1]["id"] == dataset["id"]:
        return [], False
    backfill(ledger, dataset)  # an ingested version's link to its previous one, recorded the first time it is needed
    primary = next((p for p in parents(ledger, dataset["id"]) if p.is_primary), None)
    if primary is None or not primary.major_change:
        return [], False
    note = (f"candidate adapter {adapter['name']} was trained on {dataset['name']}@{dataset['version']}, a major change from "
            f"{primary.parent_name}@{primary.parent_version}: {primary.changed_share:.0%} of its pairs changed "
            f"(major above {(primary.diff or {}).get('major_share', 0):.0%})")
    if base is not None:
        note += f"; the baseline adapter {base[0]['name']} was trained on {base[1]['name']}@{base[1]['version']}"
    return [note], True


def _adapter_and_dataset(ledger: Ledger, run: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The adapter a run evaluated and the dataset version it was trained on; None for a base-model run."""
    if run.get("adapter_id") is None:
        return None
    adapter = ledger.get_adapter(str(run["adapter_id"]), finished=False)
    return adapter, ledger.get_dataset(str(adapter["dataset_id"]))


__all__ = ["Check", "GateResult", "compare_runs", "data_notes", "default_policy"]
