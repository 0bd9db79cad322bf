"""Terminal rendering of adapters, eval runs, suites, scorers and the preference layer."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from prefline.report.terminal import Names, interval, table
from prefline.report.text import plain, safe


def print_adapter(console: Console, adapter: dict[str, Any], names: Names) -> None:
    metrics = adapter.get("metrics") or {}
    last = metrics.get("last", {})
    # each method logs its own quantities (DPO reward margins, reward-model accuracy, SFT token accuracy)
    shown = ", ".join(f"{key} {last[key]:.4g}" for key in ("loss", "rewards/accuracies", "rewards/margins", "accuracy", "margin", "mean_token_accuracy") if key in last)
    console.print(
        f"adapter [bold]{safe(adapter['name'])}[/bold] (id {adapter['id']}, {adapter['method']}, status {adapter['status']})\n"
        f"  base model: {safe(adapter['base_model'])} ({adapter['base_model_hash'][:12]})\n"
        f"  dataset {safe(names.dataset(adapter['dataset_id']))} ({adapter['dataset_hash'][:12]}), seed {adapter['seed']}\n"
        f"  steps {metrics.get('steps')}, {metrics.get('runtime_s')} s; last step: {shown or 'no metrics'}\n"
        f"  files: {safe(adapter['path'])} (hash {(adapter['adapter_hash'] or '')[:12]})"
    )
    if metrics.get("stopped_early"):
        console.print(f"  stopped early at step {metrics['stopped_early']['step']}: {metrics['stopped_early']['reason']}", markup=False)
    for note in metrics.get("notes", []):
        console.print(f"  note: {note}", markup=False)
    for warning in metrics.get("warnings", []):
        console.print(f"  warning (step {warning['step']}, {warning['code']}): {warning['message']}", markup=False)


def print_adapters(console: Console, rows: list[dict[str, Any]], names: Names) -> None:
    console.print(table("adapters", ["id", "name", "method", "status", "base model", "dataset", "surface", "created"],
                        [[r["id"], r["name"], r["method"], r["status"], r["base_model"], names.dataset(r["dataset_id"]), r["surface"], r["created_at"]] for r in rows]))


def print_adapter_detail(console: Console, adapter: dict[str, Any], names: Names, steps: list[dict[str, Any]], taken: list[dict[str, Any]]) -> None:
    """One adapter with its config, versions, step history and drift probes."""
    print_adapter(console, adapter, names)
    console.print(safe(f"  config: {json.dumps(adapter['config'])}\n  versions: {json.dumps(adapter['versions'])}"))
    keys = ["loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "tokens_per_s"]
    console.print(table("steps", ["step", *keys], [[s["step"], *[f"{s['metrics'].get(k, float('nan')):.4g}" for k in keys]] for s in steps]))
    if taken:
        console.print(table("drift probes", ["step", "items", "mean length (tokens)", "refusal rate"],
                            [[p["step"], p["metrics"]["n"], f"{p['metrics']['length_tokens']:.1f}", f"{p['metrics']['refusal']:.2f}"] for p in taken]))


def print_run(console: Console, run: dict[str, Any], names: Names, overall: bool = True) -> None:
    adapter = f" + adapter {safe(names.adapter(run['adapter_id']))}" if run["adapter_id"] else ""
    adapter += f", replay of run {run['replay_of']}" if run.get("replay_of") else ""
    console.print(f"run [bold]{run['id']}[/bold]: suite {safe(names.suite(run['suite_name'], run['suite_hash']))} ({run['suite_hash'][:12]}), model {safe(run['model'])}{adapter}, status {run['status']}")
    if run.get("error"):
        console.print(f"  stopped: {plain(run['error'])}", markup=False)
    summary = run.get("summary") or {}
    if not overall:
        return
    rows = [[metric, s["n"], f"{s['mean']:.3f}", interval(s)]
            for metric, by_slice in summary.items() for name, s in by_slice.items() if name == "overall"]
    console.print(table("overall (90% bootstrap interval)", ["metric", "n", "mean", "interval"], rows))


def print_runs(console: Console, rows: list[dict[str, Any]], names: Names) -> None:
    console.print(table("eval runs", ["id", "status", "suite", "suite hash", "model", "adapter", "created", "why it stopped"],
                        [[r["id"], r["status"], names.suite(r["suite_name"], r["suite_hash"]), r["suite_hash"][:12], r["model"],
                          names.adapter(r["adapter_id"]) or "-", r["created_at"], (r.get("error") or "")[:80]] for r in rows]))


def print_run_slices(console: Console, row: dict[str, Any], slices: bool) -> None:
    """Every metric per slice (``slices``), else one line saying how many slices there are."""
    summary = row.get("summary") or {}
    slice_names = sorted({name for by_slice in summary.values() for name in by_slice if name != "overall"})
    if slices:
        for metric, by_slice in summary.items():
            console.print(table(metric, ["slice", "n", "mean", "interval"],
                                [[name, s["n"], f"{s['mean']:.3f}", interval(s)] for name, s in by_slice.items()]))
    elif slice_names:
        keys = sorted({name.split("=", 1)[0] for name in slice_names})
        console.print(f"{len(slice_names)} slices over {safe(', '.join(keys))}: --slices prints each metric per slice", markup=False)


def print_run_items(console: Console, gens: list[dict[str, Any]], scores: list[dict[str, Any]]) -> None:
    """Every item's slices, scores, prompt and output."""
    by_item: dict[str, list[str]] = {}
    for s in scores:
        if s["value"] is not None:
            by_item.setdefault(s["item_id"], []).append(f"{s['metric']}={s['value']:g}")
    for g in gens:
        console.print(f"[bold]{safe(g['item_id'])}[/bold] {safe(json.dumps(g['slices'], ensure_ascii=False))}  {safe(' '.join(by_item.get(g['item_id'], [])))}")
        console.print(plain(f"  > {g['messages'][-1]['content']}"), markup=False)
        console.print(plain(f"  < {g['output']}"), markup=False)


def print_suites(console: Console, rows: list[dict[str, Any]]) -> None:
    console.print(table("suites", ["name", "version", "items", "hash"], [[r["name"], r["version"], r["items"], r["hash"][:12]] for r in rows]))


def print_suite(console: Console, summary: dict[str, Any]) -> None:
    frozen = "frozen" if summary["frozen"] else "not frozen"
    console.print(f"suite [bold]{safe(summary['name'])}[/bold] v{summary['version']} ({frozen}): {summary['items']} items, hash {summary['hash']}\n  {safe(summary['path'])}")
    for key, counts in summary["slices"].items():
        console.print(safe(f"  {key}: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))))


def print_ifeval_import(console: Console, result: dict[str, Any]) -> None:
    console.print(f"suite {result['name']} v{result['version']}: {result['items']} items, hash {result['hash']}\n  {result['path']}", markup=False)
    console.print(table("instructions", ["type", "n"], [[escape(kind), n] for kind, n in result["instructions"].items()]))


def print_scorers(console: Console, rows: list[dict[str, Any]]) -> None:
    console.print(table("scorers (use with `prefline eval --scorers a,b` or a suite's `scorers:`)",
                        ["name", "section", "layer", "category", "axis", "metrics (better)", "reads"],
                        [[r["name"], r["section"], r["layer"], r["category"], r["axis"],
                          ", ".join(f"{m} ({d})" for m, d in r["metrics"].items()), ", ".join(r["reads"]) or "-"] for r in rows]))


def print_scorer(console: Console, r: dict[str, Any]) -> None:
    console.print(f"scorer [bold]{safe(r['name'])}[/bold]: section {r['section']}, layer {r['layer']}, category {r['category']}, "
                  f"axis {r['axis']}, scored per {'run' if r['scope'] == 'run' else 'item'}")
    console.print(table("metrics", ["metric", "better"], [[m, d] for m, d in r["metrics"].items()]))
    reads = ", ".join(r["reads"])
    console.print(f"reads item fields: {reads}" if reads else
                  "reads item fields: only the conversation (every item is scored)", markup=False)
    if r["description"]:
        console.print(r["description"], markup=False)


def print_accuracy(console: Console, err: Console, result: dict[str, Any]) -> None:
    """Held-out pair accuracy per slice; its warning (if any) on ``err``."""
    if result["warning"]:
        err.print(f"warning: {result['warning']}", markup=False)
    rows = [[name, s["n"], f"{s['accuracy']:.3f}", interval(s)] for name, s in result["slices"].items()]
    console.print(table(f"{result['kind']} of {result['adapter']} on {result['dataset']} (evaluation {result['id']})",
                        ["slice", "n", "accuracy", "90% interval"], rows))


def _ci(entry: dict[str, Any] | None) -> str:
    return f"{entry['estimate']:.3f} [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]" if entry else "(too few items)"


def print_win_rates(console: Console, err: Console, result: dict[str, Any]) -> None:
    """Several candidates against one baseline, with the jointly fitted length-controlled win rates."""
    rows = [[c["candidate_run"], c["id"], c["slices"]["overall"]["n"], _ci(c["slices"]["overall"]["raw"]),
             _ci((c["joint"] or {}).get("length_controlled")), _ci(c["slices"]["overall"].get("length_controlled")),
             f"{c['slices']['overall']['flip_rate']:.2f}"] for c in result["candidates"]]
    judge_name = json.dumps(result["judge"].get("model") or result["judge"].get("adapter"))
    console.print(table(f"win rates vs run {result['baseline_run']}, judge {escape(judge_name)}",
                        ["candidate run", "evaluation", "n", "raw [90% CI]", "length-controlled, joint [90% CI]",
                         "length-controlled, alone [90% CI]", "flip rate"], rows))
    if result["length_coefficient"] is not None:
        console.print(f"shared length coefficient: {result['length_coefficient']:.2f} (logit per unit of tanh-standardized length difference)")
    for c in result["candidates"]:
        if (c["joint"] or {}).get("warning"):
            err.print(f"warning: run {c['candidate_run']}: {c['joint']['warning']}", markup=False)
    if result["note"]:
        err.print(f"note: {result['note']}", markup=False)


def print_win_rate(console: Console, result: dict[str, Any]) -> None:
    """One candidate against the baseline, per slice."""
    rows = [[escape(name), s["n"], _ci(s["raw"]), _ci(s.get("length_controlled")), f"{s['flip_rate']:.2f}"] for name, s in result["slices"].items()]
    judge_name = json.dumps(result['judge'].get('model') or result['judge'].get('adapter'))
    console.print(table(f"win rate of run {result['candidate_run']} vs run {result['baseline_run']}, judge {escape(judge_name)} (evaluation {result['id']})",
                        ["slice", "n", "raw [90% CI]", "length-controlled [90% CI]", "flip rate"], rows))
    warning = result["slices"]["overall"].get("warning")
    if warning:
        console.print(f"warning: {warning}", markup=False)
