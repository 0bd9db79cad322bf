"""Terminal rendering of releases (promote, rollback, status, history), bisection and the doctor's findings."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from prefline.errors import PreflineError
from prefline.report.terminal import print_gate, table


def _fmt_metrics(metrics: dict[str, float], names: list[str] | None = None) -> str:
    shown = [m for m in (names or metrics) if m in metrics]
    return escape(", ".join(f"{m} {metrics[m]:.3f}" for m in shown))


def _policy_metrics(policy: str | None) -> list[str] | None:
    """The metrics a surface's policy names (shown first), or None when it has none or cannot be read."""
    from prefline.config import load_policy

    try:
        return [r.metric for r in load_policy(policy).rules] if policy else None
    except PreflineError:
        return None


def print_promotion(console: Console, result: Any, surface: str) -> None:
    if result.gate is not None:
        print_gate(console, result.gate)
    if result.promoted:
        console.print(f"[bold green]released[/] {escape(result.target)} on {escape(surface)} (release {result.release['id']}, "
                      f"run {result.candidate_run}): {escape(result.message)}")
    else:
        console.print(f"[bold red]not released[/]: {escape(result.message)}")


def print_rollback(console: Console, result: Any, surface: str) -> None:
    console.print(f"rolled back {escape(result.rolled_back['adapter_name'])} (release {result.rolled_back['id']}) on {escape(surface)}: "
                  f"{escape(result.restored['adapter_name'])} is live again (release {result.release['id']}, run {result.release['run_id']})")
    if result.differences:
        console.print(table("differences beyond the margin", ["metric", "slice", "n", "recorded", "now", "change", "why"], [
            [escape(d["metric"]), escape(d["slice"]), d["n"],
             f"{d['baseline']:.3f}" if d["direction"] == "worse" else f"{d['candidate']:.3f}",
             f"{d['candidate']:.3f}" if d["direction"] == "worse" else f"{d['baseline']:.3f}",
             d["direction"], escape(d["reason"])] for d in result.differences]))
    colour = "green" if result.confirmed else "red"
    console.print(f"[bold {colour}]{escape(result.message)}[/]")


def print_status(console: Console, rows: list[dict[str, Any]]) -> None:
    shown = []
    for r in rows:
        if r["live"] is None:
            shown.append([escape(r["surface"]), "(nothing live)", "", "", "", "", escape(f"{r['suite']} / {r['policy']}"), ""])
            continue
        how = r["action"] + (" (forced: " + r["reason"] + ")" if r["forced"] else "")
        shown.append([escape(r["surface"]), escape(r["live"]), f"{r['since']:%Y-%m-%d %H:%M}", r["release_id"],
                      r["decision_id"] or "-", escape(how), f"run {r['run_id']} (reference {r['reference_run_id']})",
                      _fmt_metrics(r["metrics"], _policy_metrics(r["policy"]))])
    console.print(table("live per surface (times UTC)", ["surface", "live", "since", "release", "decision", "how", "runs", "metrics (overall)"], shown))


def print_history(console: Console, rows: list[dict[str, Any]]) -> None:
    shown = []
    for r in rows:
        outcome = r["outcome"] or {}
        if r["action"] == "rollback":
            result = "recovery confirmed" if outcome.get("confirmed") else "recovery NOT confirmed"
        elif r["action"] == "pin":
            result = f"reference run {r['reference_run_id']}"
        else:
            result = (r["verdict"] or "first release") + (f"; forced: {r['reason']}" if r["forced"] else "")
        shown.append([escape(r["surface"]), r["id"], f"{r['created_at']:%Y-%m-%d %H:%M}", r["action"], escape(r["adapter_name"]),
                      r["run_id"], r["decision_id"] or "-", escape(result), escape(r["actor"] or ""), _fmt_metrics(r["metrics"], _policy_metrics(r["policy"]))])
    console.print(table("releases (times UTC)", ["surface", "release", "at", "action", "adapter", "run", "decision", "result", "by", "metrics (overall)"], shown))


def print_bisect(console: Console, result: Any) -> None:
    rows = [[escape(s.adapter), s.run, f"{s.value:.4g}", s.verdict] for s in [result.good, *result.steps, result.bad]]
    console.print(table(f"bisect on {escape(result.metric)} in {escape(result.slice)} ({result.items} items; bad past {result.threshold:.4g})",
                        ["adapter", "run", result.metric, "verdict"], rows))
    console.print(f"first bad: [bold]{escape(result.first_bad)}[/] ({escape(result.metric)} {next(s.value for s in [*result.steps, result.bad] if s.adapter == result.first_bad):.4g} "
                  f"in {escape(result.slice)}; last good {escape(result.last_good)}); {result.evaluations} evaluation(s) for "
                  f"{len(result.adapters) - 2} adapter(s) in between")


def print_doctor(console: Console, findings: list[Any]) -> None:
    if findings:
        console.print(table("doctor", ["finding", "path", "detail", "fixed"],
                            [[f.kind, f.path, f.detail, "yes" if f.fixed else ""] for f in findings]))
    else:
        console.print("ledger and files agree: nothing to report")
