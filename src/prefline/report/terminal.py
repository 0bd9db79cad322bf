"""Terminal rendering of eval runs and gate results (rich tables)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from prefline.gate.compare import GateResult
from prefline.gate.comparison import Comparison
from prefline.ledger import Ledger
from prefline.report.text import plain, safe

STATUS_STYLE = {"pass": "green", "fail": "bold red", "not gated": "dim"}


def gate_table(result: GateResult) -> Table:
    """One row per rule and slice: paired means, change with its interval, ratio, status, reason."""
    table = Table(title=f"gate: run {result.candidate_run} vs baseline run {result.baseline_run} (policy {safe(result.policy)})", title_justify="left")
    for column in ["metric", "slice", "n", "baseline", "candidate", "change [90% CI]", "ratio", "status", "why"]:
        table.add_column(column)
    for c in result.checks:
        ratio = f"{c.ratio:.2f}" if c.ratio is not None else "-"
        table.add_row(safe(c.metric), safe(c.slice), str(c.n), f"{c.baseline:.3f}", f"{c.candidate:.3f}",
                      f"{c.delta:+.3f} [{c.delta_low:+.3f}, {c.delta_high:+.3f}]", ratio,
                      f"[{STATUS_STYLE[c.status]}]{c.status}[/]", safe(c.reason))
    return table


def comparison_table(result: Comparison) -> Table:
    """One row per metric and slice: n, means, change with its bootstrap interval, test, p and adjusted p."""
    level = f"{result.confidence:.0%}"
    table = Table(title=(f"compare: run {result.candidate_run} vs baseline run {result.baseline_run} "
                         f"({result.samples} bootstrap resamples, seed {result.seed}; p adjusted by {result.correction})"), title_justify="left")
    for column in ["metric", "slice", "n", "baseline", "candidate", f"change [{level} CI]", "better", "test", "p", "p adj"]:
        table.add_column(column)
    for r in result.rows:
        style = "bold red" if r.worse and r.p_adjusted <= 0.05 else ""
        change = f"{r.diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
        table.add_row(escape(r.metric), escape(r.slice), str(r.n), f"{r.baseline:.3f}", f"{r.candidate:.3f}",
                      f"[{style}]{change}[/]" if style else change, r.direction, r.test, f"{r.p_value:.3g}", f"{r.p_adjusted:.3g}")
    return table


def print_gate(console, result: GateResult) -> None:  # noqa: ANN001
    """The gate's table, its notes (what the checks cannot see) and the verdict line."""
    console.print(gate_table(result))
    for note in result.notes:
        console.print(plain(f"note: {note}"), markup=False)
    console.print(verdict_line(result))


def verdict_line(result: GateResult) -> str:
    verdict = "[bold green]PASS[/]" if result.verdict == "pass" else f"[bold red]FAIL[/] ({len(result.failures)} check(s) failed)"
    return f"verdict: {verdict}  (decision {result.decision_id} recorded in the ledger)"


def _section(scorer) -> str:  # noqa: ANN001
    """``style`` for the style metrics (their modules are ``style*``), else the scorer's layer."""
    return "style" if scorer.fn.__module__.rsplit(".", 1)[-1].startswith("style") else scorer.layer


def metrics_overview(ledger: Ledger, runs: dict[str, int]) -> Table:
    """Every metric the runs scored, grouped style / behaviour / evidence: overall mean, interval and n per run."""
    from prefline.evals.scorers import SCORERS, get_scorers

    rows = [ledger.get_run(run_id) for run_id in runs.values()]
    get_scorers(None)  # registers the built-in scorers, for their metadata
    names = list(dict.fromkeys(name for row in rows for name in row["scorers"]))
    table = Table(title="metrics, overall (mean [90% CI] (n items))", title_justify="left")
    for column in ["layer", "scorer", "metric", "better", *runs]:
        table.add_column(safe(column))
    order = {"style": 0, "behaviour": 1, "evidence": 2, "preference": 3}
    for scorer in sorted((SCORERS[n] for n in names if n in SCORERS), key=lambda s: order.get(_section(s), 9)):
        for metric, direction in scorer.metrics.items():
            cells = []
            for row in rows:
                overall = (row.get("summary") or {}).get(metric, {}).get("overall")
                cells.append(f"{overall['mean']:.3f} [{overall['ci'][0]:.3f}, {overall['ci'][1]:.3f}] ({overall['n']})" if overall else "-")
            if any(cell != "-" for cell in cells):
                table.add_row(_section(scorer), safe(scorer.name), safe(metric), direction, *cells)
    return table
