"""Compare a candidate eval run with a baseline run under a gate policy.

Both runs must come from the same suite hash: then every item is paired and each
change is measured on the same prompts. For every rule and every slice (``overall``
and each value of the policy's slice keys) the comparison records the paired means,
the change with a bootstrap interval, the ratio, and whether the rule's threshold holds.
The verdict is ``pass`` when no gated check fails. Notes (``notes``) add what the checks cannot
see and leave the verdict alone: that the candidate's adapter learnt from a dataset version
marked as a major change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from prefline.config import GatePolicy, GateRule, load_policy
from prefline.errors import PreflineError
from prefline.stats import paired_bootstrap_delta
from prefline.ledger import Ledger


@dataclass
class Check:
    slice: str
    metric: str
    n: int
    baseline: float
    candidate: float
    delta: float
    delta_low: float
    delta_high: float
    ratio: float | None
    status: str  # "pass", "fail", or "not gated" (too few items)
    reason: str


@dataclass
class GateResult:
    baseline_run: int
    candidate_run: int
    policy: str
    verdict: str
    checks: list[Check] = field(default_factory=list)
    decision_id: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "checks"}, "checks": [asdict(c) for c in self.checks]}


def default_policy() -> GatePolicy:
    return load_policy("default")


def _judge(rule: GateRule, base: float, cand: float) -> tuple[bool, str]:
    delta = cand - base
    ratio = cand / base if base else None
    if rule.max_increase is not None and delta > rule.max_increase:
        return False, f"rose by {delta:+.3f} (allowed +{rule.max_increase:g})"
    if rule.max_decrease is not None and -delta > rule.max_decrease:
        return False, f"fell by {delta:+.3f} (allowed -{rule.max_decrease:g})"
    if rule.max_ratio is not None and ratio is not None and ratio > rule.max_ratio:
        return False, f"ratio {ratio:.2f} (allowed <= {rule.max_ratio:g})"
    if rule.min_ratio is not None and ratio is not None and ratio < rule.min_ratio:
        return False, f"ratio {ratio:.2f} (allowed >= {rule.min_ratio:g})"
    return True, "within policy"


def compare_runs(ledger: Ledger, baseline_id: int | str, candidate_id: int | str, policy: GatePolicy | None = None, record: bool = True) -> GateResult:
    policy = policy or default_policy()
    base_run, cand_run = ledger.get_run(baseline_id), ledger.get_run(candidate_id)
    for run in (base_run, cand_run):
        if run["status"] != "done":
            raise PreflineError(f"eval run {run['id']} did not finish (status: {run['status']}); re-run it before gating")
    if base_run["suite_hash"] != cand_run["suite_hash"]:
        raise PreflineError(
            f"runs {base_run['id']} and {cand_run['id']} used different suites "
            f"({base_run['suite_name']} {base_run['suite_hash'][:12]} vs {cand_run['suite_name']} {cand_run['suite_hash'][:12]}); "
            "only runs on the same suite hash are compared"
        )
    base_scores = _values(ledger, base_run["id"])
    cand_scores = _values(ledger, cand_run["id"])
    slices_of = {g["item_id"]: g["slices"] for g in ledger.generations(base_run["id"])}
    known = {metric for metric, _ in base_scores}
    missing = sorted({r.metric for r in policy.rules} - known)
    if missing:
        raise PreflineError(f"policy {policy.name!r} gates metric(s) {', '.join(missing)} that run {base_run['id']} did not score (it has: {', '.join(sorted(known))})")

    slice_names = ["overall"] + sorted({f"{k}={v}" for s in slices_of.values() for k, v in s.items() if k in policy.slice_keys})
    checks: list[Check] = []
    for rule in policy.rules:
        for slice_name in slice_names:
            items = [i for i, tags in sorted(slices_of.items()) if _in_slice(tags, slice_name)]
            paired = [(base_scores[(rule.metric, i)], cand_scores[(rule.metric, i)]) for i in items
                      if (rule.metric, i) in base_scores and (rule.metric, i) in cand_scores]
            if not paired:
                continue
            base_vals, cand_vals = zip(*paired)
            interval = paired_bootstrap_delta(base_vals, cand_vals, samples=policy.bootstrap_samples, confidence=policy.confidence)
            base_mean, cand_mean = sum(base_vals) / len(base_vals), sum(cand_vals) / len(cand_vals)
            ok, reason = _judge(rule, base_mean, cand_mean)
            status = "pass" if ok else "fail"
            if len(paired) < policy.min_items:
                status, reason = "not gated", f"only {len(paired)} item(s) (< {policy.min_items}); {reason}"
            checks.append(Check(
                slice=slice_name, metric=rule.metric, n=len(paired), baseline=base_mean, candidate=cand_mean,
                delta=interval.estimate, delta_low=interval.low, delta_high=interval.high,
                ratio=cand_mean / base_mean if base_mean else None, status=status, reason=reason,
            ))
    verdict = "fail" if any(c.status == "fail" for c in checks) else "pass"
    result = GateResult(baseline_run=base_run["id"], candidate_run=cand_run["id"], policy=policy.name, verdict=verdict, checks=checks,
                        notes=data_notes(ledger, base_run, cand_run))
    if record:
        result.decision_id = ledger.add_gate_decision(
            baseline_run_id=base_run["id"], candidate_run_id=cand_run["id"], policy=policy.model_dump(),
            verdict=verdict, results=result.as_dict()["checks"],
        )
    return result


def data_notes(ledger: Ledger, base_run: dict[str, Any], cand_run: dict[str, Any]) -> list[str]:
    """A note when the candidate's adapter was trained on a dataset version marked as a major change.

    A version is a major change when more than the major-change share of its pairs differ from
    its primary parent (its previous version, or the source it was derived from). The suite's
    slices can pass while the data the model learnt from moved that much, so the gate says so.
    No note when both adapters learnt from the same version.
    """
    from prefline.data.diff import lineage, parents

    cand = _adapter_and_dataset(ledger, cand_run)
    if cand is None:
        return []
    base = _adapter_and_dataset(ledger, base_run)
    adapter, dataset = cand
    if base is not None and base[1]["id"] == dataset["id"]:
        return []
    lineage(ledger, dataset)  # an ingested version's link to its previous one is recorded the first time it is asked for
    primary = next((p for p in parents(ledger, dataset["id"]) if p["is_primary"]), None)
    if primary is None or not primary["major_change"]:
        return []
    note = (f"candidate adapter {adapter['name']} was trained on {dataset['name']}@{dataset['version']}, a major change from "
            f"{primary['parent_name']}@{primary['parent_version']}: {primary['changed_share']:.0%} of its pairs changed "
            f"(major above {(primary['diff'] or {}).get('major_share', 0):.0%})")
    if base is not None:
        note += f"; the baseline adapter {base[0]['name']} was trained on {base[1]['name']}@{base[1]['version']}"
    return [note]


def _adapter_and_dataset(ledger: Ledger, run: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The adapter a run evaluated and the dataset version it was trained on; None for a base-model run."""
    if run.get("adapter_id") is None:
        return None
    adapter = ledger.get_adapter(str(run["adapter_id"]), finished=False)
    return adapter, ledger.get_dataset(str(adapter["dataset_id"]))


def _in_slice(tags: dict[str, str], slice_name: str) -> bool:
    return slice_name == "overall" or any(f"{k}={v}" == slice_name for k, v in tags.items())


def _values(ledger: Ledger, run_id: int) -> dict[tuple[str, str], float]:
    return {(row["metric"], row["item_id"]): row["value"] for row in ledger.scores(run_id) if row["value"] is not None}
