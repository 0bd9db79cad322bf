"""The report of one eval run: what was evaluated (model, adapter, suite, dataset lineage, backend),
its metrics by layer with intervals, the per-slice table, and every item with its response and scores.

``run_data`` builds the report's JSON (``prefline report run RUN --json`` prints it): the run's
export (``prefline runs export``) plus the context a reader needs. ``run_html`` and
``run_markdown`` render only from that JSON.
"""

from __future__ import annotations

from typing import Any

from prefline.ledger import Ledger

REPORT_VERSION = 1
SECTIONS = ("preference", "behaviour", "evidence", "style")
SECTION_TITLES = {
    "preference": "Preference: does the judge or the held-out data prefer it",
    "behaviour": "Behaviour: does it do what was asked",
    "evidence": "Evidence: is what it says supported",
    "style": "Style: length, refusals, hedging, voice, latency",
}


def run_context(ledger: Ledger, run: dict[str, Any]) -> dict[str, Any]:
    """Names and lineage for a run's ids: suite name/version/hash, adapter, its dataset and that dataset's parents."""
    from prefline.data.lineage import backfill, lineage

    suite_row = ledger.get_suite(run["suite_hash"])
    context: dict[str, Any] = {
        "suite": {"name": run["suite_name"], "version": suite_row["version"] if suite_row else None, "hash": run["suite_hash"],
                  "frozen": bool(suite_row["frozen"]) if suite_row else None,
                  "items": len(suite_row["items"]) if suite_row else None},
        "model": {"name": run["model"], "hash": run["model_hash"]},
        "adapter": None, "dataset": None,
    }
    if run["adapter_id"]:
        adapter = ledger.get_adapter(run["adapter_id"], finished=False)
        context["adapter"] = {"id": adapter["id"], "name": adapter["name"], "method": adapter["method"], "hash": run["adapter_hash"],
                              "surface": adapter["surface"], "seed": adapter["seed"]}
        dataset = next((d for d in ledger.list_datasets() if d["id"] == adapter["dataset_id"]), None)
        if dataset is not None:
            backfill(ledger, dataset)  # an ingested version's link to its previous one, recorded once
            context["dataset"] = {"id": dataset["id"], "name": dataset["name"], "version": dataset["version"],
                                  "hash": dataset["content_hash"], "pairs": dataset.get("n_pairs") or dataset["n_accepted"],
                                  "lineage": lineage(ledger, dataset)["parents"]}
    return context


def preference_results(ledger: Ledger, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The preference layer recorded for this run: win rates where it is the candidate, pair accuracy of its adapter."""
    out = []
    for row in ledger.preference_evals():
        overall = (row["summary"].get("slices") or {}).get("overall") or {}
        if row["kind"] == "win_rate" and row["candidate_run_id"] == run["id"]:
            out.append({"evaluation": row["id"], "kind": "win_rate", "metric": "win rate (raw)", "n": overall.get("n"),
                        "mean": (overall.get("raw") or {}).get("estimate"), "ci": (overall.get("raw") or {}).get("ci"),
                        "against": f"run {row['baseline_run_id']}", "judge": row["judge"],
                        "length_controlled": overall.get("length_controlled"), "flip_rate": overall.get("flip_rate")})
        elif row["kind"] != "win_rate" and run["adapter_id"] and row["adapter_id"] == run["adapter_id"]:
            out.append({"evaluation": row["id"], "kind": row["kind"], "metric": row["kind"].replace("_", " "), "n": overall.get("n"),
                        "mean": overall.get("accuracy"), "ci": overall.get("ci"), "against": row["summary"].get("dataset")})
    return out


def run_data(ledger: Ledger, run_ref: int | str) -> dict[str, Any]:
    """The run report's JSON: the run export, its context, metrics grouped by section, and the slice table."""
    from prefline.evals.run import export_run
    from prefline.evals.scorers import SCORERS, get_scorers

    export = export_run(run_ref, ledger)
    run = export["run"]
    get_scorers(None)
    summary = export["summary"] or {}
    sections: dict[str, list[dict[str, Any]]] = {s: [] for s in SECTIONS}
    for metric, meta in export["metrics"].items():
        overall = summary.get(metric, {}).get("overall")
        if overall is None:
            continue
        scorer = SCORERS.get(meta["scorer"])
        section = scorer.section if scorer else meta["layer"]
        sections.setdefault(section, []).append({"metric": metric, **meta, "n": overall["n"], "mean": overall["mean"], "ci": overall["ci"]})
    slice_names = sorted({name for by_slice in summary.values() for name in by_slice if name != "overall"})
    metrics = [m["metric"] for s in SECTIONS for m in sections.get(s, [])]
    slices = [{"slice": name, "metrics": {m: summary[m][name] for m in metrics if name in summary.get(m, {})}} for name in slice_names]
    return {
        "kind": "prefline.run_report", "report_version": REPORT_VERSION,
        "context": run_context(ledger, {**run, "summary": summary}),
        "sections": {s: rows for s, rows in sections.items() if rows},
        "preference": preference_results(ledger, run),
        "slices": slices,
        "export": export,
    }


def _charts(data: dict[str, Any]) -> dict[str, Any]:
    """Per section with at least one metric in [0, 1]: the overall means with intervals."""
    from prefline.report.plots import interval_chart

    charts = {}
    for section, rows in data["sections"].items():
        shares = [{"label": r["metric"], "mean": r["mean"], "ci": r["ci"]} for r in rows
                  if r["mean"] is not None and 0.0 <= r["ci"][0] and r["ci"][1] <= 1.0 and r["direction"] != "neutral"]
        chart = interval_chart(shares, f"{section}: overall mean and 90% interval", "share of items (0 to 1)") if shares else None
        if chart is not None:
            charts[section] = chart
    return charts


def run_html(data: dict[str, Any]) -> str:
    from prefline.report.html import render

    metrics = [m for rows in data["sections"].values() for m in rows]
    return render("run_report.html.j2", r=data, titles=SECTION_TITLES, metrics=metrics, charts=_charts(data))


def run_markdown(data: dict[str, Any], html_path: str | None = None) -> str:
    """A pull-request-sized summary: what ran, every overall metric with its interval, the HTML's path."""
    from prefline.report.markdown import table

    c, run = data["context"], data["export"]["run"]
    adapter = f" + adapter `{c['adapter']['name']}`" if c["adapter"] else " (base model)"
    suite = f"{c['suite']['name']}" + (f" v{c['suite']['version']}" if c["suite"]["version"] is not None else "")
    lines = [f"### Eval run {run['id']}: `{c['model']['name']}`{adapter} on suite {suite}", ""]
    if c["dataset"]:
        lines.append(f"Trained on dataset {c['dataset']['name']}@{c['dataset']['version']} ({c['dataset']['pairs']} pairs).")
    lines.append(f"{len(data['export']['items'])} items, backend {run['backend']}, status {run['status']}, finished {run['finished_at'] or '-'}.")
    lines.append("")
    rows = [[section, m["metric"], m["direction"], f"{m['mean']:.3f}", f"[{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]", m["n"]]
            for section, ms in data["sections"].items() for m in ms]
    rows += [["preference", p["metric"], "higher", f"{p['mean']:.3f}" if p["mean"] is not None else "-",
              f"[{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]" if p["ci"] else "-", p["n"]] for p in data["preference"]]
    lines.append(table(["layer", "metric", "better", "mean", "90% interval", "n"], rows))
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines) + "\n"
