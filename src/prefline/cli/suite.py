"""`prefline suite ...` and `prefline scorers ...`: evaluation suites and the scorers they name."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefline.cli._shared import JsonOpt, console, emit, ledger, stderr
from prefline.errors import PreflineError
from prefline.report import terminal_runs as show
from prefline.report.text import plain, safe

suite_app = typer.Typer(no_args_is_help=True, help="Evaluation suites.")
scorers_app = typer.Typer(no_args_is_help=True, help="The registered scorers: what each measures, its metrics and directions, and the item fields it reads.")


@suite_app.command("list")
def suite_list(as_json: bool = JsonOpt) -> None:
    """List the suites shipped with prefline."""
    from prefline.evals.suite import load_suite, shipped_suites, suite_summary

    rows = [suite_summary(load_suite(name)) for name in shipped_suites()]
    emit(as_json, rows, lambda: show.print_suites(console, rows))


@suite_app.command("validate")
def suite_validate(suite: str = typer.Argument(..., help="Shipped suite name, suite folder or suite.yaml.")) -> None:
    """Check a suite as a run would, before generating anything: the header (keys, version, scorer names),
    every item (fields, constraints, JSON Schema, tool calls; all malformed items at once, with file and
    line), the header's slice_counts against the items, and that a frozen version still hashes the same."""
    from prefline.evals.suite import check_frozen, load_suite, slice_count_problems

    loaded = load_suite(suite)
    check_frozen(loaded, ledger())
    counts = slice_count_problems(loaded)
    if counts and loaded.declared_slice_counts is not None:
        raise PreflineError(f"suite {loaded.name} v{loaded.version}: " + "; ".join(counts))
    for problem in counts:
        stderr().print(plain(f"warning: {problem}"), markup=False)
    console.print(f"suite {safe(loaded.name)} v{loaded.version}: {len(loaded.items)} items valid, hash {loaded.hash}")


@suite_app.command("freeze")
def suite_freeze(suite: str = typer.Argument(..., help="Shipped suite name or suite folder.")) -> None:
    """Register a suite version as immutable: later loads must hash to the same items."""
    from prefline.evals.suite import freeze_suite, load_suite

    loaded = load_suite(suite)
    freeze_suite(loaded, ledger())
    console.print(f"suite {safe(loaded.name)} v{loaded.version} frozen: {len(loaded.items)} items, hash {loaded.hash}")


@suite_app.command("import-ifeval")
def suite_import_ifeval(
    file: Path = typer.Argument(..., help="IFEval input file: JSON Lines with key, prompt, instruction_id_list, kwargs."),
    out: Optional[Path] = typer.Option(None, "--out", help="Suite folder to write (must not exist or be empty; default: the file's name without extension)."),
    name: Optional[str] = typer.Option(None, "--name", help="Suite name (default: the file's name without extension)."),
    as_json: bool = JsonOpt,
) -> None:
    """Turn an IFEval input file into a suite whose items carry IFEval instructions, checked with IFEval's semantics."""
    from prefline.evals.ifeval_import import import_ifeval

    result = import_ifeval(file, out if out is not None else Path(file.stem), name=name)
    if result["note"]:
        stderr().print(f"note: {result['note']}", markup=False)
    emit(as_json, result, lambda: show.print_ifeval_import(console, result))


@suite_app.command("show")
def suite_show(suite: str = typer.Argument(..., help="Shipped suite name or suite folder."), as_json: bool = JsonOpt) -> None:
    """Validate a suite and show its hash and slice counts."""
    from prefline.evals.suite import check_frozen, load_suite, suite_summary

    loaded = load_suite(suite)
    the_ledger = ledger()
    check_frozen(loaded, the_ledger)
    summary = {**suite_summary(loaded), "frozen": the_ledger.frozen_suite(loaded.name, loaded.version) is not None}
    emit(as_json, summary, lambda: show.print_suite(console, summary))


@scorers_app.command("list")
def scorers_list(as_json: bool = JsonOpt) -> None:
    """Every scorer: section, layer, category, axis, metrics with the direction that is better, and the item fields it reads."""
    from prefline.evals.scorers.catalog import catalog

    rows = catalog()
    emit(as_json, rows, lambda: show.print_scorers(console, rows), "prefline scorers show NAME")


@scorers_app.command("show")
def scorers_show(name: str = typer.Argument(..., help="Scorer name (see `prefline scorers list`)."), as_json: bool = JsonOpt) -> None:
    """One scorer: what it measures, its metrics and directions, and the suite item fields it needs."""
    from prefline.evals.scorers.catalog import find

    scorer = find(name)
    emit(as_json, scorer, lambda: show.print_scorer(console, scorer))
