"""Terminal rendering shared by every command (rich tables, names for ledger ids), and of gate results.

What one command group prints lives next door: terminal_data.py (datasets), terminal_runs.py (adapters,
runs, suites, scorers, the preference layer), terminal_release.py (releases, bisect, doctor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from prefline.report.text import plain, safe

if TYPE_CHECKING:  # the CLI imports this module for every command: gate's numpy stays unloaded until used
    from prefline.gate.compare import GateResult
    from prefline.gate.comparison import Comparison
    from prefline.ledger import Ledger

STATUS_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "not applicable": "dim"}
VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow", "not gated": "dim"}


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose title and cells are shown as given: user strings in them are never read as markup."""
    shown = Table(title=safe(title), title_justify="left")
    for column in columns:
        shown.add_column(safe(column))
    for row in rows:
        shown.add_row(*["" if v is None else safe(v) for v in row])
    return shown


def pct(value: Any) -> str:
    return "" if value is None else f"{value:.1%}"


def interval(s: dict[str, Any]) -> str:
    """``[low, high]`` of a summary entry's ``ci``, three decimals."""
    return f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"


class Names:
    """Names and versions for the ids the ledger links by: ``tiny@2`` for dataset 3, ``dpo-v1`` for adapter 1."""

    def __init__(self, ledger: Ledger):
        self.datasets = {d["id"]: f"{d['name']}@{d['version']}" for d in ledger.list_datasets()}
        self.adapters = {a["id"]: a["name"] for a in ledger.list_adapters()}
        self.suites = {s["hash"]: s["version"] for s in ledger.list_suites()}

    def dataset(self, dataset_id: int | None) -> str:
        return self.datasets.get(dataset_id, f"dataset id {dataset_id}") if dataset_id is not None else ""

    def adapter(self, adapter_id: int | None) -> str:
        return self.adapters.get(adapter_id, f"adapter id {adapter_id}") if adapter_id is not None else ""

    def suite(self, name: str, suite_hash: str) -> str:
        version = self.suites.get(suite_hash)
        return f"{name} v{version}" if version is not None else name


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if value is None or value != value else fmt.format(value)


def gate_table(result: GateResult) -> Table:
    """One row per check: slice, n, paired means, the estimate with the decision's interval, p adjusted, status."""
    level = f"{1 - 2 * result.error_rate:.0%}"
    title = (f"gate: run {result.candidate_run} vs baseline run {result.baseline_run} (policy {safe(result.policy)}, "
             f"error rate {result.error_rate:g}, p adjusted by {result.correction})")
    table = Table(title=title, title_justify="left")
    for column in ["vs", "metric", "bound", "slice", "n", "baseline", "candidate", f"estimate [{level} CI]", "p adj", "status"]:
        table.add_column(column)
    for c in result.checks:
        fmt = "{:+.3f}" if c.bound in ("max_increase", "max_decrease") else "{:.3f}"
        estimate = f"{_num(c.estimate, fmt)} [{_num(c.low, fmt)}, {_num(c.high, fmt)}]" if c.estimate is not None else "-"
        status = f"[{STATUS_STYLE[c.status]}]{c.status}[/]" + (f" ({c.outcome})" if c.status == "inconclusive" else "")
        table.add_row(c.kind, safe(c.metric), f"{c.bound} {c.limit:g}" if c.limit is not None else "", safe(c.slice), str(c.n),
                      _num(c.baseline), _num(c.candidate), estimate, _num(c.p_adjusted, "{:.2g}"), status)
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
        table.add_row(safe(r.metric), safe(r.slice), str(r.n), f"{r.baseline:.3f}", f"{r.candidate:.3f}",
                      f"[{style}]{change}[/]" if style else change, r.direction, r.test, f"{r.p_value:.3g}", f"{r.p_adjusted:.3g}")
    return table


def print_gate(console, result: GateResult) -> None:  # noqa: ANN001
    """The gate's table, each failing and inconclusive check with its numbers, the notes, the axes and the verdict."""
    console.print(gate_table(result))
    for c in result.checks:
        if c.status in ("fail", "inconclusive", "not applicable"):
            console.print(f"{c.status}: {safe(c.name)}: {safe(c.reason)}")
    for note in result.notes:
        console.print(plain(f"note: {note}"), markup=False)
    axes = ", ".join(f"{axis} [{VERDICT_STYLE[v]}]{v}[/]" for axis, v in result.axes.items())
    console.print(f"axes: {axes}")
    console.print(verdict_line(result))


def verdict_line(result: GateResult) -> str:
    if result.verdict == "pass":
        verdict = "[bold green]PASS[/]" + (f" ({safe('; '.join(result.reasons))})" if result.reasons else "")
    elif result.verdict == "fail":
        verdict = f"[bold red]FAIL[/] ({len(result.failures)} check(s) failed)"
    else:
        verdict = f"[bold yellow]INCONCLUSIVE[/] ({safe('; '.join(result.reasons))})"
    major = " under the policy's major-change terms" if result.major_change else ""
    return f"verdict: {verdict}{major}  (decision {result.decision_id} recorded in the ledger)"


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
    for scorer in sorted((SCORERS[n] for n in names if n in SCORERS), key=lambda s: order.get(s.section, 9)):
        for metric, direction in scorer.metrics.items():
            cells = []
            for row in rows:
                overall = (row.get("summary") or {}).get(metric, {}).get("overall")
                cells.append(f"{overall['mean']:.3f} [{overall['ci'][0]:.3f}, {overall['ci'][1]:.3f}] ({overall['n']})" if overall else "-")
            if any(cell != "-" for cell in cells):
                table.add_row(scorer.section, safe(scorer.name), safe(metric), direction, *cells)
    return table
