"""Terminal rendering of a gate result (rich tables)."""

from __future__ import annotations

from rich.table import Table

from prefline.gate.compare import GateResult

STATUS_STYLE = {"pass": "green", "fail": "bold red", "not gated": "dim"}


def gate_table(result: GateResult) -> Table:
    """One row per rule and slice: paired means, change with its interval, ratio, status, reason."""
    table = Table(title=f"gate: run {result.candidate_run} vs baseline run {result.baseline_run} (policy {result.policy})", title_justify="left")
    for column in ["metric", "slice", "n", "baseline", "candidate", "change [90% CI]", "ratio", "status", "why"]:
        table.add_column(column)
    for c in result.checks:
        ratio = f"{c.ratio:.2f}" if c.ratio is not None else "-"
        table.add_row(c.metric, c.slice, str(c.n), f"{c.baseline:.3f}", f"{c.candidate:.3f}",
                      f"{c.delta:+.3f} [{c.delta_low:+.3f}, {c.delta_high:+.3f}]", ratio,
                      f"[{STATUS_STYLE[c.status]}]{c.status}[/]", c.reason)
    return table


def verdict_line(result: GateResult) -> str:
    verdict = "[bold green]PASS[/]" if result.verdict == "pass" else f"[bold red]FAIL[/] ({len(result.failures)} check(s) failed)"
    return f"verdict: {verdict}  (decision {result.decision_id} recorded in the ledger)"
