"""A diagnosis in the terminal: findings by rank, likely causes, and the items that moved most."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from prefline.gate.diagnose import Diagnosis


def _num(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1000 else f"{x:.0f}"


def findings_table(result: Diagnosis) -> Table:
    table = Table(title=f"regressions of run {result.candidate_run} vs run {result.baseline_run}, by effect size "
                        f"(adjusted p <= {result.alpha:g}, {result.correction}; {escape(result.scope)})", title_justify="left")
    for column in ["#", "category", "metric", "slice", "n", "baseline", "candidate", "change [90% CI]", "p adj", "effect", "explains"]:
        table.add_column(column)
    for rank, f in enumerate(result.findings, start=1):
        explains = ", ".join(e["slice"] for e in f.explains) or ("beyond overall" if f.beyond_overall else "")
        table.add_row(str(rank), f.category, escape(f.metric), escape(f.slice), str(f.n), _num(f.baseline), _num(f.candidate),
                      f"{f.diff:+.3f} [{f.ci_low:+.3f}, {f.ci_high:+.3f}]", f"{f.p_adjusted:.2g}",
                      f"{f.effect_size:.2f}" if f.effect_size is not None else "unbounded", escape(explains))
    return table


def print_diagnosis(console, result: Diagnosis) -> None:  # noqa: ANN001
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    if result.findings:
        console.print(findings_table(result))
        groups = "; ".join(f"{category}: " + ", ".join(f"{s} ({', '.join(m)})" for s, m in slices.items())
                           for category, slices in result.by_category().items())
        console.print(f"by category: {groups}", markup=False)
    lineage = result.lineage
    for label in ("baseline", "candidate"):
        side = lineage[label]
        what = (f"adapter {side['adapter']} ({side['method']}) trained on {side['dataset']}" if side.get("adapter")
                else f"the base model {side['model']}")
        console.print(f"{label}: run {side['run']}, {what}", markup=False)
    data, config = lineage.get("data"), lineage.get("config")
    if data and data.get("old") and "added" in data:
        sources = ", ".join(f"{escape(k)} {v['old']} -> {v['new']}" for k, v in data["by_source"].items() if v["change"]) or "no source changed size"
        console.print(f"data: {escape(data['old'])} -> {escape(data['new'])}: {data['added']} pairs added, {data['removed']} removed "
                      f"({data['changed_share']:.0%} changed{', a major change' if data['major_change'] else ''}); by source: {sources}")
    if config:
        console.print("training config changed: " + escape(", ".join(f"{k} {v['old']} -> {v['new']}" for k, v in config.items())))
    if result.causes:
        table = Table(title="likely causes (confidence is evidence strength, never certainty)", title_justify="left")
        for column in ["confidence", "kind", "change", "evidence"]:
            table.add_column(column)
        for cause in result.causes:
            table.add_row(f"{cause.confidence:.2f}", cause.kind, escape(cause.change), escape(cause.evidence))
        console.print(table)
    elif result.findings:
        console.print("likely causes: none found in the lineage (no data or config change matches these regressions)", markup=False)
    for f in result.findings:
        if not f.items:
            continue
        table = Table(title=f"items that moved most: {escape(f.metric)} in {escape(f.slice)}", title_justify="left", show_lines=True)
        for column in ["item", "prompt", f"baseline ({escape(f.metric)})", f"candidate ({escape(f.metric)})"]:
            table.add_column(column, overflow="fold")
        for item in f.items:
            table.add_row(escape(item["item_id"]), escape(item["prompt"][:200]),
                          f"{_num(item['baseline'])}: {escape(item['baseline_output'][:300])}",
                          f"{_num(item['candidate'])}: {escape(item['candidate_output'][:300])}")
        console.print(table)
