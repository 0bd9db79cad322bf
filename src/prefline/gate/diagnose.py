"""Diagnose a candidate that is worse than its baseline: which slice, which kind of problem, which change.

1. **Regressions.** :func:`prefline.gate.comparison.compare_paired` gives every metric in every
   slice with a paired interval and an adjusted p-value. A regression is a cell that moved in its
   metric's bad direction with an adjusted p-value at most ``alpha``. Regressions are ranked by a
   standardized effect size (:func:`paired_effect_sizes`) and grouped by the metric's failure
   category (behaviour, truthfulness, formatting, safety, latency; the scorer registry's) and slice.
   A slice regression whose own interval holds the ``overall`` change is *explained by* the overall
   one and is listed under it, not as a finding of its own; a slice that moved beyond the overall
   change (or regressed while ``overall`` did not) is its own finding.
2. **Likely cause.** The ledger links each run to its adapter, the adapter to its dataset version and
   training config. The two datasets are diffed (pairs added and removed per source and slice, the
   share of pairs whose chosen response is longer, refusals and hedges among chosen responses,
   consensus confidence as the agreement measure), overall and in the regressing slices, and the two
   configs are diffed field by field. Each change is matched against the regressions it would
   explain (:data:`SIGNATURES`): a verbosity regression with the chosen-longer share up, an
   over-refusal regression with refusals among chosen up, ... Its confidence grows with the size of
   the change and with the number of regressions it matches; it never reaches 1: a diff is
   evidence, not proof (the same data could fail for another reason the ledger does not see).
3. **Items.** For each top finding, the items that moved most, both responses side by side.

Bisect over a list of adapters lives in :mod:`prefline.gate.bisect`.

(A little over 400 lines: the three steps share the comparison and the lineage they read, and
splitting them would pass those between modules for no reader's benefit; bisect is already apart.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prefline.errors import PreflineError
from prefline.gate.comparison import Comparison, ComparisonRow, PairedData, compare_paired, load_paired
from prefline.ledger import Ledger

FORMAT_VERSION = 1
MAX_CONFIDENCE = 0.9  # a lineage diff is evidence, never proof

# Problem families: which metrics show a problem, and which data or config changes push toward it.
# A data signal is (bias key of prefline.data.diff.BIAS_KEYS, the direction of change that pushes).
SIGNATURES: dict[str, dict[str, Any]] = {
    "verbosity": {
        "metrics": {"length_tokens", "length_words", "length_sentences", "length_ratio_reference", "voice_too_long",
                    "voice_speaking_time_s", "latency_s"},
        "data": [("chosen_longer", +1)],
        "config": [("ld_alpha", +1), ("beta", -1)],
    },
    "over-refusal": {
        "metrics": {"over_refusal", "partial_refusal", "refusal"},
        "data": [("chosen_refuses", +1), ("rejected_refuses", -1)],
        "config": [("beta", -1)],
    },
    "under-refusal": {
        "metrics": {"under_refusal"},
        "data": [("chosen_refuses", -1), ("rejected_refuses", +1)],
        "config": [],
    },
    "hedging": {
        "metrics": {"hedged", "hedging_rate"},
        "data": [("chosen_hedges", +1), ("rejected_hedges", -1)],
        "config": [],
    },
    "citations": {
        "metrics": {"fabricated_citation", "unsupported_claim"},
        "data": [("chosen_cites", +1)],
        "config": [],
    },
}
# Training settings that move any behaviour further from the base when they grow (or, for beta, shrink).
DRIFT_CONFIG = {"learning_rate": +1, "epochs": +1, "max_steps": +1, "lora_r": +1, "beta": -1}
CONFIG_KEYS = ("method", "beta", "learning_rate", "epochs", "max_steps", "lora_r", "lora_alpha", "ld_alpha", "label_smoothing",
               "finetune")


def family_of(metric: str) -> str | None:
    return next((name for name, sig in SIGNATURES.items() if metric in sig["metrics"]), None)


# --- statistics ----------------------------------------------------------------------------


def paired_effect_sizes(baseline: np.ndarray, candidate: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Standardized paired effect per cell (Cohen's d_z): mean(candidate - baseline) / sd(differences).

    ``baseline`` and ``candidate`` are (items x cells), ``present`` marks the items each cell holds.
    Where every difference is the same (sd 0) the sd of the values pooled over both runs is used
    instead (d_av); a cell with no spread at all and a non-zero change is +-inf, one with fewer
    than two items NaN.
    """
    d = np.where(present, candidate - baseline, 0.0)
    n = present.sum(axis=0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.sum(axis=0) / n
        sd = np.sqrt((np.where(present, d - mean, 0.0) ** 2).sum(axis=0) / (n - 1))

        def spread(x):
            m = np.where(present, x, 0.0).sum(axis=0) / n
            return (np.where(present, x - m, 0.0) ** 2).sum(axis=0) / (n - 1)

        pooled = np.sqrt((spread(baseline) + spread(candidate)) / 2)
        scale = np.where(sd > 1e-12, sd, pooled)
        effect = np.where(scale > 1e-12, mean / scale, np.sign(mean) * np.inf)
    effect[n < 2] = np.nan
    effect[(n >= 2) & (np.abs(mean) <= 1e-12)] = 0.0
    return effect


# --- results -------------------------------------------------------------------------------


@dataclass
class Finding:
    metric: str
    slice: str
    category: str
    axis: str
    direction: str
    n: int
    baseline: float
    candidate: float
    diff: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    effect_size: float | None  # |d_z|; None when unbounded (no spread at all)
    family: str | None
    explains: list[dict[str, Any]] = field(default_factory=list)  # slice regressions this one explains
    beyond_overall: bool = False  # a slice that moved beyond the overall change
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Cause:
    kind: str  # data, config
    change: str  # what changed, e.g. chosen_longer
    old: Any
    new: Any
    where: str  # overall or a slice of the data
    explains: list[str]  # metric@slice findings it matches
    evidence: str
    confidence: float


@dataclass
class Diagnosis:
    baseline_run: int
    candidate_run: int
    scope: str
    alpha: float
    correction: str
    findings: list[Finding]
    causes: list[Cause]
    lineage: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def by_category(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        for f in self.findings:
            out.setdefault(f.category, {}).setdefault(f.slice, []).append(f.metric)
        return out

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for f in out["findings"]:
            if f["effect_size"] is not None and not np.isfinite(f["effect_size"]):
                f["effect_size"] = None
        return {"format_version": FORMAT_VERSION, **out, "by_category": self.by_category()}


# --- diagnose ------------------------------------------------------------------------------


def diagnose(ledger: Ledger, baseline: int | str, candidate: int | str, *, alpha: float = 0.05, correction: str = "bh",
             samples: int = 2000, confidence: float = 0.9, seed: int = 0, slice_keys: list[str] | None = None,
             top: int = 5, items: int = 3, common_items: bool = False,
             compared: tuple[Comparison, PairedData] | None = None) -> Diagnosis:
    """Regressions of ``candidate`` against ``baseline``, their likely causes from lineage, and the items that moved.

    ``compared``: the comparison of the two runs already made with these settings (``compare_with_data``),
    reused instead of paired and bootstrapped again.
    """
    if not 0 < alpha < 1:
        raise PreflineError(f"alpha must be between 0 and 1, got {alpha}")
    base_run, cand_run = ledger.get_run(baseline), ledger.get_run(candidate)
    if compared is None:
        data = load_paired(ledger, base_run, cand_run, common_items)
        rows = compare_paired(data, correction=correction, samples=samples, confidence=confidence, seed=seed, slice_keys=slice_keys)
    else:
        comparison, data = compared
        made = (comparison.baseline_run, comparison.candidate_run, comparison.common_items, comparison.correction,
                comparison.samples, comparison.confidence, comparison.seed)
        if made != (base_run["id"], cand_run["id"], common_items, correction, samples, confidence, seed) or slice_keys is not None:
            raise ValueError("diagnose: the comparison given was made of other runs or with other settings")
        rows = comparison.rows
    findings = regressions(data, rows, alpha)
    gens = {run["id"]: {g["item_id"]: g for g in ledger.generations(run["id"])} for run in (base_run, cand_run)}
    for finding in findings[:top]:
        finding.items = moved_items(data, finding, gens[base_run["id"]], gens[cand_run["id"]], items)
    regressed = [f.slice for f in findings] + [e["slice"] for f in findings for e in f.explains]
    lineage = run_lineage(ledger, base_run, cand_run, sorted({s.split("=", 1)[0] for s in regressed if s != "overall"}))
    causes = likely_causes(findings, lineage)
    scope = (f"all {len(data.items)} items of suite {base_run['suite_name']} paired" if not common_items else
             f"compared on the {len(data.items)} items both suites hold unchanged (--common-items)")
    notes = []
    if not findings:
        notes.append(f"no metric moved in its bad direction with an adjusted p-value at most {alpha:g}")
    return Diagnosis(base_run["id"], cand_run["id"], scope, alpha, correction, findings, causes, lineage, notes)


def regressions(data: PairedData, rows: list[ComparisonRow], alpha: float) -> list[Finding]:
    """Significant moves in the bad direction, ranked by effect size; slices explained by ``overall`` folded in."""
    bad = [r for r in rows if r.direction != "neutral" and r.worse and r.p_adjusted <= alpha]
    if not bad:
        return []
    column = {m: j for j, m in enumerate(data.metrics)}
    valid = ~np.isnan(data.baseline) & ~np.isnan(data.candidate)
    present = np.stack([valid[:, column[r.metric]] & data.slices[r.slice] for r in bad], axis=1)
    base = np.stack([data.baseline[:, column[r.metric]] for r in bad], axis=1)
    cand = np.stack([data.candidate[:, column[r.metric]] for r in bad], axis=1)
    effects = np.abs(paired_effect_sizes(np.nan_to_num(base), np.nan_to_num(cand), present))
    found = {(r.metric, r.slice): _finding(r, e) for r, e in zip(bad, effects)}
    out = []
    for (metric, slice_name), finding in found.items():
        overall = found.get((metric, "overall"))
        if slice_name != "overall" and overall is not None:
            if finding.ci_low <= overall.diff <= finding.ci_high:
                overall.explains.append({"slice": slice_name, "n": finding.n, "diff": finding.diff,
                                         "ci": [finding.ci_low, finding.ci_high]})
                continue
            finding.beyond_overall = True
        out.append(finding)
    return sorted(out, key=lambda f: (-(f.effect_size if f.effect_size is not None else np.inf), f.metric, f.slice))


def _finding(row: ComparisonRow, effect: float) -> Finding:
    return Finding(metric=row.metric, slice=row.slice, category=row.category, axis=row.axis, direction=row.direction, n=row.n,
                   baseline=row.baseline, candidate=row.candidate, diff=row.diff, ci_low=row.ci_low, ci_high=row.ci_high,
                   p_adjusted=row.p_adjusted, effect_size=float(effect) if np.isfinite(effect) else None, family=family_of(row.metric))


def moved_items(data: PairedData, finding: Finding, base_gens: dict[str, dict], cand_gens: dict[str, dict], k: int) -> list[dict[str, Any]]:
    """The ``k`` items of the finding's slice that moved furthest in the bad direction, both responses side by side."""
    j = data.metrics.index(finding.metric)
    b, c = data.baseline[:, j], data.candidate[:, j]
    sign = 1.0 if finding.direction == "lower" else -1.0
    moved = sign * (c - b)
    keep = data.slices[finding.slice] & ~np.isnan(moved) & (moved > 0)
    order = [i for i in np.argsort(-np.where(keep, moved, -np.inf), kind="stable") if keep[i]][:k]
    out = []
    for i in order:
        item = data.items[i]
        messages = base_gens[item]["messages"]
        out.append({"item_id": item, "prompt": messages[-1]["content"] if messages else "", "baseline": float(b[i]),
                    "candidate": float(c[i]), "baseline_output": base_gens[item]["output"], "candidate_output": cand_gens[item]["output"]})
    return out


# --- lineage -------------------------------------------------------------------------------


def run_lineage(ledger: Ledger, base_run: dict[str, Any], cand_run: dict[str, Any], slice_keys: list[str]) -> dict[str, Any]:
    """Both runs' adapters, datasets and configs, and the diffs between them (data overall and per value of ``slice_keys``)."""
    sides = {label: _side(ledger, run) for label, run in (("baseline", base_run), ("candidate", cand_run))}
    out: dict[str, Any] = {label: {k: v for k, v in side.items() if k != "dataset_row"} for label, side in sides.items()}
    old, new = sides["baseline"].get("dataset_row"), sides["candidate"].get("dataset_row")
    if new is None:
        out["data"] = None
        out["config"] = None
        return out
    out["data"] = data_change(old, new, slice_keys)
    out["config"] = config_change(sides["baseline"].get("config") or {}, sides["candidate"].get("config") or {})
    return out


def _side(ledger: Ledger, run: dict[str, Any]) -> dict[str, Any]:
    if run["adapter_id"] is None:
        return {"run": run["id"], "model": run["model"], "adapter": None}
    adapter = ledger.get_adapter(str(run["adapter_id"]), finished=False)
    dataset = ledger.get_dataset(str(adapter["dataset_id"]))
    config = {k: adapter["config"].get(k) for k in CONFIG_KEYS if k in adapter["config"]}
    return {"run": run["id"], "model": run["model"], "adapter": adapter["name"], "method": adapter["method"],
            "dataset": f"{dataset['name']}@{dataset['version']}", "config": config, "dataset_row": dataset}


def data_change(old: dict[str, Any] | None, new: dict[str, Any], slice_keys: list[str]) -> dict[str, Any]:
    """The bias profile of both versions (overall and per value of ``slice_keys``), pairs added/removed, and agreement."""
    from prefline.data.diff import diff_versions

    out: dict[str, Any] = {"old": f"{old['name']}@{old['version']}" if old else None, "new": f"{new['name']}@{new['version']}"}
    if old is not None and old["id"] != new["id"]:
        diff = diff_versions(old, new, bias=False)
        out.update({k: diff[k] for k in ("added", "removed", "kept", "changed_share", "major_change", "by_source", "by_slice")})
    profiles = {"old": _profile(old, slice_keys) if old else None, "new": _profile(new, slice_keys)}
    out["profile"] = profiles
    return out


def _profile(dataset: dict[str, Any], slice_keys: list[str]) -> dict[str, Any]:
    """Bias shares of one version, overall and per value of ``slice_keys`` (``key=value``), plus mean consensus confidence."""
    import pyarrow.parquet as pq

    from prefline.data.coverage import bias_stats
    from prefline.data.diff import BIAS_KEYS
    from prefline.data.quality import scan

    features = scan(dataset, light=True)
    slices = sorted({f"{k}={v}" for tags in features.slices for k, v in tags.items() if k in slice_keys})
    out = {}
    for name in ["overall", *slices]:
        if name == "overall":
            mask: Any = slice(None)
        else:
            key, value = name.split("=", 1)
            codes = [i for i, tags in enumerate(features.slices) if str(tags.get(key)) == value]
            mask = np.isin(features.slices_code, codes)
        stats = bias_stats(mask, features.chosen_words, features.rejected_words, features.markers, features.sampled)
        out[name] = {"pairs": stats["pairs"], **{k: stats[k] for k in BIAS_KEYS if k in stats}}
    # agreement: the consensus confidence of the pairs' labels; weight: what each pair's loss counted in training
    names = pq.ParquetFile(dataset["path"]).schema_arrow.names
    for column, label in (("confidence", "agreement"), ("weight", "weight_mean")):
        if column in names:
            values = pq.read_table(dataset["path"], columns=[column]).column(column).to_numpy(zero_copy_only=False).astype(float)
            values = values[~np.isnan(values)]
            out["overall"][label] = round(float(values.mean()), 4) if values.size else None
    return out


def config_change(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"old": old.get(k), "new": new.get(k)} for k in CONFIG_KEYS if old.get(k) != new.get(k) and (k in old or k in new)}


# --- likely causes -------------------------------------------------------------------------


def likely_causes(findings: list[Finding], lineage: dict[str, Any]) -> list[Cause]:
    """Data and config changes whose signature matches the regressions, most likely first."""
    data, config = lineage.get("data"), lineage.get("config") or {}
    if data is None:
        return []
    causes: list[Cause] = []
    families: dict[str, list[Finding]] = {}
    for f in findings:
        if f.family:
            families.setdefault(f.family, []).append(f)
    old_profile, new_profile = (data["profile"]["old"] or {}), data["profile"]["new"]
    for family, matched in families.items():
        regressed = {f.slice for f in matched} | {e["slice"] for f in matched for e in f.explains}
        for key, push in SIGNATURES[family]["data"]:
            cause = _data_cause(family, key, push, matched, regressed, old_profile, new_profile, data)
            if cause is not None:
                causes.append(cause)
        for key, push in SIGNATURES[family]["config"]:
            if key in config and _moved(config[key], push):
                causes.append(Cause("config", key, config[key]["old"], config[key]["new"], "training",
                                    [f"{f.metric}@{f.slice}" for f in matched],
                                    f"training setting {key} changed from {config[key]['old']} to {config[key]['new']}, "
                                    f"which pushes toward {family}", 0.3))
    for key, push in DRIFT_CONFIG.items():
        if key in config and _moved(config[key], push) and findings and not any(c.change == key for c in causes):
            causes.append(Cause("config", key, config[key]["old"], config[key]["new"], "training", [f"{f.metric}@{f.slice}" for f in findings],
                                f"training setting {key} changed from {config[key]['old']} to {config[key]['new']}: "
                                "a larger step away from the base model, which can move any metric", 0.2))
    if "method" in config:
        causes.append(Cause("config", "method", config["method"]["old"], config["method"]["new"], "training",
                            [f"{f.metric}@{f.slice}" for f in findings],
                            f"training method changed from {config['method']['old']} to {config['method']['new']}", 0.25))
    agreement = [(data["profile"][side] or {}).get("overall", {}).get("agreement") for side in ("old", "new")]
    if findings and None not in agreement and agreement[0] - agreement[1] >= 0.05:
        causes.append(Cause("data", "agreement", agreement[0], agreement[1], "overall", [f"{f.metric}@{f.slice}" for f in findings],
                            f"labels agree less: mean consensus confidence fell from {agreement[0]:.2f} in {data['old']} to "
                            f"{agreement[1]:.2f} in {data['new']}; noisier preferences can move any behaviour", 0.25))
    weights = [(data["profile"][side] or {}).get("overall", {}).get("weight_mean") for side in ("old", "new")]
    if findings and None not in weights and abs(weights[1] - weights[0]) >= 0.05:
        causes.append(Cause("data", "weight_mean", weights[0], weights[1], "overall", [f"{f.metric}@{f.slice}" for f in findings],
                            f"per-pair training weights changed: mean {weights[0]:.2f} in {data['old']}, {weights[1]:.2f} in "
                            f"{data['new']}; pairs now count differently in the loss", 0.2))
    if data.get("major_change"):
        causes.append(Cause("data", "changed_share", None, data["changed_share"], "overall", [f"{f.metric}@{f.slice}" for f in findings],
                            f"{data['changed_share']:.0%} of the pairs changed from {data['old']} to {data['new']} "
                            f"({data['added']} added, {data['removed']} removed): a major data change", 0.2))
    return sorted(causes, key=lambda c: -c.confidence)


def _data_cause(family: str, key: str, push: int, matched: list[Finding], regressed: set[str], old_profile: dict[str, Any],
                new_profile: dict[str, Any], data: dict[str, Any]) -> Cause | None:
    """One data signal (e.g. ``chosen_longer``) against one problem family: overall, in the slices that
    regressed, and in the slices that did not (a change confined to the regressing slices is stronger evidence)."""
    def shift(where: str) -> tuple[float | None, float | None, float | None]:
        new = (new_profile.get(where) or {}).get(key)
        if new is None:
            return None, None, None
        old = (old_profile.get(where) or {}).get(key)
        # without a baseline dataset (a base-model baseline) a share is compared with an even split
        return old, new, push * (new - (old if old is not None else 0.5))

    old, new, overall = shift("overall")
    if new is None:
        return None
    inside = {w: shift(w) for w in sorted(regressed - {"overall"}) if w in new_profile}
    outside = {w: shift(w) for w in sorted(set(new_profile) - regressed - {"overall"})
               if w.split("=", 1)[0] in {r.split("=", 1)[0] for r in inside}}
    moves = [overall] + [m for _, _, m in inside.values() if m is not None]
    strongest = max(moves)
    if strongest <= 0.05:
        return None
    # grows with the size of the shift: 0.1 -> 0.44, 0.2 -> 0.66, 0.33 -> 0.80 (x 0.9)
    confidence = MAX_CONFIDENCE * (1 - np.exp(-strongest / 0.15))
    calm = [m for _, _, m in outside.values() if m is not None]
    if inside and calm and max(calm) >= strongest / 2:
        confidence *= 0.75  # the data moved as much where nothing regressed: weaker evidence

    def part(where: str, values: tuple) -> str:
        was, now, _ = values
        return f"{where} {was:.2f} -> {now:.2f}" if was is not None else f"{where} {now:.2f}"

    was = f"{old:.2f} in {data['old']}" if old is not None else "an even 0.50 split (the baseline had no training data)"
    evidence = f"{_label(key)} {'rose' if new > (old if old is not None else 0.5) else 'fell'} from {was} to {new:.2f} in {data['new']}"
    evidence += f" ({new_profile['overall']['pairs']} pairs)"
    if inside:
        evidence += "; in the slices that regressed: " + ", ".join(part(w, v) for w, v in inside.items())
    if outside:
        evidence += "; elsewhere: " + ", ".join(part(w, v) for w, v in outside.items())
    evidence += f"; matches the {family} regression in " + ", ".join(f"{f.metric} {f.slice} ({f.diff:+.3g})" for f in matched)
    return Cause("data", key, old, new, "overall", [f"{f.metric}@{f.slice}" for f in matched], evidence, round(float(confidence), 2))


def _moved(change: dict[str, Any], push: int) -> bool:
    old, new = change["old"], change["new"]
    if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
        return False
    return (new - old) * push > 0


def _label(key: str) -> str:
    return {"chosen_longer": "share of pairs whose chosen response is longer",
            "chosen_refuses": "share of chosen responses that refuse", "rejected_refuses": "share of rejected responses that refuse",
            "chosen_hedges": "share of chosen responses that hedge", "rejected_hedges": "share of rejected responses that hedge",
            "chosen_cites": "share of chosen responses that cite"}.get(key, key)


__all__ = ["Cause", "Diagnosis", "Finding", "SIGNATURES", "diagnose", "likely_causes", "paired_effect_sizes", "regressions"]
