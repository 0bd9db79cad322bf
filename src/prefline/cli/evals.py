"""`prefline eval`, `prefline runs ...` and `prefline preference ...`: generate and score, stored runs, the preference layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from prefline.cli._shared import JsonOpt, console, emit, ledger, names, quiet, stderr
from prefline.report import terminal_runs as show

runs_app = typer.Typer(no_args_is_help=True, help="Stored evaluation runs.")
preference_app = typer.Typer(no_args_is_help=True, help="The preference layer: held-out pair accuracy and judged win rates.")


def eval_cmd(
    suite: Optional[str] = typer.Option(None, "--suite", help="A shipped suite name (`prefline suite list`), a suite folder, or a suite.yaml (default: the shipped smoke suite, announced before generating)."),
    adapter: Optional[list[str]] = typer.Option(None, "--adapter", help="Evaluate the base model with this registered adapter; repeat it for one run per adapter on one loaded base ('base' for the base alone)."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the adapter's base, else the embedded model); with --backend openai, the served model name."),
    scorers: Optional[str] = typer.Option(None, "--scorers", help="Comma-separated scorer names (default: the suite header's `scorers`, else length,refusal)."),
    replay: Optional[str] = typer.Option(None, "--replay", help="Re-score this run's stored generations instead of generating."),
    max_new_tokens: int = typer.Option(160, "--max-new-tokens", help="Upper bound on tokens per response."),
    batch_size: int = typer.Option(16, "--batch-size", help="Prompts generated together."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling."),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
    backend: str = typer.Option("hf", "--backend", help="Who generates: hf (transformers in-process), openai (an OpenAI-compatible server at --base-url), vllm (vLLM in-process, GPU)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="openai backend: the server's API root, e.g. http://127.0.0.1:8000/v1."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="openai backend: environment variable holding the API key (default: OPENAI_API_KEY; unset means no key)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="openai backend: requests in flight at once (default: 8)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="openai backend: seconds one request may take, and longest silence on its connection (default: 120)."),
    as_json: bool = JsonOpt,
) -> None:
    """Generate on a suite (batched, seeded, cached), score every response, store it all as a run."""
    from prefline.config import DecodingConfig, parse
    from prefline.evals.suite import load_suite

    scorer_names = [s.strip() for s in scorers.split(",") if s.strip()] if scorers else None
    the_ledger = ledger()
    adapters: list[str | None] = [None if a == "base" else a for a in adapter] if adapter else [None]
    if replay is not None:
        from prefline.evals.run import replay_run

        run_ids = [replay_run(replay, the_ledger, scorers=scorer_names)]
    else:
        decoding = parse({"max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": seed, "temperature": temperature}, DecodingConfig, "command line")
        loaded = load_suite(suite or "smoke")
        if suite is None:
            stderr().print(
                f"no --suite given: evaluating on the shipped `{loaded.name}` suite v{loaded.version} ({len(loaded.items)} items); "
                "give --suite SUITE (a shipped name or your suite folder) to choose", markup=False)
        quiet()
        from prefline.evals.run import run_evals

        given = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency, "timeout_s": timeout}
        run_ids = run_evals(loaded, the_ledger, adapters, model_spec=model, decoding=decoding, scorers=scorer_names, backend=backend,
                            backend_options={k: v for k, v in given.items() if v is not None})
    runs = [the_ledger.get_run(run_id) for run_id in run_ids]

    def human() -> None:
        known = names(the_ledger)
        for run in runs:
            show.print_run(console, run, known)

    hints = ([f"prefline runs show {runs[0]['id']}", f"prefline report run {runs[0]['id']} --html run-{runs[0]['id']}.html",
              f"prefline gate BASELINE_RUN {runs[0]['id']}"] if len(runs) == 1 else [f"prefline gate {runs[0]['id']} {runs[1]['id']}"])
    emit(as_json, runs[0] if len(runs) == 1 else runs, human, *hints)


@runs_app.command("list")
def runs_list(as_json: bool = JsonOpt) -> None:
    """List eval runs."""
    the_ledger = ledger()
    rows = the_ledger.list_runs()
    emit(as_json, rows, lambda: show.print_runs(console, rows, names(the_ledger)),
         "prefline runs show RUN", "prefline gate BASELINE_RUN CANDIDATE_RUN")


@runs_app.command("export")
def runs_export(
    run: str = typer.Argument(..., help="Run id."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file instead of standard output."),
) -> None:
    """Write a run as self-describing JSON (schema version, settings, suite, every item's output and scores)."""
    from prefline.evals.run import export_run
    from prefline.report.text import safe

    document = json.dumps(export_run(run, ledger()), indent=2, default=str, ensure_ascii=False)
    if out is None:
        typer.echo(document)
    else:
        from prefline.paths import output_file

        output_file(out).write_text(document + "\n", encoding="utf-8")
        console.print(f"run {safe(run)} written to {safe(out)}")


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="Run id."),
    slices: bool = typer.Option(False, "--slices", help="Also print every metric per slice (mean, interval, n)."),
    items: bool = typer.Option(False, "--items", help="Also print every item's prompt, output and scores."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a run on one screen: what ran and every metric overall by layer; --slices and --items for the rest."""
    the_ledger = ledger()
    row = the_ledger.get_run(run)
    gens = the_ledger.generations(row["id"]) if (items or as_json) else []
    scores = the_ledger.scores(row["id"]) if (items or as_json) else []

    def human() -> None:
        from prefline.report.terminal import metrics_overview

        show.print_run(console, row, names(the_ledger), overall=False)
        console.print(metrics_overview(the_ledger, {f"run {row['id']}": row["id"]}))
        show.print_run_slices(console, row, slices)
        if items:
            show.print_run_items(console, gens, scores)

    hints = [] if items else [f"prefline runs show {row['id']} --items"]
    emit(as_json, {**row, "generations": gens, "scores": scores}, human,
         *hints, f"prefline report run {row['id']} --html run-{row['id']}.html", f"prefline gate BASELINE_RUN {row['id']}")


@preference_app.command("accuracy")
def preference_accuracy(
    data: str = typer.Option(..., "--data", help="Dataset of held-out pairs: name (latest version), name@version, or id."),
    adapter: str = typer.Option(..., "--adapter", help="A DPO-family adapter (implicit reward vs the base) or a reward-model adapter."),
    batch_size: int = typer.Option(8, "--batch-size", help="Sequences scored together."),
    as_json: bool = JsonOpt,
) -> None:
    """Share of pairs where the adapter prefers the chosen response, overall and per slice, stored in the ledger."""
    quiet()
    from prefline.evals.preference_eval import pair_accuracy_eval

    result = pair_accuracy_eval(ledger(), data, adapter, batch_size=batch_size)
    emit(as_json, result, lambda: show.print_accuracy(console, stderr(), result))


@preference_app.command("winrate")
def preference_winrate(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidates: list[str] = typer.Argument(..., help="Candidate eval run id(s) on the same suite hash; several are judged against the baseline and their length-controlled win rates fitted jointly."),
    judge: str = typer.Option("llm", "--judge", help="reward:ADAPTER (a prefline reward model) or llm (an LLM judge on --backend)."),
    backend: str = typer.Option("hf", "--backend", help="LLM judge: generation backend (hf, openai, vllm)."),
    model: Optional[str] = typer.Option(None, "--model", help="LLM judge: model (hf: the embedded default or a folder; openai: the served name)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="LLM judge on openai: the server's API root."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="LLM judge on openai: environment variable holding the API key."),
    as_json: bool = JsonOpt,
) -> None:
    """Candidate-vs-baseline win rate judged in both orders: raw, length-controlled, and the judge's flip rate.

    With several candidates, each is judged against the baseline and stored, and the
    length-controlled win rates are fitted jointly (per-prompt difficulty, shared length term).
    """
    quiet()
    from prefline.evals.preference_eval import make_judge, win_rate_eval, win_rates_eval

    the_ledger = ledger()
    options = {k: v for k, v in {"base_url": base_url, "api_key_env": api_key_env}.items() if v is not None}
    the_judge = make_judge(the_ledger, judge, backend=backend, model=model, **options)
    if len(candidates) > 1:
        result = win_rates_eval(the_ledger, baseline, candidates, the_judge)
        emit(as_json, result, lambda: show.print_win_rates(console, stderr(), result))
    else:
        result = win_rate_eval(the_ledger, baseline, candidates[0], the_judge)
        emit(as_json, result, lambda: show.print_win_rate(console, result))

