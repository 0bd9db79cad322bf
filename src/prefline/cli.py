"""The prefline command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from prefline.errors import PreflineError

EXIT_USAGE = 2


class _Group(TyperGroup):
    """Turns a PreflineError anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx):  # noqa: ANN001
        try:
            return super().invoke(ctx)
        except PreflineError as exc:
            Console(stderr=True, soft_wrap=True, highlight=False).print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="prefline: preference data in, LoRA adapters out, and a gate that decides whether they ship.")
data_app = typer.Typer(no_args_is_help=True, help="Preference datasets: ingest files into versioned, audited datasets.")
train_app = typer.Typer(no_args_is_help=True, help="Train LoRA adapters from a dataset version.")
adapters_app = typer.Typer(no_args_is_help=True, help="Registered adapters and their lineage.")
runs_app = typer.Typer(no_args_is_help=True, help="Stored evaluation runs.")
suite_app = typer.Typer(no_args_is_help=True, help="Evaluation suites.")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(adapters_app, name="adapters")
app.add_typer(runs_app, name="runs")
app.add_typer(suite_app, name="suite")
preference_app = typer.Typer(no_args_is_help=True, help="The preference layer: held-out pair accuracy and judged win rates.")
app.add_typer(preference_app, name="preference")

# Wide enough for the gate table when piped to a file; a terminal keeps its own width.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def _ledger():
    from prefline.ledger import Ledger

    return Ledger()


def _quiet() -> None:
    """Silence library chatter (tokenizer warnings, datasets progress) so prefline's own output reads."""
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    return table


# --- data -------------------------------------------------------------------------------


@data_app.command("ingest")
def data_ingest(
    file: Path = typer.Argument(..., help="A JSONL file of preference pairs (TRL conversational or plain-string form)."),
    name: str = typer.Option(..., "--name", help="Dataset name; each ingest adds a new version of it."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Input format (default: from the file extension)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source label for rows that carry none (default: the file name)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any row was rejected or duplicated (the version is still stored)."),
    as_json: bool = JsonOpt,
) -> None:
    """Validate a file of pairs and store it as a new dataset version (Parquet + rejects file)."""
    from prefline.data.ingest import ingest

    result = ingest(file, name, _ledger(), fmt=fmt, source=source)
    if as_json:
        _print_json(result.as_dict())
    else:
        err = Console(stderr=True, soft_wrap=True, highlight=False)
        for problem in result.problems[:50]:
            err.print(problem, markup=False)
        if len(result.problems) > 50:
            err.print(f"... and {len(result.problems) - 50} more in {result.rejects_path}", markup=False)
        console.print(
            f"dataset [bold]{result.name}@{result.version}[/bold] (id {result.dataset_id}, hash {result.content_hash[:12]})\n"
            f"  read {result.n_read} = accepted {result.n_accepted} + rejected {result.n_rejected} + duplicates {result.n_duplicates}\n"
            f"  pairs:   {result.path}\n  rejects: {result.rejects_path}"
        )
    if strict and (result.n_rejected or result.n_duplicates):
        raise typer.Exit(1)


@data_app.command("list")
def data_list(as_json: bool = JsonOpt) -> None:
    """List dataset versions in the ledger."""
    rows = _ledger().list_datasets()
    if as_json:
        return _print_json(rows)
    console.print(_table("datasets", ["id", "name@version", "pairs", "rejected", "duplicates", "hash", "created"],
                         [[r["id"], f"{r['name']}@{r['version']}", r["n_accepted"], r["n_rejected"], r["n_duplicates"], r["content_hash"][:12], r["created_at"]] for r in rows]))


# --- train ------------------------------------------------------------------------------


def _train_command(method: str):
    """The `prefline train METHOD` command for one entry of the method table."""

    def command(
        data: str = typer.Option(..., "--data", help="Dataset name (latest version), name@version, or id."),
        name: str = typer.Option(..., "--name", help="Name of the adapter to create (unique)."),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML file of training settings (see prefline.config.TrainConfig)."),
        model: Optional[str] = typer.Option(None, "--model", help="Base model: the embedded default, a local folder, or a cached hub id."),
        surface: Optional[str] = typer.Option(None, "--surface", help="Product surface this adapter serves (chat, code, voice, ...)."),
        epochs: Optional[float] = typer.Option(None, "--epochs", help="Override: passes over the data."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Override: stop after this many steps."),
        beta: Optional[float] = typer.Option(None, "--beta", help="Override: beta (its meaning and default are in this method's description)."),
        learning_rate: Optional[float] = typer.Option(None, "--lr", help="Override: learning rate."),
        as_json: bool = JsonOpt,
    ) -> None:
        from prefline.config import TrainConfig, load_yaml, parse

        base = load_yaml(config, TrainConfig).model_dump() if config else {}
        overrides = {"epochs": epochs, "max_steps": max_steps, "beta": beta, "learning_rate": learning_rate}
        settings = parse({**base, **{k: v for k, v in overrides.items() if v is not None}}, TrainConfig, str(config or "command line"))
        _quiet()
        from prefline.train.run import train

        adapter = train(method, data, name, settings, _ledger(), model_spec=model, surface=surface)
        if as_json:
            return _print_json(adapter)
        _print_adapter(adapter)

    return command


def _register_train_commands() -> None:
    from prefline.train.methods import METHODS  # names and docs only: TRL is imported when a run starts

    for spec in METHODS.values():
        text = f"{spec.title}: train a LoRA adapter and register it with its lineage.\n\n{spec.doc()}"
        train_app.command(spec.name, help=text, short_help=spec.title)(_train_command(spec.name))


_register_train_commands()


def _print_adapter(adapter: dict[str, Any]) -> None:
    metrics = adapter.get("metrics") or {}
    last = metrics.get("last", {})
    # each method logs its own quantities (DPO reward margins, reward-model accuracy, SFT token accuracy)
    shown = ", ".join(f"{key} {last[key]:.4g}" for key in ("loss", "rewards/accuracies", "rewards/margins", "accuracy", "margin", "mean_token_accuracy") if key in last)
    console.print(
        f"adapter [bold]{adapter['name']}[/bold] (id {adapter['id']}, {adapter['method']}, status {adapter['status']})\n"
        f"  base model: {adapter['base_model']} ({adapter['base_model_hash'][:12]})\n"
        f"  dataset id {adapter['dataset_id']} ({adapter['dataset_hash'][:12]}), seed {adapter['seed']}\n"
        f"  steps {metrics.get('steps')}, {metrics.get('runtime_s')} s; last step: {shown or 'no metrics'}\n"
        f"  files: {adapter['path']} (hash {(adapter['adapter_hash'] or '')[:12]})"
    )


@adapters_app.command("list")
def adapters_list(as_json: bool = JsonOpt) -> None:
    """List registered adapters."""
    rows = _ledger().list_adapters()
    if as_json:
        return _print_json(rows)
    console.print(_table("adapters", ["id", "name", "method", "status", "base model", "dataset", "surface", "created"],
                         [[r["id"], r["name"], r["method"], r["status"], r["base_model"], r["dataset_id"], r["surface"], r["created_at"]] for r in rows]))


@adapters_app.command("show")
def adapters_show(name: str = typer.Argument(..., help="Adapter name or id."), as_json: bool = JsonOpt) -> None:
    """Show one adapter's lineage: base model, dataset, config, metrics, step history."""
    ledger = _ledger()
    adapter = ledger.get_adapter(name, finished=False)
    steps = ledger.train_steps(adapter["id"])
    if as_json:
        return _print_json({**adapter, "steps": steps})
    _print_adapter(adapter)
    console.print(f"  config: {json.dumps(adapter['config'])}\n  versions: {json.dumps(adapter['versions'])}")
    keys = ["loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "tokens_per_s"]
    console.print(_table("steps", ["step", *keys], [[s["step"], *[f"{s['metrics'].get(k, float('nan')):.4g}" for k in keys]] for s in steps]))


# --- eval -------------------------------------------------------------------------------


@app.command("eval")
def eval_cmd(
    suite: str = typer.Option("smoke", "--suite", help="A shipped suite name, a suite folder, or a suite.yaml."),
    adapter: Optional[str] = typer.Option(None, "--adapter", help="Evaluate the base model with this registered adapter."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the adapter's base, else the embedded model); with --backend openai, the served model name."),
    scorers: Optional[str] = typer.Option(None, "--scorers", help="Comma-separated scorer names (default: length,refusal)."),
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

    names = [s.strip() for s in scorers.split(",") if s.strip()] if scorers else None
    ledger = _ledger()
    if replay is not None:
        from prefline.evals.run import replay_run

        run_id = replay_run(replay, ledger, scorers=names)
    else:
        decoding = parse({"max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": seed, "temperature": temperature}, DecodingConfig, "command line")
        loaded = load_suite(suite)
        _quiet()
        from prefline.evals.run import run_eval

        given = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency, "timeout_s": timeout}
        run_id = run_eval(loaded, ledger, model_spec=model, adapter=adapter, decoding=decoding, scorers=names, backend=backend,
                          backend_options={k: v for k, v in given.items() if v is not None})
    run = ledger.get_run(run_id)
    if as_json:
        return _print_json(run)
    _print_run(run)


def _print_run(run: dict[str, Any]) -> None:
    adapter = f" + adapter {run['adapter_id']}" if run["adapter_id"] else ""
    adapter += f", replay of run {run['replay_of']}" if run.get("replay_of") else ""
    console.print(f"run [bold]{run['id']}[/bold]: suite {run['suite_name']} ({run['suite_hash'][:12]}), model {run['model']}{adapter}, status {run['status']}")
    summary = run.get("summary") or {}
    rows = [[metric, s["n"], f"{s['mean']:.3f}", f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"]
            for metric, by_slice in summary.items() for name, s in by_slice.items() if name == "overall"]
    console.print(_table("overall (90% bootstrap interval)", ["metric", "n", "mean", "interval"], rows))


@runs_app.command("list")
def runs_list(as_json: bool = JsonOpt) -> None:
    """List eval runs."""
    rows = _ledger().list_runs()
    if as_json:
        return _print_json(rows)
    console.print(_table("eval runs", ["id", "status", "suite", "suite hash", "model", "adapter", "created"],
                         [[r["id"], r["status"], r["suite_name"], r["suite_hash"][:12], r["model"], r["adapter_id"], r["created_at"]] for r in rows]))


@runs_app.command("export")
def runs_export(
    run: str = typer.Argument(..., help="Run id."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file instead of standard output."),
) -> None:
    """Write a run as self-describing JSON (schema version, settings, suite, every item's output and scores)."""
    from prefline.evals.run import export_run

    document = json.dumps(export_run(run, _ledger()), indent=2, default=str, ensure_ascii=False)
    if out is None:
        typer.echo(document)
    else:
        out.write_text(document + "\n", encoding="utf-8")
        console.print(f"run {run} written to {out}")


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="Run id."),
    items: bool = typer.Option(False, "--items", help="Also print every item's output and scores."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a run: its summary per metric and slice, and optionally every generation."""
    ledger = _ledger()
    row = ledger.get_run(run)
    gens = ledger.generations(row["id"]) if (items or as_json) else []
    scores = ledger.scores(row["id"]) if (items or as_json) else []
    if as_json:
        return _print_json({**row, "generations": gens, "scores": scores})
    _print_run(row)
    for metric, by_slice in (row.get("summary") or {}).items():
        console.print(_table(metric, ["slice", "n", "mean", "interval"],
                             [[name, s["n"], f"{s['mean']:.3f}", f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"] for name, s in by_slice.items()]))
    if items:
        by_item: dict[str, list[str]] = {}
        for s in scores:
            if s["value"] is not None:
                by_item.setdefault(s["item_id"], []).append(f"{s['metric']}={s['value']:g}")
        for g in gens:
            console.print(f"[bold]{g['item_id']}[/bold] {json.dumps(g['slices'])}  {' '.join(by_item.get(g['item_id'], []))}")
            console.print(f"  > {g['messages'][-1]['content']}", markup=False)
            console.print(f"  < {g['output']}", markup=False)


# --- suites -----------------------------------------------------------------------------


@suite_app.command("list")
def suite_list(as_json: bool = JsonOpt) -> None:
    """List the suites shipped with prefline."""
    from prefline.evals.suite import load_suite, shipped_suites, suite_summary

    rows = [suite_summary(load_suite(name)) for name in shipped_suites()]
    if as_json:
        return _print_json(rows)
    console.print(_table("suites", ["name", "version", "items", "hash"], [[r["name"], r["version"], r["items"], r["hash"][:12]] for r in rows]))


@suite_app.command("validate")
def suite_validate(suite: str = typer.Argument(..., help="Shipped suite name, suite folder or suite.yaml.")) -> None:
    """Check every item of a suite (reports all malformed items at once, with file, line and field)."""
    from prefline.evals.suite import load_suite

    loaded = load_suite(suite)
    console.print(f"suite {loaded.name} v{loaded.version}: {len(loaded.items)} items valid, hash {loaded.hash}")


@suite_app.command("freeze")
def suite_freeze(suite: str = typer.Argument(..., help="Shipped suite name or suite folder.")) -> None:
    """Register a suite version as immutable: later loads must hash to the same items."""
    from prefline.evals.suite import freeze_suite, load_suite

    loaded = load_suite(suite)
    freeze_suite(loaded, _ledger())
    console.print(f"suite {loaded.name} v{loaded.version} frozen: {len(loaded.items)} items, hash {loaded.hash}")


@suite_app.command("show")
def suite_show(suite: str = typer.Argument(..., help="Shipped suite name or suite folder."), as_json: bool = JsonOpt) -> None:
    """Validate a suite and show its hash and slice counts."""
    from prefline.evals.suite import check_frozen, load_suite, suite_summary

    loaded = load_suite(suite)
    ledger = _ledger()
    check_frozen(loaded, ledger)
    summary = {**suite_summary(loaded), "frozen": ledger.frozen_suite(loaded.name, loaded.version) is not None}
    if as_json:
        return _print_json(summary)
    frozen = "frozen" if summary["frozen"] else "not frozen"
    console.print(f"suite [bold]{summary['name']}[/bold] v{summary['version']} ({frozen}): {summary['items']} items, hash {summary['hash']}\n  {summary['path']}")
    for key, counts in summary["slices"].items():
        console.print(f"  {key}: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))


# --- preference layer -------------------------------------------------------------------


def _print_accuracy_table(title: str, slices: dict[str, Any]) -> None:
    rows = [[name, s["n"], f"{s['accuracy']:.3f}", f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"] for name, s in slices.items()]
    console.print(_table(title, ["slice", "n", "accuracy", "90% interval"], rows))


@preference_app.command("accuracy")
def preference_accuracy(
    data: str = typer.Option(..., "--data", help="Dataset of held-out pairs: name (latest version), name@version, or id."),
    adapter: str = typer.Option(..., "--adapter", help="A DPO-family adapter (implicit reward vs the base) or a reward-model adapter."),
    batch_size: int = typer.Option(8, "--batch-size", help="Sequences scored together."),
    as_json: bool = JsonOpt,
) -> None:
    """Share of pairs where the adapter prefers the chosen response, overall and per slice, stored in the ledger."""
    _quiet()
    from prefline.evals.preference_eval import pair_accuracy_eval

    result = pair_accuracy_eval(_ledger(), data, adapter, batch_size=batch_size)
    if as_json:
        return _print_json(result)
    if result["warning"]:
        Console(stderr=True, soft_wrap=True, highlight=False).print(f"warning: {result['warning']}", markup=False)
    _print_accuracy_table(f"{result['kind']} of {result['adapter']} on {result['dataset']} (evaluation {result['id']})", result["slices"])


@preference_app.command("winrate")
def preference_winrate(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id (same suite hash)."),
    judge: str = typer.Option("llm", "--judge", help="reward:ADAPTER (a prefline reward model) or llm (an LLM judge on --backend)."),
    backend: str = typer.Option("hf", "--backend", help="LLM judge: generation backend (hf, openai, vllm)."),
    model: Optional[str] = typer.Option(None, "--model", help="LLM judge: model (hf: the embedded default or a folder; openai: the served name)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="LLM judge on openai: the server's API root."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="LLM judge on openai: environment variable holding the API key."),
    as_json: bool = JsonOpt,
) -> None:
    """Candidate-vs-baseline win rate judged in both orders: raw, length-controlled, and the judge's flip rate."""
    _quiet()
    from prefline.evals.preference_eval import make_judge, win_rate_eval

    ledger = _ledger()
    options = {k: v for k, v in {"base_url": base_url, "api_key_env": api_key_env}.items() if v is not None}
    result = win_rate_eval(ledger, baseline, candidate, make_judge(ledger, judge, backend=backend, model=model, **options))
    if as_json:
        return _print_json(result)
    rows = []
    for name, s in result["slices"].items():
        lc = s.get("length_controlled")
        rows.append([name, s["n"], f"{s['raw']['estimate']:.3f} [{s['raw']['ci'][0]:.3f}, {s['raw']['ci'][1]:.3f}]",
                     f"{lc['estimate']:.3f} [{lc['ci'][0]:.3f}, {lc['ci'][1]:.3f}]" if lc else "(too few items)", f"{s['flip_rate']:.2f}"])
    console.print(_table(f"win rate of run {result['candidate_run']} vs run {result['baseline_run']}, judge {json.dumps(result['judge'].get('model') or result['judge'].get('adapter'))} (evaluation {result['id']})",
                         ["slice", "n", "raw [90% CI]", "length-controlled [90% CI]", "flip rate"], rows))
    warning = result["slices"]["overall"].get("warning")
    if warning:
        console.print(f"warning: {warning}", markup=False)


# --- gate -------------------------------------------------------------------------------


@app.command("gate")
def gate_cmd(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Gate policy YAML (default: the shipped default policy)."),
    as_json: bool = JsonOpt,
) -> None:
    """Compare two runs per slice under a policy; exit 0 on pass, 1 on fail."""
    from prefline.config import GatePolicy, load_yaml
    from prefline.gate.compare import compare_runs
    from prefline.report.terminal import gate_table, verdict_line

    result = compare_runs(_ledger(), baseline, candidate, load_yaml(policy, GatePolicy) if policy else None)
    if as_json:
        _print_json(result.as_dict())
    else:
        console.print(gate_table(result))
        console.print(verdict_line(result))
    raise typer.Exit(0 if result.verdict == "pass" else 1)


# --- demo -------------------------------------------------------------------------------


@app.command("demo")
def demo_cmd(
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the embedded SmolLM2-135M-Instruct)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Train for this many steps instead of the demo's default."),
) -> None:
    """Run the whole path on shipped data: ingest, baseline eval, DPO, candidate eval, gate."""
    _quiet()
    from prefline.demo import run_demo

    run_demo(_ledger(), console, model_spec=model, max_steps=max_steps)


def main() -> None:
    app()
