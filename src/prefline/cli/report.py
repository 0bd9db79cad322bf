"""`prefline report ...`: self-contained HTML pages and markdown summaries of runs, adapters, comparisons,
gate decisions, diagnoses, capabilities and releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer

from prefline.cli._shared import JsonOpt, console, emit, ledger
from prefline.errors import PreflineError

report_app = typer.Typer(no_args_is_help=True, help="Self-contained HTML reports (and markdown summaries) of runs, adapters, comparisons, gate decisions, diagnoses and releases.")
HtmlOpt = typer.Option(None, "--html", help="Write the self-contained HTML page (opens offline) to this file.")
MdOpt = typer.Option(None, "--md", help="Write a markdown summary (fits a pull-request comment) to this file.")


def _write_report(data: dict[str, Any], html: Optional[Path], md: Optional[Path], as_json: bool,
                  render_html: Callable, render_md: Callable) -> None:
    """Write the requested files, then print the report's JSON (--json) or the paths written."""
    from prefline.report import write_files

    if not (html or md or as_json):
        raise PreflineError("nothing to write: give --html FILE, --md FILE or --json")
    written = write_files(data, html, md, render_html, render_md)

    def human() -> None:
        for kind, path in written.items():
            console.print(f"{kind}: {path}", markup=False)

    emit(as_json, data, human)


@report_app.command("run")
def report_run(
    run: str = typer.Argument(..., help="Eval run id."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A run's report: what ran (model, adapter, suite and hash, dataset lineage, backend, time), metrics by layer
    with intervals, the per-slice table and every item with its response and scores (searchable)."""
    from prefline.report.run import run_data, run_html, run_markdown

    _write_report(run_data(ledger(), run), html, md, as_json, run_html, run_markdown)


@report_app.command("adapter")
def report_adapter(
    name: str = typer.Argument(..., help="Adapter name or id."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """An adapter's report: lineage, training curves (loss, reward margin, accuracy) and the drift-probe trajectory."""
    from prefline.report.adapter import adapter_data, adapter_html, adapter_markdown

    _write_report(adapter_data(ledger(), name), html, md, as_json, adapter_html, adapter_markdown)


@report_app.command("compare")
def report_compare(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Gate policy for the verdict: a shipped name or a YAML file (default: default). Not recorded as a decision."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference run for the policy's drift: rules."),
    common_items: bool = typer.Option(False, "--common-items", help="Runs on different suite hashes: compare the items both hold unchanged."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A comparison's report: verdict per axis and overall, the slice x check heatmap, failing and inconclusive
    checks, the capability summary (how it behaves vs what it knows), the diagnosis and the items that moved most."""
    from prefline.report.decision import compare_data, decision_html, decision_markdown

    data = compare_data(ledger(), baseline, candidate, policy=policy, reference=reference, common_items=common_items)
    _write_report(data, html, md, as_json, decision_html, decision_markdown)


@report_app.command("gate")
def report_gate(
    decision: str = typer.Argument(..., help="Gate decision id (printed by `prefline gate`, listed by `prefline release history`)."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A stored gate decision's report: the same page as `report compare`, with the checks exactly as decided."""
    from prefline.report.decision import decision_html, decision_markdown, gate_data

    _write_report(gate_data(ledger(), decision), html, md, as_json, decision_html, decision_markdown)


@report_app.command("diagnose")
def report_diagnose(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    alpha: float = typer.Option(0.05, "--alpha", help="A move in the bad direction is a regression when its adjusted p-value is at most this."),
    common_items: bool = typer.Option(False, "--common-items", help="Compare runs on different suite versions on the items both hold unchanged."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A diagnosis report: regressions ranked by effect size per category and slice with intervals, likely causes
    with evidence and confidence, and the items that moved most side by side."""
    from prefline.report.decision import diagnose_data, diagnose_html, diagnose_markdown

    _write_report(diagnose_data(ledger(), baseline, candidate, alpha=alpha, common_items=common_items), html, md, as_json,
                  diagnose_html, diagnose_markdown)


@report_app.command("capability")
def report_capability(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    common_items: bool = typer.Option(False, "--common-items", help="Compare runs on different suite versions on the items both hold unchanged."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """For stakeholders: what changed in how the model behaves (style, refusal, format) apart from what it knows
    (answers checked against references or documents), in plain sentences from the numbers and their intervals."""
    from prefline.report.decision import capability_data, capability_html, capability_markdown

    _write_report(capability_data(ledger(), baseline, candidate, common_items=common_items), html, md, as_json,
                  capability_html, capability_markdown)


@report_app.command("release")
def report_release(
    surface: Optional[str] = typer.Option(None, "--surface", help="Only this surface (default: every surface with a release)."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The releases report: per surface, each release's metrics over time (refusal, verbosity, hedging, citation
    support, instruction following, win rate, latency; whichever the runs have) and the tradeoff chart."""
    from prefline.report.releases import release_data, release_html, release_markdown

    _write_report(release_data(ledger(), surface), html, md, as_json, release_html, release_markdown)
