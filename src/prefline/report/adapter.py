"""The report of one adapter: its lineage (base model, dataset and that dataset's parents, config,
software), its training curves (loss, reward margin, reward accuracy, per step) and the drift-probe
trajectory (mean response length and refusal rate on fixed prompts while it trained).

``adapter_data`` is the JSON (``prefline report adapter NAME --json``); it holds what
``prefline adapters show NAME --json`` gives plus the dataset's lineage. ``adapter_html`` and
``adapter_markdown`` render only from it.
"""

from __future__ import annotations

from typing import Any

from prefline.ledger import Ledger

REPORT_VERSION = 1
# Step metrics drawn as training curves, by what each method logs (DPO family, reward model, SFT).
CURVES = {
    "loss": ("loss", ["loss"]),
    "margin": ("reward margin (chosen − rejected)", ["rewards/margins", "margin"]),
    "accuracy": ("reward accuracy (chosen scored higher)", ["rewards/accuracies", "accuracy", "mean_token_accuracy"]),
}


def adapter_data(ledger: Ledger, name: str) -> dict[str, Any]:
    from prefline.data.lineage import backfill, lineage

    adapter = ledger.get_adapter(name, finished=False)
    dataset = next((d for d in ledger.list_datasets() if d["id"] == adapter["dataset_id"]), None)
    data_context = None
    if dataset is not None:
        backfill(ledger, dataset)  # an ingested version's link to its previous one, recorded once
        data_context = {"id": dataset["id"], "name": dataset["name"], "version": dataset["version"], "hash": dataset["content_hash"],
                        "pairs": dataset.get("n_pairs") or dataset["n_accepted"], "lineage": lineage(ledger, dataset)["parents"]}
    taken = ledger.probes(adapter["id"])
    return {
        "kind": "prefline.adapter_report", "report_version": REPORT_VERSION,
        "adapter": adapter,
        "dataset": data_context,
        "steps": [{"step": s["step"], "metrics": s["metrics"]} for s in ledger.train_steps(adapter["id"])],
        "probes": [{"step": p.step, "metrics": p.metrics, "outputs": p.outputs} for p in taken],
        "runs": [{"id": r["id"], "suite": r["suite_name"], "status": r["status"], "created_at": r["created_at"]}
                 for r in ledger.list_runs() if r["adapter_id"] == adapter["id"]],
    }


def curves(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each curve, the first logged key that any step carries, with its (step, value) points."""
    out = {}
    for curve, (label, keys) in CURVES.items():
        for key in keys:
            points = [(s["step"], s["metrics"][key]) for s in steps if s["metrics"].get(key) is not None]
            if points:
                out[curve] = {"label": label, "key": key, "steps": [p[0] for p in points], "values": [p[1] for p in points]}
                break
    return out


def _charts(data: dict[str, Any]) -> dict[str, Any]:
    from prefline.report.plots import line_chart

    charts = {}
    for curve, c in curves(data["steps"]).items():
        reference = 0.5 if curve == "accuracy" else (0.0 if curve == "margin" else None)
        charts[curve] = line_chart({c["key"]: (c["steps"], c["values"])}, c["label"], "step", c["key"], reference=reference,
                                   ylim=(0.0, 1.0) if curve == "accuracy" else None)
    probes = data["probes"]
    if probes:
        steps = [p["step"] for p in probes]
        charts["probe_length"] = line_chart({"mean length": (steps, [p["metrics"]["length_tokens"] for p in probes])},
                                            "drift probe: mean response length", "step", "tokens")
        charts["probe_refusal"] = line_chart({"refusal rate": (steps, [p["metrics"]["refusal"] for p in probes])},
                                             "drift probe: refusal rate", "step", "share of probe prompts", ylim=(0.0, 1.0))
    return {k: v for k, v in charts.items() if v is not None}


def adapter_html(data: dict[str, Any]) -> str:
    from prefline.report.html import render

    return render("adapter_report.html.j2", r=data, a=data["adapter"], curves=curves(data["steps"]), charts=_charts(data))


def adapter_markdown(data: dict[str, Any], html_path: str | None = None) -> str:
    from prefline.report.markdown import table

    a, d = data["adapter"], data["dataset"]
    lines = [f"### Adapter `{a['name']}` ({a['method']}, status {a['status']})", "",
             f"Base model `{a['base_model']}`; dataset " + (f"{d['name']}@{d['version']} ({d['pairs']} pairs)" if d else f"id {a['dataset_id']}")
             + f"; seed {a['seed']}.", ""]
    rows = []
    for c in curves(data["steps"]).values():
        rows.append([c["label"], c["key"], f"{c['values'][0]:.4g}", f"{c['values'][-1]:.4g}", len(c["values"])])
    if data["probes"]:
        first, last = data["probes"][0]["metrics"], data["probes"][-1]["metrics"]
        rows.append(["drift probe: mean length (tokens)", "length_tokens", f"{first['length_tokens']:.1f}", f"{last['length_tokens']:.1f}", len(data["probes"])])
        rows.append(["drift probe: refusal rate", "refusal", f"{first['refusal']:.2f}", f"{last['refusal']:.2f}", len(data["probes"])])
    lines.append(table(["curve", "key", "first", "last", "points"], rows) if rows else "No step metrics recorded.")
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines) + "\n"
