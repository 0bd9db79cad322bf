"""The releases report: per surface, what went live when (promotions, rollbacks, pins) with each release's
metrics over time, and the tradeoff chart (win rate or pair accuracy against over-refusal and verbosity, one
point per release or gated candidate) so the tradeoff surface is visible.

``release_data`` is the JSON (``prefline report release [--surface S] --json``): ``prefline release
history --json`` per surface, each row with its run's overall metrics and intervals and its preference
results, plus the candidates gated against that surface's releases that did not go live.
``release_html`` and ``release_markdown`` render only from it.
"""

from __future__ import annotations

from typing import Any

from prefline.errors import PreflineError
from prefline.ledger import Ledger

REPORT_VERSION = 1
# What a reviewer follows over time, by theme: the first metric of each list the runs have is drawn.
THEMES = {
    "refusal": ["over_refusal", "under_refusal", "refusal"],
    "verbosity": ["length_tokens", "length_words", "voice_speaking_time_s"],
    "hedging": ["hedging_rate", "hedged"],
    "citation support": ["unsupported_claim", "fabricated_citation", "cites_unprovided"],
    "instruction following": ["instruction_strict_rate", "instruction_strict", "instruction_loose_rate"],
    "win rate": ["win_rate", "pair_accuracy"],
    "latency": ["latency_s", "ttft_s"],
}
# Tradeoff axes: the benefit up (first one any point has), the costs across.
BENEFITS = [("win_rate", "preference win rate"), ("pair_accuracy", "held-out pair accuracy"),
            ("instruction_strict_rate", "instruction following (strict)")]
COSTS = [("over_refusal", "over-refusal"), ("length_tokens", "verbosity: mean length (tokens)")]


def _run_point(ledger: Ledger, run_id: int) -> dict[str, Any]:
    """A run's overall mean and interval per metric, with its preference results as metrics too."""
    from prefline.report.run import preference_results

    run = ledger.get_run(run_id)
    summary = run.get("summary") or {}
    metrics = {m: {"mean": s["overall"]["mean"], "ci": s["overall"].get("ci"), "n": s["overall"].get("n")}
               for m, s in sorted(summary.items()) if "overall" in s}
    for p in preference_results(ledger, run):
        key = "win_rate" if p["kind"] == "win_rate" else "pair_accuracy"
        if p["mean"] is not None:
            metrics[key] = {"mean": p["mean"], "ci": p["ci"], "n": p["n"]}
    adapter = ledger.get_adapter(str(run["adapter_id"]), finished=False)["name"] if run["adapter_id"] else "base"
    return {"run_id": run_id, "adapter": adapter, "suite": run["suite_name"], "metrics": metrics}


def release_data(ledger: Ledger, surface: str | None = None) -> dict[str, Any]:
    from prefline.release import history

    rows = history(ledger, surface)
    if not rows:
        raise PreflineError(f"nothing was ever released on {surface}; `prefline release promote ADAPTER --surface {surface}`" if surface
                            else "nothing was ever released; `prefline release promote ADAPTER --surface S` makes the first release")
    decisions = ledger.gate_decisions()
    surfaces = []
    for name in sorted({r["surface"] for r in rows}):
        mine = [r for r in rows if r["surface"] == name]
        released_runs = {r["run_id"] for r in mine}
        releases = []
        for r in mine:
            point = _run_point(ledger, r["run_id"])
            releases.append({"id": r["id"], "seq": r["seq"], "action": r["action"], "adapter": r["adapter_name"], "run_id": r["run_id"],
                             "created_at": r["created_at"], "verdict": r["verdict"], "decision_id": r["decision_id"], "forced": r["forced"],
                             "reason": r["reason"], "actor": r["actor"], "metrics": point["metrics"],
                             "outcome": r.get("outcome")})
        candidates = {}
        for d in decisions:
            if d["baseline_run_id"] in released_runs and d["candidate_run_id"] not in released_runs:
                point = _run_point(ledger, d["candidate_run_id"])
                candidates[d["candidate_run_id"]] = {"decision_id": d["id"], "verdict": d["verdict"], "created_at": d["created_at"],
                                                     "against_run": d["baseline_run_id"], **point}
        surfaces.append({"surface": name, "releases": releases, "candidates": list(candidates.values())})
    return {"kind": "prefline.release_report", "report_version": REPORT_VERSION, "surface": surface, "surfaces": surfaces}


def _label(r: dict[str, Any]) -> str:
    return f"#{r['seq']} {r['adapter']}" + {"rollback": " (rollback)", "pin": " (pin)"}.get(r["action"], "")


def themes(surface: dict[str, Any]) -> dict[str, str]:
    """Theme -> the metric drawn for it, for the themes the surface's releases have."""
    have = {m for r in surface["releases"] for m in r["metrics"]}
    return {theme: next(m for m in metrics if m in have) for theme, metrics in THEMES.items() if any(m in have for m in metrics)}


def tradeoff_points(surface: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """One point per release that put something live, and per gated candidate: the benefit and the costs."""
    entries = [(r, "release", _label(r)) for r in surface["releases"] if r["action"] != "pin"]
    entries += [(c, "candidate", f"run {c['run_id']} {c['adapter']} ({c['verdict']})") for c in surface["candidates"]]
    benefit = next(((k, label) for k, label in BENEFITS if any(k in e["metrics"] for e, _, _ in entries)), (None, None))
    points = []
    for e, kind, label in entries:
        point = {"label": label, "kind": kind, "y": (e["metrics"].get(benefit[0]) or {}).get("mean") if benefit[0] else None}
        for key, _ in COSTS:
            point[key] = (e["metrics"].get(key) or {}).get("mean")
        points.append(point)
    return points, benefit[0], benefit[1]


def _charts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from prefline.report.plots import timeline_chart, tradeoff_chart

    out = {}
    for s in data["surfaces"]:
        live = [r for r in s["releases"] if r["action"] != "pin"]
        labels = [_label(r) for r in live]
        charts = {}
        for theme, metric in themes(s).items():
            values = [(r["metrics"].get(metric) or {}).get("mean") for r in live]
            shares = all(v is None or 0.0 <= v <= 1.0 for v in values) and metric not in ("length_tokens", "latency_s", "ttft_s")
            charts[theme] = timeline_chart(labels, {metric: values}, f"{theme}: {metric}", metric, ylim=(0.0, 1.0) if shares else None)
        points, key, label = tradeoff_points(s)
        if key is not None:
            charts["tradeoff"] = tradeoff_chart(points, label, [(k, lab) for k, lab in COSTS], f"{s['surface']}: {label} against its costs")
        out[s["surface"]] = {k: v for k, v in charts.items() if v is not None}
    return out


def release_html(data: dict[str, Any]) -> str:
    from prefline.report.html import render

    return render("release_report.html.j2", r=data, charts=_charts(data), themes={s["surface"]: themes(s) for s in data["surfaces"]},
                  benefits={s["surface"]: tradeoff_points(s)[2] for s in data["surfaces"]}, label=_label)


def release_markdown(data: dict[str, Any], html_path: str | None = None) -> str:
    from prefline.report.markdown import cell, table

    lines = ["### Releases" + (f" on {cell(data['surface'])}" if data["surface"] else ""), ""]
    for s in data["surfaces"]:
        picked = themes(s)
        rows = []
        for r in s["releases"]:
            result = ("recovery confirmed" if (r.get("outcome") or {}).get("confirmed") else "recovery not confirmed") if r["action"] == "rollback" \
                else ("pinned reference" if r["action"] == "pin" else (r["verdict"] or "first release") + (" (forced)" if r["forced"] else ""))
            rows.append([r["seq"], f"{r['created_at']:%Y-%m-%d %H:%M}" if hasattr(r["created_at"], "strftime") else r["created_at"],
                         r["action"], r["adapter"], r["run_id"], result,
                         *[f"{r['metrics'][m]['mean']:.3f}" if m in r["metrics"] else "-" for m in picked.values()]])
        live = next((r["adapter"] for r in reversed(s["releases"]) if r["action"] != "pin"), "-")
        lines += [f"**{cell(s['surface'])}** (live: {cell(live)})", "",
                  table(["#", "at (UTC)", "action", "adapter", "run", "result", *picked.values()], rows), ""]
        if s["candidates"]:
            lines.append("Gated but not released: " + ", ".join(f"run {c['run_id']} ({cell(c['adapter'])}, {c['verdict']}, decision {c['decision_id']})"
                                                               for c in s["candidates"]))
            lines.append("")
    if html_path:
        lines.append(f"Full report: `{html_path}`")
    return "\n".join(lines).rstrip() + "\n"
