"""`prefline data ...`: ingest, agreement, the review queue, list, report, decontaminate, mix, split, diff."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefline.cli._shared import JsonOpt, console, emit, ledger, quiet, stderr
from prefline.report import terminal_data as show

data_app = typer.Typer(no_args_is_help=True, help="Preference datasets: ingest files into versioned, audited datasets.")
review_app = typer.Typer(no_args_is_help=True, help="The expert review queue: disputed pairs out, decisions back in as a new version.")
MajorShareOpt = typer.Option(None, "--major-share", min=0.0, max=1.0, help="Share of pairs changed (Jaccard distance of the id sets) above which a version is a major change (default 0.3).")


@data_app.command("ingest")
def data_ingest(
    file: Path = typer.Argument(..., help="A file of preference signals: JSONL, CSV or Parquet (pairs by default; see --signal)."),
    name: str = typer.Option(..., "--name", help="Dataset name; each ingest adds a new version of it."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Input format: jsonl, csv, parquet, hh-rlhf, ultrafeedback (default: from the file extension)."),
    signal: Optional[str] = typer.Option(None, "--signal", help="Signal kind: pairwise, ratings, events, judge (default: chosen/rejected pairs; ratings for ultrafeedback)."),
    rules: Optional[Path] = typer.Option(None, "--rules", help="Ingest rules YAML: limits, slice vocabularies, ratings margin and cap, event rules, judge audit (docs/data.md)."),
    consensus: Optional[str] = typer.Option(None, "--consensus", help="Combine signals about one pair: majority or dawid-skene (default: majority for signals; none for plain pairs)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source label for rows that carry none (default: the file name)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any row was rejected or duplicated (the version is still stored)."),
    as_json: bool = JsonOpt,
) -> None:
    """Validate a file of preference signals and store it as a new dataset version (Parquet + rejects file)."""
    from prefline.data.ingest import ingest

    the_ledger = ledger()
    result = ingest(file, name, the_ledger, fmt=fmt, source=source, signal=signal, rules=rules, consensus=consensus)
    show.print_problems(stderr(), result)  # on stderr, with or without --json

    def human() -> None:
        show.print_ingest(console, result)
        show.ingest_notes(stderr(), the_ledger, result)

    emit(as_json, result.as_dict(), human,
         f"prefline data report {result.name} --html {result.name}.html",
         f"prefline data split {result.name} --heldout 0.2", f"prefline train dpo --data {result.name} --name ADAPTER")
    if strict and (result.n_rejected or result.n_duplicates):
        raise typer.Exit(1)


@data_app.command("agreement")
def data_agreement(
    dataset: str = typer.Argument(..., help="Dataset name (latest version), name@version, or id."),
    flag_margin: float = typer.Option(0.2, "--flag-margin", help="Flag annotators whose agreement with the others is this far below the median annotator's."),
    min_pairs: int = typer.Option(5, "--min-pairs", help="Vote pairs an annotator needs before they can be flagged."),
    as_json: bool = JsonOpt,
) -> None:
    """Inter-annotator agreement (Krippendorff's alpha, percent agreement) overall, per slice, per axis, per annotator."""
    from prefline.data.agreement import agreement_report
    from prefline.data.store import load_signals

    row = ledger().get_dataset(dataset)
    report = {"dataset": f"{row['name']}@{row['version']}", **agreement_report(load_signals(row), flag_margin, min_pairs)}
    emit(as_json, report, lambda: show.print_agreement(console, report))


data_app.add_typer(review_app, name="review")


@review_app.command("export")
def data_review_export(
    dataset: str = typer.Argument(..., help="Dataset name (latest version), name@version, or id."),
    out: Path = typer.Option(..., "--out", help="Review file to write: .jsonl or .csv (both responses, every vote and rationale)."),
    min_disagreement: float = typer.Option(0.33, "--min-disagreement", help="Queue pairs whose share of dissenting votes is at least this (pairs without consensus always)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write the high-disagreement pairs of a dataset version for expert review."""
    from prefline.data.review import export_review
    from prefline.report.text import safe

    summary = export_review(dataset, out, ledger(), min_disagreement)
    emit(as_json, summary, lambda: console.print(f"{summary['n_items']} pair(s) of {safe(summary['dataset'])} to review: {safe(summary['path'])}"))


@review_app.command("import")
def data_review_import(
    file: Path = typer.Argument(..., help="A review file (.jsonl or .csv) with 'decision' filled in: a, b or tie."),
    into: str = typer.Option(..., "--into", help="Dataset name that gets the new version (usually the reviewed dataset's)."),
    base: Optional[str] = typer.Option(None, "--base", help="Dataset version the decisions apply to (default: the one named in the file)."),
    as_json: bool = JsonOpt,
) -> None:
    """Bring review decisions back as a new signal and store the result as a new dataset version."""
    from prefline.data.review import import_review

    result = import_review(file, into, ledger(), base=base)
    show.print_problems(stderr(), result)
    emit(as_json, result.as_dict(), lambda: show.print_ingest(console, result))


@data_app.command("list")
def data_list(as_json: bool = JsonOpt) -> None:
    """List dataset versions in the ledger."""
    rows = ledger().list_datasets()
    emit(as_json, rows, lambda: show.print_datasets(console, rows))


@data_app.command("report")
def data_report(
    dataset: str = typer.Argument(..., help="Dataset name (latest version), name@version, or id."),
    targets: Optional[Path] = typer.Option(None, "--targets", help="Target mixture YAML: least share or pairs per slice value (docs/data.md)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML page (plots embedded) to this file."),
    close_calls: bool = typer.Option(False, "--close-calls", help="Score each pair's close-call margin with the reference model (needs a model; slow on CPU)."),
    model: Optional[str] = typer.Option(None, "--model", help="Reference model for --close-calls: the embedded default, a local folder, or a cached hub id."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="With --close-calls: score this many pairs, drawn with seed 0 (default: all)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes that scan the pairs (default: the CPUs, at most 4)."),
    as_json: bool = JsonOpt,
) -> None:
    """Quality report: coverage vs targets, bias profile, trivial and close-call negatives, duplicates, contamination."""
    from prefline.data.coverage import load_targets
    from prefline.data.store import require_files
    from prefline.data.quality import data_report as build
    from prefline.report.text import safe

    wanted = load_targets(targets) if targets else None
    the_ledger = ledger()
    row = require_files(the_ledger.get_dataset(dataset))
    if close_calls:
        quiet()
    from prefline.evals.close_calls import scorer

    report = build(row, the_ledger, wanted, close_calls=scorer(model, sample) if close_calls else None, workers=workers)
    if html:
        from prefline.report.data_html import write_html

        write_html(report, html)

    def human() -> None:
        show.print_data_report(console, report)
        if html:
            console.print(f"html: {safe(html)}")

    emit(as_json, report, human, f"prefline data split {row['name']}@{row['version']} --heldout 0.2",
         f"prefline train dpo --data {row['name']}@{row['version']} --name ADAPTER")


@data_app.command("decontaminate")
def data_decontaminate(
    dataset: str = typer.Argument(..., help="Dataset name (latest version), name@version, or id."),
    name: str = typer.Option(..., "--name", help="Dataset that gets the new version (without the contaminated pairs)."),
    major_share: Optional[float] = MajorShareOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write a new version without the pairs whose prompt overlaps a frozen evaluation suite (recorded as lineage)."""
    from prefline.data.contamination import decontaminate

    result = decontaminate(dataset, name, ledger(), major_share=major_share)
    emit(as_json, result, lambda: show.print_version(console, result, f"removed {result['rejects']} contaminated pair(s)"))


@data_app.command("mix")
def data_mix(
    name: str = typer.Option(..., "--name", help="Dataset that gets the new version."),
    sources: list[str] = typer.Option(..., "--from", help="DATASET:WEIGHT, repeatable: keep this share, in (0, 1], of the dataset's pairs."),
    by_slice: list[str] = typer.Option([], "--by-slice", help="KEY=VALUE:WEIGHT, repeatable: multiply the keep rate of pairs with this tag (0 drops them)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw: the same seed and data give the same mixture."),
    balance_length: bool = typer.Option(False, "--balance-length", help="Then cut chosen-longer pairs, per slice, to as many as the others (the cut ones go to rejects.jsonl)."),
    major_share: Optional[float] = MajorShareOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Build a new dataset version from existing ones, weighted per dataset and per slice (recorded as lineage)."""
    from prefline.data.mix import mix, parse_slice_weight, parse_source

    result = mix(name, [parse_source(s) for s in sources], ledger(), [parse_slice_weight(s) for s in by_slice], seed=seed,
                 major_share=major_share, balance_length=balance_length)
    emit(as_json, result, lambda: show.print_version(console, result, show.mix_summary(result)))


@data_app.command("split")
def data_split(
    dataset: str = typer.Argument(..., help="Dataset to split: name (latest version), name@version, or id."),
    heldout: float = typer.Option(..., "--heldout", help="Share of prompts to hold out, between 0 and 1 (e.g. 0.2)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw: the same seed and data give the same split."),
    train_name: Optional[str] = typer.Option(None, "--train-name", help="Dataset that gets the training side (default: NAME-train)."),
    heldout_name: Optional[str] = typer.Option(None, "--heldout-name", help="Dataset that gets the held-out side (default: NAME-heldout)."),
    as_json: bool = JsonOpt,
) -> None:
    """Hold out pairs for evaluation: by prompt (no prompt on both sides), stratified by slice, recorded as lineage."""
    from prefline.data.split import split

    result = split(dataset, heldout, ledger(), seed=seed, train_name=train_name, heldout_name=heldout_name)
    train, held = result["train"]["dataset"], result["heldout"]["dataset"]
    emit(as_json, result, lambda: show.print_split(console, result),
         f"prefline train dpo --data {train['name']} --name ADAPTER",
         f"prefline preference accuracy --data {held['name']} --adapter ADAPTER  (after training)")


@data_app.command("diff")
def data_diff(
    old: str = typer.Argument(..., help="The earlier version: name@version or id (or, alone, the version to compare with its parent)."),
    new: Optional[str] = typer.Argument(None, help="The later version (default: OLD is compared with its recorded parent)."),
    major_share: Optional[float] = MajorShareOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Pairs added and removed, per-source and per-slice counts, and the bias-profile change between two versions."""
    from prefline.data.diff import diff_versions
    from prefline.data.lineage import versions_to_diff

    change = diff_versions(*versions_to_diff(ledger(), old, new), major_share)
    emit(as_json, change, lambda: show.print_diff(console, change))
