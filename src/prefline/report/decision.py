"""Reports of decisions: a comparison or a stored gate decision, a diagnosis, and the capability summary.

``compare_data`` (``prefline report compare A B --json``) and ``gate_data`` (``prefline report gate
DECISION --json``) build the same JSON: both runs' context, the paired comparison of every metric in
every slice (``prefline compare --json``), the gate's checks and verdict (``prefline gate --json``;
for a stored decision, exactly what was stored), the diagnosis (``prefline diagnose --json``) and the
capability summary's sentences. ``diagnose_data`` is the diagnosis alone with both runs' context.
``decision_html`` / ``decision_markdown`` and ``diagnose_html`` / ``diagnose_markdown`` render only
from that JSON.
"""

from __future__ import annotations

from typing import Any

from prefline.errors import PreflineError
from prefline.ledger import Ledger

REPORT_VERSION = 1
STATUS_ORDER = ("fail", "inconclusive", "pass", "not applicable")

# What a metric measures, in words for the capability summary; others are shown by their name.
PHRASES = {
    "over_refusal": "refusing requests it should answer", "under_refusal": "answering requests it should refuse",
    "refusal": "refusing", "partial_refusal": "partly refusing", "length_tokens": "response length (tokens)",
    "length_words": "response length (words)", "length_sentences": "response length (sentences)",
    "length_ratio_reference": "length relative to the reference answer", "hedging_rate": "hedging",
    "hedged": "hedged responses", "disclaimer": "disclaimers", "mirroring": "mirroring the user", "sycophancy": "sycophancy",
    "voice_speaking_time_s": "speaking time (s)", "voice_unspeakable": "responses that cannot be spoken",
    "voice_too_long": "responses too long for voice", "latency_s": "latency (s)", "ttft_s": "time to first token (s)",
    "tokens_per_s": "tokens per second", "instruction_strict": "instructions followed (strict)",
    "instruction_loose": "instructions followed (loose)", "instruction_strict_rate": "instruction following rate (strict)",
    "instruction_loose_rate": "instruction following rate (loose)", "json_valid": "valid JSON", "schema_valid": "schema-valid output",
    "tool_call_correct": "correct tool calls", "tool_name_correct": "correct tool names", "on_task": "staying on task",
    "off_task": "going off task", "inconsistent": "inconsistent answers", "fabricated_citation": "fabricated citations",
    "cites_unprovided": "citing sources it was not given", "unsupported_claim": "claims the documents do not support",
    "abstained": "abstaining when it does not know", "false_abstention": "abstaining when the answer was known",
    "confident_wrong": "confidently wrong answers", "fabrication": "fabrication", "omission": "omissions",
    "conflation": "conflation", "hallucination": "hallucination",
}
# Metrics whose values are counts, seconds or tokens rather than shares of items.
NOT_SHARES = {"length_tokens", "length_words", "length_sentences", "length_ratio_reference", "voice_speaking_time_s", "latency_s",
              "ttft_s", "tokens_per_s", "output_tokens", "citation_count"}
# Capability summary: how the model behaves (by scorer section) vs what it knows (evidence: items with references or documents).
BEHAVES = {"style": "Style, refusal and voice", "behaviour": "Format and instructions"}
KNOWS = {"evidence": "What it knows: answers checked against reference answers or documents"}


# --- data --------------------------------------------------------------------------------------


def _run_side(ledger: Ledger, run_id: int) -> dict[str, Any]:
    from prefline.report.run import run_context

    run = ledger.get_run(run_id)
    context = run_context(ledger, run)
    return {"id": run["id"], "created_at": run["created_at"], "finished_at": run["finished_at"], "backend": run["backend"], **context}


def _analysis(ledger: Ledger, baseline: int, candidate: int, common_items: bool, top: int, items: int, alpha: float) -> dict[str, Any]:
    from prefline.gate.comparison import compare_with_data, json_ready
    from prefline.gate.diagnose import diagnose

    compared = compare_with_data(ledger, baseline, candidate, common_items=common_items)  # bootstrapped once, for both
    comparison = compared[0].as_dict()
    diagnosis = json_ready(diagnose(ledger, baseline, candidate, alpha=alpha, top=top, items=items, common_items=common_items,
                                    compared=compared).as_dict())
    return {"runs": {"baseline": _run_side(ledger, baseline), "candidate": _run_side(ledger, candidate)},
            "comparison": comparison, "diagnosis": diagnosis, "capability": capability(comparison)}


def compare_data(ledger: Ledger, baseline: int | str, candidate: int | str, *, policy: str | None = None, reference: int | str | None = None,
                 common_items: bool = False, top: int = 5, items: int = 3, alpha: float = 0.05) -> dict[str, Any]:
    """The comparison report's JSON: the gate under ``policy`` (not recorded as a decision), the comparison and the diagnosis."""
    from prefline.config import load_policy
    from prefline.gate.compare import compare_runs

    gate = compare_runs(ledger, baseline, candidate, load_policy(policy), record=False, reference_run=reference, common_items=common_items)
    return {"kind": "prefline.compare_report", "report_version": REPORT_VERSION, "decision": None, "gate": gate.as_dict(),
            **_analysis(ledger, gate.baseline_run, gate.candidate_run, common_items, top, items, alpha)}


def gate_data(ledger: Ledger, decision: int | str, *, top: int = 5, items: int = 3, alpha: float = 0.05) -> dict[str, Any]:
    """A stored gate decision's report JSON: the decision as stored, with the comparison and diagnosis of its two runs."""
    try:
        decision_id = int(decision)
    except (TypeError, ValueError):
        raise PreflineError(f"gate decision must be an id (a number), got {decision!r}; `prefline release history` lists them") from None
    row = ledger.get_gate_decision(decision_id)
    if row is None:
        raise PreflineError(f"unknown gate decision {decision_id}; `prefline release history` lists decisions")
    gate = row["results"]
    common = any("--common-items" in note for note in gate.get("notes", []))
    return {"kind": "prefline.gate_report", "report_version": REPORT_VERSION,
            "decision": {"id": row["id"], "created_at": row["created_at"], "verdict": row["verdict"], "policy": row["policy"]},
            "gate": gate, **_analysis(ledger, row["baseline_run_id"], row["candidate_run_id"], common, top, items, alpha)}


def diagnose_data(ledger: Ledger, baseline: int | str, candidate: int | str, *, alpha: float = 0.05, top: int = 5, items: int = 3,
                  common_items: bool = False) -> dict[str, Any]:
    """The diagnosis report's JSON: ``prefline diagnose --json`` with both runs' context."""
    from prefline.gate.comparison import json_ready
    from prefline.gate.diagnose import diagnose

    result = diagnose(ledger, baseline, candidate, alpha=alpha, top=top, items=items, common_items=common_items)
    return {"kind": "prefline.diagnose_report", "report_version": REPORT_VERSION,
            "runs": {"baseline": _run_side(ledger, result.baseline_run), "candidate": _run_side(ledger, result.candidate_run)},
            "diagnosis": json_ready(result.as_dict())}


def capability_data(ledger: Ledger, baseline: int | str, candidate: int | str, *, common_items: bool = False) -> dict[str, Any]:
    """The capability report's JSON, for stakeholders: both runs, the comparison, and its overall changes in sentences."""
    from prefline.gate.comparison import compare

    comparison = compare(ledger, baseline, candidate, common_items=common_items).as_dict()
    return {"kind": "prefline.capability_report", "report_version": REPORT_VERSION,
            "runs": {"baseline": _run_side(ledger, comparison["baseline_run"]), "candidate": _run_side(ledger, comparison["candidate_run"])},
            "comparison": comparison, "capability": capability(comparison)}


# --- capability summary ---------------------------------------------------------------------------


def _is_share(row: dict[str, Any]) -> bool:
    return row["metric"] not in NOT_SHARES and all(v is not None and 0.0 <= v <= 1.0 for v in (row["baseline"], row["candidate"]))


def sentence(row: dict[str, Any]) -> str:
    """One plain sentence from a comparison row: what moved, by how much, with its interval; or no detectable change."""
    what = PHRASES.get(row["metric"], row["metric"].replace("_", " "))
    what = what[0].upper() + what[1:]
    low, high, diff = row["ci_low"], row["ci_high"], row["diff"]
    if row["metric"] in NOT_SHARES or not _is_share(row):
        fmt = (lambda v: f"{v:.3g}")  # noqa: E731
        change = f"{diff:+.3g} (90% interval {low:+.3g} to {high:+.3g})"
    else:
        fmt = (lambda v: f"{v:.0%}")  # noqa: E731
        change = f"{diff * 100:+.1f} points (90% interval {low * 100:+.1f} to {high * 100:+.1f})"
    values = f"{fmt(row['baseline'])} → {fmt(row['candidate'])}, n={row['n']}"
    if low is None or high is None or low <= 0.0 <= high:
        return f"{what}: no detectable change ({values}; change {change})."
    rose = diff > 0
    better = {"higher": rose, "lower": not rose}.get(row["direction"])
    verdict = "" if better is None else (" — better" if better else " — worse")
    return f"{what} {'rose' if rose else 'fell'}: {values}; change {change}{verdict}."


def capability(comparison: dict[str, Any]) -> dict[str, Any]:
    """Overall changes in plain sentences, split into how the model behaves and what it knows."""
    from prefline.evals.scorers import SCORERS, get_scorers

    get_scorers(None)
    section = {m: s.section for s in SCORERS.values() for m in s.metrics}
    overall = [r for r in comparison["rows"] if r["slice"] == "overall" and r["direction"] != "neutral"]
    groups: dict[str, list[dict[str, Any]]] = {title: [] for title in [*BEHAVES.values(), *KNOWS.values()]}
    for row in overall:
        title = {**BEHAVES, **KNOWS}.get(section.get(row["metric"], "behaviour"), BEHAVES["behaviour"])
        moved = row["ci_low"] is not None and row["ci_high"] is not None and not row["ci_low"] <= 0.0 <= row["ci_high"]
        groups[title].append({"metric": row["metric"], "sentence": sentence(row), "moved": moved, "worse": moved and _worse(row)})
    for rows in groups.values():
        rows.sort(key=lambda r: (not r["moved"], r["metric"]))
    knows = groups[KNOWS["evidence"]]
    behaves = [row for t in BEHAVES.values() for row in groups[t]]
    return {"headline": [_headline("How it behaves", behaves), _headline("What it knows", knows)],
            "behaves": {t: groups[t] for t in BEHAVES.values()}, "knows": knows,
            "knows_note": None if knows else "No scorer that checks answers against reference answers or documents ran on this "
                                                 "suite, so what the model knows was not measured."}


def _headline(what: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"{what}: not measured on this suite."
    moved = [r for r in rows if r["moved"]]
    if not moved:
        return f"{what}: no detectable change in any of {len(rows)} measure(s)."
    worse = [PHRASES.get(r["metric"], r["metric"]) for r in moved if r["worse"]]
    better = [PHRASES.get(r["metric"], r["metric"]) for r in moved if not r["worse"]]
    parts = ([f"worse in {', '.join(worse)}"] if worse else []) + ([f"better in {', '.join(better)}"] if better else [])
    return f"{what}: {len(moved)} of {len(rows)} measure(s) changed detectably; " + "; ".join(parts) + "."


def _worse(row: dict[str, Any]) -> bool:
    return (row["direction"] == "lower" and row["diff"] > 0) or (row["direction"] == "higher" and row["diff"] < 0)


# --- the heatmap ---------------------------------------------------------------------------------

CELL_W, CELL_H, PAD, CHAR_W = 66, 26, 8, 7.6  # pixels; CHAR_W: a 12px label character, roughly
COLOURS = {"fail": "#b42318", "inconclusive": "#f3d36b", "pass": "#4a9b5f", "pass-better": "#2b7a3f", "not applicable": "#c8ccd1"}


def _column(check: dict[str, Any]) -> str:
    limit = f" {check['limit']:g}" if check.get("limit") is not None else ""
    return f"{'drift: ' if check['kind'] == 'drift' else ''}{check['metric']} {check['bound']}{limit}".strip()


def heatmap(gate: dict[str, Any], comparison: dict[str, Any]) -> dict[str, Any]:
    """One cell per gate check: slices down, checked metric and bound across; the colour is the check's
    status (a pass whose change is a significant improvement is darker), the text the change, the hover
    its interval, p-value and reason. Geometry for an inline SVG."""
    rows_by = {(r["metric"], r["slice"]): r for r in comparison["rows"]}
    checks = gate["checks"]
    columns = list(dict.fromkeys(_column(c) for c in checks))
    slices = list(dict.fromkeys(["overall", *sorted(c["slice"] for c in checks if c["slice"] != "overall")]))
    slices = [s for s in slices if any(c["slice"] == s for c in checks)]
    seen: dict[tuple[int, int], int] = {}
    cells = []
    for c in checks:
        col, row = columns.index(_column(c)), slices.index(c["slice"])
        stack = seen.get((row, col), 0)  # two rules with the same metric and bound: side by side, never on top
        seen[(row, col)] = stack + 1
        compared = rows_by.get((c["metric"], c["slice"]))
        better = (compared is not None and c["kind"] == "baseline" and not _worse(compared) and compared["diff"] != 0
                  and compared["p_adjusted"] is not None and compared["p_adjusted"] <= gate.get("error_rate", 0.05))
        colour = COLOURS["pass-better"] if c["status"] == "pass" and better else COLOURS.get(c["status"], COLOURS["not applicable"])
        delta = c.get("delta")
        text = "n/a" if c["status"] == "not applicable" else ("–" if delta is None else f"{delta:+.2g}")
        hover = [f"{c['metric']} in {c['slice']}: {c['status']}"
                 + (f" (counts as {c['outcome']})" if c["status"] == "inconclusive" and c.get("outcome") else "")]
        if c["status"] != "not applicable":
            ci = f" [{c['delta_low']:+.3f}, {c['delta_high']:+.3f}]" if c.get("delta_low") is not None and c.get("delta_high") is not None else ""
            hover.append(f"change {delta:+.3f}{ci} (candidate − baseline, 90% paired bootstrap); "
                         f"baseline {c['baseline']:.3f}, candidate {c['candidate']:.3f}, n={c['n']}" if delta is not None else f"n={c['n']}")
            if c.get("p_adjusted") is not None:
                hover.append(f"p adjusted {c['p_adjusted']:.2g}")
        hover.append(c.get("reason") or "")
        cells.append({"x": col, "y": row, "stack": stack, "colour": colour, "text": text, "title": "\n".join(h for h in hover if h),
                      "status": c["status"], "dark": c["status"] in ("fail", "pass") })
    width_stack = max([v for v in seen.values()] or [1])
    cw = CELL_W // width_stack if width_stack > 1 else CELL_W
    shown_slices = [_short(s) for s in slices]
    shown_columns = [_short(c) for c in columns]
    label_w = int(CHAR_W * max([len(s) for s in shown_slices] or [4])) + 16
    head_h = int(CHAR_W * 0.65 * max([len(c) for c in shown_columns] or [4])) + 24  # labels at 40 degrees: sin 40 = 0.64
    right = int(CHAR_W * 0.77 * len(shown_columns[-1])) if columns else 0  # the last label runs past its column: cos 40 = 0.77
    for cell in cells:
        cell["px"] = label_w + cell["x"] * CELL_W + cell["stack"] * cw
        cell["py"] = head_h + cell["y"] * CELL_H
        cell["w"] = cw - 2
    return {"columns": [{"label": shown, "full": c, "x": label_w + i * CELL_W + CELL_W / 2} for i, (c, shown) in enumerate(zip(columns, shown_columns))],
            "slices": [{"label": shown, "full": s, "y": head_h + i * CELL_H + CELL_H / 2} for i, (s, shown) in enumerate(zip(slices, shown_slices))],
            "cells": cells, "cell_h": CELL_H - 2, "label_w": label_w, "head_h": head_h,
            "width": label_w + len(columns) * CELL_W + max(PAD, right - CELL_W // 2), "height": head_h + len(slices) * CELL_H + PAD}


def _short(label: str, limit: int = 34) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


# --- rendering -----------------------------------------------------------------------------------


def _findings_chart(findings: list[dict[str, Any]]) -> Any:
    from prefline.report.plots import change_chart

    rows = [{"label": f"{f['metric']} · {f['slice']}", "mean": f["diff"], "ci": [f["ci_low"], f["ci_high"]]} for f in findings[:15]]
    return change_chart(rows, "regressions: change (candidate − baseline) with 90% interval", "change in the metric's units")


def checks_of(gate: dict[str, Any], status: str) -> list[dict[str, Any]]:
    """The checks with ``status``; inconclusive ones that count as a fail first, then warnings, then the rest."""
    rank = {"fail": 0, "warn": 1}
    return sorted((c for c in gate["checks"] if c["status"] == status), key=lambda c: rank.get(c.get("outcome"), 2))


def decision_html(data: dict[str, Any]) -> str:
    from prefline.report.html import render

    gate = data["gate"]
    return render("decision_report.html.j2", r=data, g=gate, d=data["diagnosis"], heat=heatmap(gate, data["comparison"]),
                  failing=checks_of(gate, "fail"), unsure=checks_of(gate, "inconclusive"),
                  chart=_findings_chart(data["diagnosis"]["findings"]), colours=COLOURS)


def diagnose_html(data: dict[str, Any]) -> str:
    from prefline.report.html import render

    return render("diagnose_report.html.j2", r=data, d=data["diagnosis"], chart=_findings_chart(data["diagnosis"]["findings"]))


def capability_html(data: dict[str, Any]) -> str:
    from prefline.report.html import render

    return render("capability_report.html.j2", r=data)


def capability_markdown(data: dict[str, Any], html_path: str | None = None) -> str:
    """What changed, in sentences: how the model behaves, then what it knows."""
    from prefline.report.markdown import cell

    cap, runs = data["capability"], data["runs"]
    lines = [f"### What changed: {cell(_side_label(runs['candidate']))} vs {cell(_side_label(runs['baseline']))}", "",
             *[f"**{cell(h)}**  " for h in cap["headline"]], ""]
    for title, rows in cap["behaves"].items():
        if rows:
            lines += [f"**{cell(title)}**", "", *[f"- {cell(r['sentence'])}" for r in rows], ""]
    lines += [f"**{cell(KNOWS['evidence'])}**", ""]
    lines += [f"- {cell(r['sentence'])}" for r in cap["knows"]] or [cell(cap["knows_note"])]
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines) + "\n"


def _side_label(side: dict[str, Any]) -> str:
    return f"run {side['id']} ({side['adapter']['name'] if side.get('adapter') else 'base model ' + side['model']['name']})"


def _cause_of(finding: dict[str, Any], causes: list[dict[str, Any]]) -> str:
    key = f"{finding['metric']}@{finding['slice']}"
    cause = next((c for c in causes if key in c["explains"] or any(x.startswith(finding["metric"] + "@") for x in c["explains"])), None)
    return f"{cause['change']} ({cause['kind']}, confidence {cause['confidence']:.2f}): {cause['evidence']}" if cause else "none found in the lineage"


def _findings_md(d: dict[str, Any], limit: int = 5) -> list[str]:
    from prefline.report.markdown import table

    if not d["findings"]:
        return ["No regression: " + "; ".join(d["notes"])]
    rows = [[f["category"], f["metric"], f["slice"], f["n"], f"{f['baseline']:.3f} → {f['candidate']:.3f}",
             f"{f['diff']:+.3f} [{f['ci_low']:+.3f}, {f['ci_high']:+.3f}]", f"{f['p_adjusted']:.2g}", _cause_of(f, d["causes"])]
            for f in d["findings"][:limit]]
    more = [f"", f"{len(d['findings']) - limit} more in the HTML report."] if len(d["findings"]) > limit else []
    return [table(["category", "metric", "slice", "n", "baseline → candidate", "change [90% CI]", "p adj", "likely cause"], rows), *more]


def decision_markdown(data: dict[str, Any], html_path: str | None = None) -> str:
    """A pull-request comment: verdict overall and per axis, failing checks with numbers, top regressions with their likely cause."""
    from prefline.report.markdown import cell, table

    g, runs = data["gate"], data["runs"]
    icon = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}.get(g["verdict"], "")
    what = f"gate decision {data['decision']['id']}" if data["decision"] else "comparison (not recorded)"
    lines = [f"### {icon} Gate: **{g['verdict']}**: {cell(_side_label(runs['candidate']))} vs {cell(_side_label(runs['baseline']))}", "",
             f"{what}, policy `{cell(g['policy'])}`, {g['correction']} adjustment, error rate {g['error_rate']:g}; "
             f"{cell(data['comparison']['scope'])}.", ""]
    lines.append(table(["axis", "verdict"], [[axis, verdict] for axis, verdict in g["axes"].items()]))
    for reason in g.get("reasons") or []:
        lines.append(f"- {cell(reason)}")
    level = f"estimate [{1 - 2 * g['error_rate']:.0%} CI]"  # the interval each check's decision used
    failing = checks_of(g, "fail")
    unsure = [c for c in checks_of(g, "inconclusive") if c.get("outcome") != "pass"]
    lines += ["", f"**Failing checks ({len(failing)})**", ""]
    if failing:
        lines.append(table(["check", "n", "baseline → candidate", level, "p adj"],
                           [[f"{c['metric']} {c['bound']} {c['limit']:g} in {c['slice']}", c["n"], f"{c['baseline']:.3f} → {c['candidate']:.3f}",
                             _change(c), f"{c['p_adjusted']:.2g}" if c.get("p_adjusted") is not None else "-"] for c in failing]))
    else:
        lines.append("None.")
    if unsure:
        lines += ["", f"**Inconclusive checks ({len(unsure)})**", ""]
        lines.append(table(["check", "n", level, "items needed to decide", "counts as"],
                           [[f"{c['metric']} {c['bound']} {c['limit']:g} in {c['slice']}", c["n"], _change(c),
                             c.get("items_needed") or "-", c.get("outcome")] for c in unsure[:10]]))
    lines += ["", "**Top regressions and their likely cause**", "", *_findings_md(data["diagnosis"])]
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines) + "\n"


def _change(c: dict[str, Any]) -> str:
    """The check's estimate with the interval its decision used (as `prefline gate` prints it): a
    difference for max_increase/max_decrease, a ratio for the ratio bounds, the candidate's mean for
    hard limits. Without one (too few items) the paired difference and its bootstrap interval."""
    if c.get("estimate") is not None:
        fmt = "{:+.3f}" if c.get("bound") in ("max_increase", "max_decrease") else "{:.3f}"
        ci = f" [{fmt.format(c['low'])}, {fmt.format(c['high'])}]" if c.get("low") is not None and c.get("high") is not None else ""
        return f"{fmt.format(c['estimate'])}{ci}"
    if c.get("delta") is None:
        return "-"
    ci = f" [{c['delta_low']:+.3f}, {c['delta_high']:+.3f}]" if c.get("delta_low") is not None and c.get("delta_high") is not None else ""
    return f"difference {c['delta']:+.3f}{ci}"


def diagnose_markdown(data: dict[str, Any], html_path: str | None = None) -> str:
    from prefline.report.markdown import cell

    d, runs = data["diagnosis"], data["runs"]
    lines = [f"### Diagnosis: {cell(_side_label(runs['candidate']))} vs {cell(_side_label(runs['baseline']))}", "",
             f"{len(d['findings'])} regression(s) at adjusted p ≤ {d['alpha']:g} ({d['correction']}); {cell(d['scope'])}.", "",
             *_findings_md(d, limit=10)]
    if d["causes"]:
        lines += ["", "**Likely causes** (confidence is evidence strength, never certainty)", ""]
        lines += [f"- {c['confidence']:.2f} {cell(c['kind'])}: {cell(c['change'])}: {cell(c['evidence'])}" for c in d["causes"]]
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines) + "\n"
