"""Rendering results for people: terminal tables, and self-contained HTML pages with markdown summaries.

Each ``write_*_report`` builds a report's JSON from the ledger, then writes the HTML page and/or the
markdown summary (which names the HTML's path) and returns the paths written, by kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def write_files(data: dict[str, Any], html: str | Path | None, md: str | Path | None, render_html: Callable, render_md: Callable) -> dict[str, Path]:
    """Write ``data`` as an HTML page to ``html`` and/or a markdown summary (naming the page) to ``md``."""
    from prefline.report.html import write

    written = {}
    if html is not None:
        written["html"] = write(render_html(data), html)
    if md is not None:
        written["markdown"] = write(render_md(data, str(html) if html is not None else None), md)
    return written


def write_run_report(ledger, run: int | str, html: str | Path | None = None, md: str | Path | None = None) -> dict[str, Path]:  # noqa: ANN001
    """The report of one eval run: header, metrics by layer with intervals, slices, the items and their scores."""
    from prefline.report.run import run_data, run_html, run_markdown

    return write_files(run_data(ledger, run), html, md, run_html, run_markdown)


def write_adapter_report(ledger, name: str, html: str | Path | None = None, md: str | Path | None = None) -> dict[str, Path]:  # noqa: ANN001
    """The report of one adapter: training curves, the drift-probe trajectory and its lineage."""
    from prefline.report.adapter import adapter_data, adapter_html, adapter_markdown

    return write_files(adapter_data(ledger, name), html, md, adapter_html, adapter_markdown)


def write_compare_report(ledger, baseline: int | str, candidate: int | str, html: str | Path | None = None,  # noqa: ANN001
                         md: str | Path | None = None, policy: str | None = None, reference: int | str | None = None) -> dict[str, Path]:
    """The comparison report of two runs, with the gate's verdict under ``policy`` (not recorded as a decision)."""
    from prefline.report.decision import compare_data, decision_html, decision_markdown

    return write_files(compare_data(ledger, baseline, candidate, policy=policy, reference=reference), html, md, decision_html, decision_markdown)


def write_gate_report(ledger, decision: int | str, html: str | Path | None = None, md: str | Path | None = None) -> dict[str, Path]:  # noqa: ANN001
    """The report of a stored gate decision (``GateResult.decision_id``)."""
    from prefline.report.decision import decision_html, decision_markdown, gate_data

    return write_files(gate_data(ledger, decision), html, md, decision_html, decision_markdown)


def write_diagnose_report(ledger, baseline: int | str, candidate: int | str, html: str | Path | None = None,  # noqa: ANN001
                          md: str | Path | None = None) -> dict[str, Path]:
    """The diagnosis report: regressions, likely causes, items that moved most."""
    from prefline.report.decision import diagnose_data, diagnose_html, diagnose_markdown

    return write_files(diagnose_data(ledger, baseline, candidate), html, md, diagnose_html, diagnose_markdown)


def write_release_report(ledger, html: str | Path | None = None, md: str | Path | None = None,  # noqa: ANN001
                         surface: str | None = None) -> dict[str, Path]:
    """The releases report: per surface, metrics over time and the tradeoff chart."""
    from prefline.report.releases import release_data, release_html, release_markdown

    return write_files(release_data(ledger, surface), html, md, release_html, release_markdown)


def write_capability_report(ledger, baseline: int | str, candidate: int | str, html: str | Path | None = None,  # noqa: ANN001
                            md: str | Path | None = None) -> dict[str, Path]:
    """For stakeholders: what changed in how the model behaves apart from what it knows, in sentences."""
    from prefline.report.decision import capability_data, capability_html, capability_markdown

    return write_files(capability_data(ledger, baseline, candidate), html, md, capability_html, capability_markdown)
