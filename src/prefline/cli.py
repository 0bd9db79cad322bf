"""The prefline command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from prefline.errors import PreflineError

EXIT_USAGE = 2


EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT


def _error_line(message: str) -> None:
    """One line on stderr: a message that spans lines (a parser's caret diagram) is joined into one."""
    from prefline.report.text import plain

    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"error: {plain(text)}", markup=False)


class _Group(TyperGroup):
    """Turns an error the user caused anywhere below into one line on stderr and exit code 2.

    A PreflineError is the usual one. A file the user named that cannot be read (a folder, no
    permission, gone meanwhile) and input nested too deeply to process are user-caused too, and
    get the same treatment; Ctrl-C and SIGTERM stop the command with exit code 130 after the
    library has cleaned up (a partial dataset version removed, an eval run marked failed).
    """

    def invoke(self, ctx):  # noqa: ANN001
        try:
            return super().invoke(ctx)
        except PreflineError as exc:
            _error_line(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            _error_line("interrupted; nothing half-written was kept (`prefline doctor` checks the ledger against the files)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except RecursionError:
            _error_line("the input is nested too deeply to process")
            raise typer.Exit(EXIT_USAGE) from None
        except OSError as exc:
            about_files = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
            if isinstance(exc, BrokenPipeError) or (exc.filename is None and not isinstance(exc, about_files)):
                raise
            _error_line(f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc))
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
release_app = typer.Typer(no_args_is_help=True, help="Releases per surface (chat, code, voice, ...): promote, roll back with confirmed recovery, status, history.")
app.add_typer(release_app, name="release")
report_app = typer.Typer(no_args_is_help=True, help="Self-contained HTML reports (and markdown summaries) of runs, adapters, comparisons, gate decisions, diagnoses and releases.")
app.add_typer(report_app, name="report")
scorers_app = typer.Typer(no_args_is_help=True, help="The registered scorers: what each measures, its metrics and directions, and the item fields it reads.")
app.add_typer(scorers_app, name="scorers")

# Wide enough for the gate table when piped to a file; a terminal keeps its own width.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def _s(value: Any) -> str:
    from prefline.report.text import safe

    return safe(value)


def _next(*commands: str) -> None:
    """Say on stderr what to run next, so a newcomer is never left at a dead end (stdout stays results only)."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    for i, command in enumerate(commands):
        err.print(f"{'next:' if i == 0 else '  or:'} {command}", markup=False, style="dim")


class _Names:
    """Names and versions for the ids the ledger links by: ``tiny@2`` for dataset 3, ``dpo-v1`` for adapter 1."""

    def __init__(self, ledger):  # noqa: ANN001
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


def _plain(value: Any) -> str:
    from prefline.report.text import plain

    return plain(value)


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose title and cells are shown as given: user strings in them are never read as markup."""
    table = Table(title=_s(title), title_justify="left")
    for column in columns:
        table.add_column(_s(column))
    for row in rows:
        table.add_row(*["" if v is None else _s(v) for v in row])
    return table


# --- data -------------------------------------------------------------------------------


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

    ledger = _ledger()
    result = ingest(file, name, ledger, fmt=fmt, source=source, signal=signal, rules=rules, consensus=consensus)
    _print_problems(result)  # on stderr, with or without --json
    if as_json:
        _print_json(result.as_dict())
    else:
        _print_ingest(result)
    if not as_json:  # a machine reads the version from the JSON
        _ingest_notes(ledger, result)
        _next(f"prefline data report {result.name} --html {result.name}.html",
              f"prefline data split {result.name} --heldout 0.2", f"prefline train dpo --data {result.name} --name ADAPTER")
    if strict and (result.n_rejected or result.n_duplicates):
        raise typer.Exit(1)


def _ingest_notes(ledger, result) -> None:  # noqa: ANN001
    """On stderr: an ingest that repeats stored pairs, and a name that already had versions, are said out loud."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    others = [d for d in ledger.list_datasets() if d["id"] != result.dataset_id]
    same = [f"{d['name']}@{d['version']}" for d in others if d["content_hash"] == result.content_hash]
    if same:
        err.print(f"note: {', '.join(same)} already holds exactly these pairs (same content hash {result.content_hash[:12]}); "
                  f"{result.name}@{result.version} is a new version with nothing new in it", markup=False)
    earlier = [d["version"] for d in others if d["name"] == result.name]
    if earlier:
        err.print(f"note: dataset {result.name} already had version(s) {', '.join(map(str, sorted(earlier)))}: this ingest created "
                  f"{result.name}@{result.version}, which `--data {result.name}` now picks (`--data {result.name}@{max(earlier)}` for the previous one)",
                  markup=False)


def _print_problems(result) -> None:  # noqa: ANN001
    """The first 50 problems of an ingest (rejected rows, unknown fields), on stderr."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    for problem in result.problems[:50]:
        err.print(_plain(problem), markup=False)
    if len(result.problems) > 50:
        err.print(_plain(f"... and {len(result.problems) - 50} more in {result.rejects_path}"), markup=False)


def _print_ingest(result) -> None:  # noqa: ANN001
    counts = (f"  read {result.n_read} = accepted {result.n_accepted} + rejected {result.n_rejected}"
              f" + duplicates {result.n_duplicates} + excluded {result.n_excluded}")
    lines = [f"dataset [bold]{_s(result.name)}@{result.version}[/bold] (id {result.dataset_id}, hash {result.content_hash[:12]})", counts]
    if result.excluded:
        lines.append("  excluded: " + ", ".join(f"{_s(category)} {n}" for category, n in result.excluded.items()))
    if result.signal != "pairs" or result.consensus != "none":
        lines.append(f"  pairs {result.n_pairs} ({result.signal} signals, consensus {result.consensus})")
    if result.stats:
        lines.append("  counts: " + ", ".join(f"{_s(key)} {n}" for key, n in result.stats.items()))
    lines.append(f"  pairs:   {_s(result.path)}\n  rejects: {_s(result.rejects_path)}")
    if result.audit_path:
        lines.append(f"  audit:   {_s(result.audit_path)}")
    console.print("\n".join(lines))


@data_app.command("agreement")
def data_agreement(
    dataset: str = typer.Argument(..., help="Dataset name (latest version), name@version, or id."),
    flag_margin: float = typer.Option(0.2, "--flag-margin", help="Flag annotators whose agreement with the others is this far below the median annotator's."),
    min_pairs: int = typer.Option(5, "--min-pairs", help="Vote pairs an annotator needs before they can be flagged."),
    as_json: bool = JsonOpt,
) -> None:
    """Inter-annotator agreement (Krippendorff's alpha, percent agreement) overall, per slice, per axis, per annotator."""
    from prefline.data.agreement import agreement_report
    from prefline.data.ingest import load_signals

    row = _ledger().get_dataset(dataset)
    report = {"dataset": f"{row['name']}@{row['version']}", **agreement_report(load_signals(row), flag_margin, min_pairs)}
    if as_json:
        return _print_json(report)

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    def line(name: str, s: dict[str, Any]) -> list[Any]:
        return [name, s["n_items"], s["n_items_multi"], s["n_votes"], s["n_annotators"], fmt(s["alpha"]), fmt(s["percent_agreement"])]

    columns = ["", "items", "items with 2+ votes", "votes", "annotators", "alpha", "% agreement"]
    rows = [line("overall", report["overall"])] + [line(k, v) for k, v in report["slices"].items()] + [line(f"axis {k}", v) for k, v in report["axes"].items()]
    console.print(_table(f"agreement in {report['dataset']}", columns, rows))
    console.print(_table("annotators", ["annotator", "votes", "vote pairs", "agreement with others", "alpha without", "flagged"],
                         [[a, s["n_votes"], s["n_vote_pairs"], fmt(s["agreement_with_others"]), fmt(s["alpha_without"]), s["why"] or ""]
                          for a, s in report["annotators"].items()]))


review_app = typer.Typer(no_args_is_help=True, help="The expert review queue: disputed pairs out, decisions back in as a new version.")
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

    summary = export_review(dataset, out, _ledger(), min_disagreement)
    if as_json:
        return _print_json(summary)
    console.print(f"{summary['n_items']} pair(s) of {_s(summary['dataset'])} to review: {_s(summary['path'])}")


@review_app.command("import")
def data_review_import(
    file: Path = typer.Argument(..., help="A review file (.jsonl or .csv) with 'decision' filled in: a, b or tie."),
    into: str = typer.Option(..., "--into", help="Dataset name that gets the new version (usually the reviewed dataset's)."),
    base: Optional[str] = typer.Option(None, "--base", help="Dataset version the decisions apply to (default: the one named in the file)."),
    as_json: bool = JsonOpt,
) -> None:
    """Bring review decisions back as a new signal and store the result as a new dataset version."""
    from prefline.data.review import import_review

    result = import_review(file, into, _ledger(), base=base)
    _print_problems(result)
    if as_json:
        return _print_json(result.as_dict())
    _print_ingest(result)


@data_app.command("list")
def data_list(as_json: bool = JsonOpt) -> None:
    """List dataset versions in the ledger."""
    rows = _ledger().list_datasets()
    if as_json:
        return _print_json(rows)
    console.print(_table("datasets", ["id", "name@version", "pairs", "read", "accepted", "rejected", "duplicates", "excluded", "hash", "created"],
                         [[r["id"], f"{r['name']}@{r['version']}", r.get("n_pairs") or r["n_accepted"], r["n_read"], r["n_accepted"], r["n_rejected"],
                           r["n_duplicates"], r.get("n_excluded") or 0, r["content_hash"][:12], r["created_at"]] for r in rows]))


MajorShareOpt = typer.Option(None, "--major-share", min=0.0, max=1.0, help="Share of pairs changed (Jaccard distance of the id sets) above which a version is a major change (default 0.3).")


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
    from prefline.data.quality import data_report as build

    from prefline.data.ingest import require_files

    wanted = load_targets(targets) if targets else None
    ledger = _ledger()
    row = require_files(ledger.get_dataset(dataset))
    if close_calls:
        _quiet()
    report = build(row, ledger, wanted, model=model, close_call_sample=sample, score_close_calls=close_calls, workers=workers)
    if html:
        from prefline.report.data_html import write_html

        write_html(report, html)
    if as_json:
        return _print_json(report)
    _print_data_report(report)
    if html:
        console.print(f"html: {_s(html)}")
    _next(f"prefline data split {row['name']}@{row['version']} --heldout 0.2", f"prefline train dpo --data {row['name']}@{row['version']} --name ADAPTER")


def _print_data_report(r: dict[str, Any]) -> None:
    d, cov, bias, neg, dup, con = r["dataset"], r["coverage"], r["bias"], r["negatives"], r["duplicates"], r["contamination"]
    console.print(f"[bold]{_s(d['name'])}@{d['version']}[/bold]: {d['pairs']} pairs (hash {d['content_hash'][:12]})")
    targets = {(t["key"], t["value"]): t for t in cov["targets"]}
    rows = []
    for key, values in cov["keys"].items():
        for value, count in values.items():
            t = targets.get((key, value), {})
            rows.append([key, value, count, f"{count / max(d['pairs'], 1):.1%}", _pct(t.get("target_share")), t.get("min_pairs") or "",
                         f"short by {t['short_by']}" if t.get("shortfall") else ""])
        if cov["untagged"][key]:
            rows.append([key, "(untagged)", cov["untagged"][key], f"{cov['untagged'][key] / max(d['pairs'], 1):.1%}", "", "", ""])
    rows += [[t["key"], t["value"], 0, "0.0%", _pct(t["target_share"]), t["min_pairs"] or "", f"short by {t['short_by']}"]
             for t in cov["targets"] if t["value"] not in cov["keys"].get(t["key"], {})]
    console.print(_table("coverage", ["slice", "value", "pairs", "share", "target share", "min pairs", "shortfall"], rows))
    if cov["missing_keys"]:
        console.print("  not tagged: " + _s(", ".join(cov["missing_keys"])))
    markers = [m for m in ("refuses", "hedges", "cites") if f"chosen_{m}" in bias["overall"]]
    columns = ["group", "pairs", "chosen longer", "length ratio"] + [f"{m} (chosen/rejected)" for m in markers]
    groups = [("overall", bias["overall"])] + [(f"source={k}", v) for k, v in bias["by_source"].items()] + list(bias["by_slice"].items())
    console.print(_table("bias profile", columns, [
        [label, s["pairs"], _pct(s.get("chosen_longer")), s.get("length_ratio_mean", "")] +
        [f"{_pct(s.get(f'chosen_{m}'))} / {_pct(s.get(f'rejected_{m}'))}" for m in markers] for label, s in groups]))
    missing = [name for name, origin in bias["detectors"].items() if origin is None]
    if missing:
        console.print("  detectors not installed: " + _s(", ".join(missing)))
    if bias.get("position"):
        p = bias["position"]
        console.print(f"  judge position: first-shown response picked in {_pct(p['first_share'])} of {p['judgements']} judgements")
    for warning in bias["warnings"]:
        console.print(f"[yellow]warning[/yellow]: {_s(warning)}", markup=True, highlight=False)
    flags = ", ".join(f"{k} {v}" for k, v in neg["flags"].items())
    console.print(f"negatives: {flags}; teach nothing: {neg['teach_nothing']} ({_pct(neg['teach_nothing_share'])})")
    close = neg.get("close_calls")
    if close:
        console.print(f"  close calls ({_s(close['model'])}, {close['pairs_scored']} pairs): close {close['close']}, "
                      f"already separated {close['separated']}, reversed {close['reversed']}, mean margin {close['mean_margin']} nats/token")
    console.print(f"duplicates: exact {dup['exact']['redundant_pairs']} redundant pairs in {dup['exact']['groups']} groups; "
                  f"near {dup['near']['redundant_pairs']} in {dup['near']['groups']} groups")
    suites = _s(", ".join(f"{s['suite']}@{s['version']}" for s in con["suites"]) or "no frozen suites in the ledger")
    console.print(f"contamination ({suites}): {con['contaminated_pairs']} pairs match {con['contaminated_items']} items")
    if con["items"]:
        console.print(_table("contaminated items", ["suite", "item", "pairs", "n-gram overlap", "jaccard", "prompt"],
                             [[f"{i['suite']}@{i['version']}", i["item_id"], i["pairs"], i["max_ngram_overlap"], i["max_jaccard"],
                               i["prompt"][:60]] for i in con["items"]]))
    if r.get("lineage") and r["lineage"]["parents"]:
        console.print("lineage: " + "; ".join(f"{p['relation']} of {_s(p['dataset'])} (changed {_pct(p['changed_share'])}"
                                              f"{', major' if p['major_change'] else ''})" for p in r["lineage"]["parents"]))


def _pct(value: Any) -> str:
    return "" if value is None else f"{value:.1%}"


@data_app.command("decontaminate")
def data_decontaminate(
    dataset: str = typer.Argument(..., help="Dataset name (latest version), name@version, or id."),
    name: str = typer.Option(..., "--name", help="Dataset that gets the new version (without the contaminated pairs)."),
    major_share: Optional[float] = MajorShareOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write a new version without the pairs whose prompt overlaps a frozen evaluation suite (recorded as lineage)."""
    from prefline.data.contamination import decontaminate

    result = decontaminate(dataset, name, _ledger(), major_share=major_share)
    if as_json:
        return _print_json(result)
    _print_version(result, f"removed {result['rejects']} contaminated pair(s)")


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

    result = mix(name, [parse_source(s) for s in sources], _ledger(), [parse_slice_weight(s) for s in by_slice], seed=seed,
                 major_share=major_share, balance_length=balance_length)
    if as_json:
        return _print_json(result)
    _print_version(result, ", ".join(f"{p['dataset']} x{p['params']['weight']:g}: {p['params']['pairs_kept']} of {p['params']['pairs_in']}"
                                     for p in result["parents"] if p["relation"] == "mix"))


def _print_version(result: dict[str, Any], what: str) -> None:
    d = result["dataset"]
    console.print(f"dataset [bold]{_s(d['name'])}@{d['version']}[/bold] (id {d['id']}, hash {d['content_hash'][:12]}): {d['pairs']} pairs; {_s(what)}")
    for p in result["parents"]:
        console.print(f"  parent {_s(p['dataset'])} ({p['relation']}): changed {_pct(p['changed_share'])}{', MAJOR change' if p['major_change'] else ''}")
    console.print(f"  pairs: {_s(d['path'])}")


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

    result = split(dataset, heldout, _ledger(), seed=seed, train_name=train_name, heldout_name=heldout_name)
    if as_json:
        return _print_json(result)
    train, held = result["train"]["dataset"], result["heldout"]["dataset"]
    console.print(f"{_s(result['parent'])} split by prompt, stratified by slice (seed {result['seed']}): "
                  f"{result['heldout_prompts']} of {result['prompts']} prompts held out")
    for side, d in (("train", train), ("held out", held)):
        console.print(f"  {side}: dataset [bold]{_s(d['name'])}@{d['version']}[/bold], {d['pairs']} pairs (hash {d['content_hash'][:12]})")
    _next(f"prefline train dpo --data {train['name']} --name ADAPTER",
          f"prefline preference accuracy --data {held['name']} --adapter ADAPTER  (after training)")


@data_app.command("diff")
def data_diff(
    old: str = typer.Argument(..., help="The earlier version: name@version or id (or, alone, the version to compare with its parent)."),
    new: Optional[str] = typer.Argument(None, help="The later version (default: OLD is compared with its recorded parent)."),
    major_share: Optional[float] = MajorShareOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Pairs added and removed, per-source and per-slice counts, and the bias-profile change between two versions."""
    from prefline.data.diff import diff_versions, lineage, parents

    ledger = _ledger()
    if new is None:
        child = ledger.get_dataset(old)
        lineage(ledger, child)
        recorded = parents(ledger, child["id"])
        if not recorded:
            raise PreflineError(f"dataset {child['name']}@{child['version']} has no parent; name two versions: prefline data diff A B")
        primary = next((p for p in recorded if p["is_primary"]), recorded[0])
        a, b = ledger.get_dataset(str(primary["parent_id"])), child
    else:
        a, b = ledger.get_dataset(old), ledger.get_dataset(new)
    change = diff_versions(a, b, major_share)
    if as_json:
        return _print_json(change)
    o, n = change["old"], change["new"]
    console.print(f"{_s(o['name'])}@{o['version']} ({o['pairs']}) -> {_s(n['name'])}@{n['version']} ({n['pairs']}): "
                  f"+{change['added']} -{change['removed']} ={change['kept']}; changed {_pct(change['changed_share'])}"
                  f"{' (MAJOR change, > ' + _pct(change['major_share']) + ')' if change['major_change'] else ''}")
    for title, key in (("per source", "by_source"), ("per slice", "by_slice")):
        console.print(_table(title, ["group", "old", "new", "change"],
                             [[k, v["old"], v["new"], f"{v['change']:+d}"] for k, v in change[key].items()]))
    console.print(_table("bias profile", ["measure", "old", "new", "change"],
                         [[k, v["old"], v["new"], "" if v["change"] is None else f"{v['change']:+.4f}"] for k, v in change["bias"].items()]))


# --- train ------------------------------------------------------------------------------


def _train_command(method: str):
    """The `prefline train METHOD` command for one entry of the method table."""

    def command(
        data: str = typer.Option(..., "--data", help="Dataset name (latest version), name@version, or id."),
        name: str = typer.Option(..., "--name", help="Name of the adapter to create (unique)."),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML file of training settings (see prefline.config.TrainConfig)."),
        model: Optional[str] = typer.Option(None, "--model", help="Base model: the embedded default, a local folder, or a cached hub id."),
        surface: Optional[str] = typer.Option(None, "--surface", help="Product surface this adapter serves (chat, code, voice, ...); its training defaults fill in unset fields (voice: stronger length regularization; see docs/training.md)."),
        epochs: Optional[float] = typer.Option(None, "--epochs", help="Override: passes over the data."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Override: stop after this many steps."),
        beta: Optional[float] = typer.Option(None, "--beta", help="Override: beta (its meaning and default are in this method's description)."),
        learning_rate: Optional[float] = typer.Option(None, "--lr", help="Override: learning rate."),
        as_json: bool = JsonOpt,
    ) -> None:
        from prefline.config import TrainConfig, parse
        from prefline.train.surfaces import load_train_file

        # only the fields the file and the options set: the rest stay unset, for the surface's defaults
        base, surfaces = load_train_file(config) if config else ({}, {})
        overrides = {"epochs": epochs, "max_steps": max_steps, "beta": beta, "learning_rate": learning_rate}
        settings = parse({**base, **{k: v for k, v in overrides.items() if v is not None}}, TrainConfig, str(config or "command line"))
        _quiet()
        from prefline.train.run import is_main_process, train

        adapter = train(method, data, name, settings, _ledger(), model_spec=model, surface=surface, surfaces=surfaces)
        if not is_main_process():  # under accelerate launch, one process reports
            return None
        if as_json:
            return _print_json(adapter)
        _print_adapter(adapter)
        _next(f"prefline eval --suite SUITE --adapter {adapter['name']}", f"prefline report adapter {adapter['name']} --html {adapter['name']}.html")

    return command


def _register_train_commands() -> None:
    from prefline.train.methods import METHODS  # names and docs only: TRL is imported when a run starts

    for spec in METHODS.values():
        text = f"{spec.title}: train a LoRA adapter and register it with its lineage.\n\n{spec.doc()}"
        train_app.command(spec.name, help=text, short_help=spec.title)(_train_command(spec.name))


_register_train_commands()


@train_app.command("resume")
def train_resume(name: str = typer.Argument(..., help="Adapter whose run was killed or failed (status running or failed)."),
                 as_json: bool = JsonOpt) -> None:
    """Resume a killed or failed run from its last checkpoint, with its recorded method, data, model and config."""
    _quiet()
    from prefline.train.run import is_main_process, resume

    adapter = resume(name, _ledger())
    if not is_main_process():
        return None
    if as_json:
        return _print_json(adapter)
    _print_adapter(adapter)


def _print_adapter(adapter: dict[str, Any], names: _Names | None = None) -> None:
    names = names or _Names(_ledger())
    metrics = adapter.get("metrics") or {}
    last = metrics.get("last", {})
    # each method logs its own quantities (DPO reward margins, reward-model accuracy, SFT token accuracy)
    shown = ", ".join(f"{key} {last[key]:.4g}" for key in ("loss", "rewards/accuracies", "rewards/margins", "accuracy", "margin", "mean_token_accuracy") if key in last)
    console.print(
        f"adapter [bold]{_s(adapter['name'])}[/bold] (id {adapter['id']}, {adapter['method']}, status {adapter['status']})\n"
        f"  base model: {_s(adapter['base_model'])} ({adapter['base_model_hash'][:12]})\n"
        f"  dataset {_s(names.dataset(adapter['dataset_id']))} ({adapter['dataset_hash'][:12]}), seed {adapter['seed']}\n"
        f"  steps {metrics.get('steps')}, {metrics.get('runtime_s')} s; last step: {shown or 'no metrics'}\n"
        f"  files: {_s(adapter['path'])} (hash {(adapter['adapter_hash'] or '')[:12]})"
    )
    if metrics.get("stopped_early"):
        console.print(f"  stopped early at step {metrics['stopped_early']['step']}: {metrics['stopped_early']['reason']}", markup=False)
    for note in metrics.get("notes", []):
        console.print(f"  note: {note}", markup=False)
    for warning in metrics.get("warnings", []):
        console.print(f"  warning (step {warning['step']}, {warning['code']}): {warning['message']}", markup=False)


@adapters_app.command("list")
def adapters_list(as_json: bool = JsonOpt) -> None:
    """List registered adapters."""
    ledger = _ledger()
    rows = ledger.list_adapters()
    if as_json:
        return _print_json(rows)
    names = _Names(ledger)
    console.print(_table("adapters", ["id", "name", "method", "status", "base model", "dataset", "surface", "created"],
                         [[r["id"], r["name"], r["method"], r["status"], r["base_model"], names.dataset(r["dataset_id"]), r["surface"], r["created_at"]] for r in rows]))
    _next("prefline adapters show NAME", "prefline eval --suite SUITE --adapter NAME")


@adapters_app.command("show")
def adapters_show(name: str = typer.Argument(..., help="Adapter name or id."), as_json: bool = JsonOpt) -> None:
    """Show one adapter's lineage: base model, dataset, config, metrics, warnings, step history, drift probes."""
    from prefline.train.records import probes

    ledger = _ledger()
    adapter = ledger.get_adapter(name, finished=False)
    steps, taken = ledger.train_steps(adapter["id"]), probes(ledger, adapter["id"])
    if as_json:
        return _print_json({**adapter, "steps": steps, "probes": taken})
    _print_adapter(adapter, _Names(ledger))
    console.print(_s(f"  config: {json.dumps(adapter['config'])}\n  versions: {json.dumps(adapter['versions'])}"))
    keys = ["loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "tokens_per_s"]
    console.print(_table("steps", ["step", *keys], [[s["step"], *[f"{s['metrics'].get(k, float('nan')):.4g}" for k in keys]] for s in steps]))
    if taken:
        console.print(_table("drift probes", ["step", "items", "mean length (tokens)", "refusal rate"],
                             [[p["step"], p["metrics"]["n"], f"{p['metrics']['length_tokens']:.1f}", f"{p['metrics']['refusal']:.2f}"] for p in taken]))
    _next(f"prefline report adapter {adapter['name']} --html {adapter['name']}.html",
          f"prefline eval --suite SUITE --adapter {adapter['name']}")


@adapters_app.command("export")
def adapters_export(
    name: str = typer.Argument(..., help="Adapter name or id (a finished one)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (must not exist, or be empty)."),
    merge: bool = typer.Option(False, "--merge", help="Merge the adapter into the base weights: a full model folder transformers loads as is."),
) -> None:
    """Export an adapter: its PEFT folder as is, or with --merge a full model with the adapter merged in."""
    _quiet()
    from prefline.train.export import export_adapter

    path = export_adapter(_ledger(), name, out, merge=merge)
    console.print(f"adapter {_s(name)} exported to {_s(path)} ({'merged full model' if merge else 'PEFT adapter folder'})")


# --- eval -------------------------------------------------------------------------------


@app.command("eval")
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

    names = [s.strip() for s in scorers.split(",") if s.strip()] if scorers else None
    ledger = _ledger()
    adapters: list[str | None] = [None if a == "base" else a for a in adapter] if adapter else [None]
    if replay is not None:
        from prefline.evals.run import replay_run

        run_ids = [replay_run(replay, ledger, scorers=names)]
    else:
        decoding = parse({"max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": seed, "temperature": temperature}, DecodingConfig, "command line")
        loaded = load_suite(suite or "smoke")
        if suite is None:
            Console(stderr=True, soft_wrap=True, highlight=False).print(
                f"no --suite given: evaluating on the shipped `{loaded.name}` suite v{loaded.version} ({len(loaded.items)} items); "
                "give --suite SUITE (a shipped name or your suite folder) to choose", markup=False)
        _quiet()
        from prefline.evals.run import run_evals

        given = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency, "timeout_s": timeout}
        run_ids = run_evals(loaded, ledger, adapters, model_spec=model, decoding=decoding, scorers=names, backend=backend,
                            backend_options={k: v for k, v in given.items() if v is not None})
    runs = [ledger.get_run(run_id) for run_id in run_ids]
    if as_json:
        return _print_json(runs[0] if len(runs) == 1 else runs)
    names = _Names(ledger)
    for run in runs:
        _print_run(run, names)
    if len(runs) == 1:
        _next(f"prefline runs show {runs[0]['id']}", f"prefline report run {runs[0]['id']} --html run-{runs[0]['id']}.html",
              f"prefline gate BASELINE_RUN {runs[0]['id']}")
    else:
        _next(f"prefline gate {runs[0]['id']} {runs[1]['id']}")


def _print_run(run: dict[str, Any], names: _Names | None = None, overall: bool = True) -> None:
    names = names or _Names(_ledger())
    adapter = f" + adapter {_s(names.adapter(run['adapter_id']))}" if run["adapter_id"] else ""
    adapter += f", replay of run {run['replay_of']}" if run.get("replay_of") else ""
    console.print(f"run [bold]{run['id']}[/bold]: suite {_s(names.suite(run['suite_name'], run['suite_hash']))} ({run['suite_hash'][:12]}), model {_s(run['model'])}{adapter}, status {run['status']}")
    if run.get("error"):
        console.print(f"  stopped: {_plain(run['error'])}", markup=False)
    summary = run.get("summary") or {}
    if not overall:
        return
    rows = [[metric, s["n"], f"{s['mean']:.3f}", f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"]
            for metric, by_slice in summary.items() for name, s in by_slice.items() if name == "overall"]
    console.print(_table("overall (90% bootstrap interval)", ["metric", "n", "mean", "interval"], rows))


@runs_app.command("list")
def runs_list(as_json: bool = JsonOpt) -> None:
    """List eval runs."""
    ledger = _ledger()
    rows = ledger.list_runs()
    if as_json:
        return _print_json(rows)
    names = _Names(ledger)
    console.print(_table("eval runs", ["id", "status", "suite", "suite hash", "model", "adapter", "created", "why it stopped"],
                         [[r["id"], r["status"], names.suite(r["suite_name"], r["suite_hash"]), r["suite_hash"][:12], r["model"],
                           names.adapter(r["adapter_id"]) or "-", r["created_at"], (r.get("error") or "")[:80]] for r in rows]))
    _next("prefline runs show RUN", "prefline gate BASELINE_RUN CANDIDATE_RUN")


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
        from prefline.paths import output_file

        output_file(out).write_text(document + "\n", encoding="utf-8")
        console.print(f"run {_s(run)} written to {_s(out)}")


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="Run id."),
    slices: bool = typer.Option(False, "--slices", help="Also print every metric per slice (mean, interval, n)."),
    items: bool = typer.Option(False, "--items", help="Also print every item's prompt, output and scores."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a run on one screen: what ran and every metric overall by layer; --slices and --items for the rest."""
    ledger = _ledger()
    row = ledger.get_run(run)
    gens = ledger.generations(row["id"]) if (items or as_json) else []
    scores = ledger.scores(row["id"]) if (items or as_json) else []
    if as_json:
        return _print_json({**row, "generations": gens, "scores": scores})
    _print_run(row, _Names(ledger), overall=False)
    from prefline.report.terminal import metrics_overview

    console.print(metrics_overview(ledger, {f"run {row['id']}": row["id"]}))
    summary = row.get("summary") or {}
    slice_names = sorted({name for by_slice in summary.values() for name in by_slice if name != "overall"})
    if slices:
        for metric, by_slice in summary.items():
            console.print(_table(metric, ["slice", "n", "mean", "interval"],
                                 [[name, s["n"], f"{s['mean']:.3f}", f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"] for name, s in by_slice.items()]))
    elif slice_names:
        keys = sorted({name.split("=", 1)[0] for name in slice_names})
        console.print(f"{len(slice_names)} slices over {_s(', '.join(keys))}: --slices prints each metric per slice", markup=False)
    if items:
        by_item: dict[str, list[str]] = {}
        for s in scores:
            if s["value"] is not None:
                by_item.setdefault(s["item_id"], []).append(f"{s['metric']}={s['value']:g}")
        for g in gens:
            console.print(f"[bold]{_s(g['item_id'])}[/bold] {_s(json.dumps(g['slices'], ensure_ascii=False))}  {_s(' '.join(by_item.get(g['item_id'], [])))}")
            console.print(_plain(f"  > {g['messages'][-1]['content']}"), markup=False)
            console.print(_plain(f"  < {g['output']}"), markup=False)
    hints = [] if items else [f"prefline runs show {row['id']} --items"]
    _next(*hints, f"prefline report run {row['id']} --html run-{row['id']}.html", f"prefline gate BASELINE_RUN {row['id']}")


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
    """Check a suite as a run would, before generating anything: the header (keys, version, scorer names),
    every item (fields, constraints, JSON Schema, tool calls; all malformed items at once, with file and
    line), the header's slice_counts against the items, and that a frozen version still hashes the same."""
    from prefline.evals.suite import check_frozen, load_suite, slice_count_problems

    loaded = load_suite(suite)
    check_frozen(loaded, _ledger())
    counts = slice_count_problems(loaded)
    if counts and loaded.declared_slice_counts is not None:
        raise PreflineError(f"suite {loaded.name} v{loaded.version}: " + "; ".join(counts))
    for problem in counts:
        Console(stderr=True, soft_wrap=True, highlight=False).print(_plain(f"warning: {problem}"), markup=False)
    console.print(f"suite {_s(loaded.name)} v{loaded.version}: {len(loaded.items)} items valid, hash {loaded.hash}")


@suite_app.command("freeze")
def suite_freeze(suite: str = typer.Argument(..., help="Shipped suite name or suite folder.")) -> None:
    """Register a suite version as immutable: later loads must hash to the same items."""
    from prefline.evals.suite import freeze_suite, load_suite

    loaded = load_suite(suite)
    freeze_suite(loaded, _ledger())
    console.print(f"suite {_s(loaded.name)} v{loaded.version} frozen: {len(loaded.items)} items, hash {loaded.hash}")


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
        Console(stderr=True, soft_wrap=True, highlight=False).print(f"note: {result['note']}", markup=False)
    if as_json:
        return _print_json(result)
    console.print(f"suite {result['name']} v{result['version']}: {result['items']} items, hash {result['hash']}\n  {result['path']}", markup=False)
    console.print(_table("instructions", ["type", "n"], [[escape(kind), n] for kind, n in result["instructions"].items()]))


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
    console.print(f"suite [bold]{_s(summary['name'])}[/bold] v{summary['version']} ({frozen}): {summary['items']} items, hash {summary['hash']}\n  {_s(summary['path'])}")
    for key, counts in summary["slices"].items():
        console.print(_s(f"  {key}: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))))


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


def _ci(entry: dict[str, Any] | None) -> str:
    return f"{entry['estimate']:.3f} [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]" if entry else "(too few items)"


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
    _quiet()
    from prefline.evals.preference_eval import make_judge, win_rate_eval, win_rates_eval

    ledger = _ledger()
    options = {k: v for k, v in {"base_url": base_url, "api_key_env": api_key_env}.items() if v is not None}
    the_judge = make_judge(ledger, judge, backend=backend, model=model, **options)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    if len(candidates) > 1:
        result = win_rates_eval(ledger, baseline, candidates, the_judge)
        if as_json:
            return _print_json(result)
        rows = [[c["candidate_run"], c["id"], c["slices"]["overall"]["n"], _ci(c["slices"]["overall"]["raw"]),
                 _ci((c["joint"] or {}).get("length_controlled")), _ci(c["slices"]["overall"].get("length_controlled")),
                 f"{c['slices']['overall']['flip_rate']:.2f}"] for c in result["candidates"]]
        judge_name = json.dumps(result["judge"].get("model") or result["judge"].get("adapter"))
        console.print(_table(f"win rates vs run {result['baseline_run']}, judge {escape(judge_name)}",
                             ["candidate run", "evaluation", "n", "raw [90% CI]", "length-controlled, joint [90% CI]",
                              "length-controlled, alone [90% CI]", "flip rate"], rows))
        if result["length_coefficient"] is not None:
            console.print(f"shared length coefficient: {result['length_coefficient']:.2f} (logit per unit of tanh-standardized length difference)")
        for c in result["candidates"]:
            if (c["joint"] or {}).get("warning"):
                err.print(f"warning: run {c['candidate_run']}: {c['joint']['warning']}", markup=False)
        if result["note"]:
            err.print(f"note: {result['note']}", markup=False)
        return None
    result = win_rate_eval(ledger, baseline, candidates[0], the_judge)
    if as_json:
        return _print_json(result)
    rows = [[escape(name), s["n"], _ci(s["raw"]), _ci(s.get("length_controlled")), f"{s['flip_rate']:.2f}"] for name, s in result["slices"].items()]
    judge_name = json.dumps(result['judge'].get('model') or result['judge'].get('adapter'))
    console.print(_table(f"win rate of run {result['candidate_run']} vs run {result['baseline_run']}, judge {escape(judge_name)} (evaluation {result['id']})",
                         ["slice", "n", "raw [90% CI]", "length-controlled [90% CI]", "flip rate"], rows))
    warning = result["slices"]["overall"].get("warning")
    if warning:
        console.print(f"warning: {warning}", markup=False)


# --- reports ----------------------------------------------------------------------------

HtmlOpt = typer.Option(None, "--html", help="Write the self-contained HTML page (opens offline) to this file.")
MdOpt = typer.Option(None, "--md", help="Write a markdown summary (fits a pull-request comment) to this file.")


def _write_report(data: dict[str, Any], html: Optional[Path], md: Optional[Path], as_json: bool, render_html, render_md) -> None:  # noqa: ANN001
    """Write the requested files, then print the report's JSON (--json) or the paths written."""
    from prefline.report.html import write

    if not (html or md or as_json):
        raise PreflineError("nothing to write: give --html FILE, --md FILE or --json")
    written = []
    if html:
        written.append(("html", write(render_html(data), html)))
    if md:
        written.append(("markdown", write(render_md(data, str(html) if html else None), md)))
    if as_json:
        return _print_json(data)
    for kind, path in written:
        console.print(f"{kind}: {path}", markup=False)


@report_app.command("run")
def report_run(
    run: str = typer.Argument(..., help="Eval run id."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A run's report: what ran (model, adapter, suite and hash, dataset lineage, backend, time), metrics by layer
    with intervals, the per-slice table and every item with its response and scores (searchable)."""
    from prefline.report.run import run_data, run_html, run_markdown

    _write_report(run_data(_ledger(), run), html, md, as_json, run_html, run_markdown)


@report_app.command("adapter")
def report_adapter(
    name: str = typer.Argument(..., help="Adapter name or id."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """An adapter's report: lineage, training curves (loss, reward margin, accuracy) and the drift-probe trajectory."""
    from prefline.report.adapter import adapter_data, adapter_html, adapter_markdown

    _write_report(adapter_data(_ledger(), name), html, md, as_json, adapter_html, adapter_markdown)


@report_app.command("compare")
def report_compare(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Gate policy for the verdict: a shipped name or a YAML file (default: default). Not recorded as a decision."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference run for the policy's drift: rules."),
    common_items: bool = typer.Option(False, "--common-items", help="Runs on different suite hashes: compare the items both hold unchanged."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A comparison's report: verdict per axis and overall, the slice x check heatmap, failing and inconclusive
    checks, the capability summary (how it behaves vs what it knows), the diagnosis and the items that moved most."""
    from prefline.report.decision import compare_data, decision_html, decision_markdown

    data = compare_data(_ledger(), baseline, candidate, policy=policy, reference=reference, common_items=common_items)
    _write_report(data, html, md, as_json, decision_html, decision_markdown)


@report_app.command("gate")
def report_gate(
    decision: str = typer.Argument(..., help="Gate decision id (printed by `prefline gate`, listed by `prefline release history`)."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A stored gate decision's report: the same page as `report compare`, with the checks exactly as decided."""
    from prefline.report.decision import decision_html, decision_markdown, gate_data

    _write_report(gate_data(_ledger(), decision), html, md, as_json, decision_html, decision_markdown)


@report_app.command("diagnose")
def report_diagnose(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    alpha: float = typer.Option(0.05, "--alpha", help="A move in the bad direction is a regression when its adjusted p-value is at most this."),
    common_items: bool = typer.Option(False, "--common-items", help="Compare runs on different suite versions on the items both hold unchanged."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A diagnosis report: regressions ranked by effect size per category and slice with intervals, likely causes
    with evidence and confidence, and the items that moved most side by side."""
    from prefline.report.decision import diagnose_data, diagnose_html, diagnose_markdown

    _write_report(diagnose_data(_ledger(), baseline, candidate, alpha=alpha, common_items=common_items), html, md, as_json,
                  diagnose_html, diagnose_markdown)


@report_app.command("capability")
def report_capability(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    common_items: bool = typer.Option(False, "--common-items", help="Compare runs on different suite versions on the items both hold unchanged."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """For stakeholders: what changed in how the model behaves (style, refusal, format) apart from what it knows
    (answers checked against references or documents), in plain sentences from the numbers and their intervals."""
    from prefline.report.decision import capability_data, capability_html, capability_markdown

    _write_report(capability_data(_ledger(), baseline, candidate, common_items=common_items), html, md, as_json,
                  capability_html, capability_markdown)


@report_app.command("release")
def report_release(
    surface: Optional[str] = typer.Option(None, "--surface", help="Only this surface (default: every surface with a release)."),
    html: Optional[Path] = HtmlOpt,
    md: Optional[Path] = MdOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The releases report: per surface, each release's metrics over time (refusal, verbosity, hedging, citation
    support, instruction following, win rate, latency; whichever the runs have) and the tradeoff chart."""
    from prefline.report.releases import release_data, release_html, release_markdown

    _write_report(release_data(_ledger(), surface), html, md, as_json, release_html, release_markdown)


# --- scorers ----------------------------------------------------------------------------


@scorers_app.command("list")
def scorers_list(as_json: bool = JsonOpt) -> None:
    """Every scorer: section, layer, category, axis, metrics with the direction that is better, and the item fields it reads."""
    from prefline.evals.scorers.catalog import catalog

    rows = catalog()
    if as_json:
        return _print_json(rows)
    console.print(_table("scorers (use with `prefline eval --scorers a,b` or a suite's `scorers:`)",
                         ["name", "section", "layer", "category", "axis", "metrics (better)", "reads"],
                         [[r["name"], r["section"], r["layer"], r["category"], r["axis"],
                           ", ".join(f"{m} ({d})" for m, d in r["metrics"].items()), ", ".join(r["reads"]) or "-"] for r in rows]))
    _next("prefline scorers show NAME")


@scorers_app.command("show")
def scorers_show(name: str = typer.Argument(..., help="Scorer name (see `prefline scorers list`)."), as_json: bool = JsonOpt) -> None:
    """One scorer: what it measures, its metrics and directions, and the suite item fields it needs."""
    from prefline.evals.scorers.catalog import find

    r = find(name)
    if as_json:
        return _print_json(r)
    console.print(f"scorer [bold]{_s(r['name'])}[/bold]: section {r['section']}, layer {r['layer']}, category {r['category']}, "
                  f"axis {r['axis']}, scored per {'run' if r['scope'] == 'run' else 'item'}")
    console.print(_table("metrics", ["metric", "better"], [[m, d] for m, d in r["metrics"].items()]))
    reads = ", ".join(r["reads"])
    console.print(f"reads item fields: {reads}" if reads else
                  "reads item fields: only the conversation (every item is scored)", markup=False)
    if r["description"]:
        console.print(r["description"], markup=False)


# --- gate -------------------------------------------------------------------------------


@app.command("compare")
def compare_cmd(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    common_items: bool = typer.Option(False, "--common-items", help="Runs on different suite hashes: compare the items both suites hold unchanged (same id and item hash); every output says so."),
    correction: str = typer.Option("bh", "--correction", help="Multiple-comparison adjustment of the p-values: bh (Benjamini-Hochberg, default) or holm."),
    samples: int = typer.Option(2000, "--samples", min=100, help="Bootstrap resamples for each interval."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    as_json: bool = JsonOpt,
) -> None:
    """Every metric in every slice: n, means, difference with a paired bootstrap interval, p-value and adjusted p-value."""
    from prefline.gate.comparison import compare
    from prefline.report.terminal import comparison_table

    result = compare(_ledger(), baseline, candidate, common_items=common_items, correction=correction, samples=samples, seed=seed)
    if as_json:
        _print_json(result.as_dict())
        return
    console.print(comparison_table(result))
    console.print(result.scope, markup=False)



GATE_HELP = """Decide whether CANDIDATE may replace BASELINE, checking every rule of a policy overall and per slice.

A check fails when a one-sided test shows the candidate beyond the rule's bound (significant at the policy's
error_rate after the Benjamini-Hochberg or Holm adjustment), passes when the worse end of its interval stays
inside, and is inconclusive otherwise (too few items, too noisy); the rule's on_inconclusive says what that
means. Exit 0 pass, 1 fail, 2 cannot decide (inconclusive verdict, different suites, missing metric with
--strict, unfinished run).

\b
Policy fields (YAML; docs/gate.md has the decision rule and a worked example):
  name             shown in reports, stored with each decision
  rules            list of rules; each rule has:
    metric           a scored metric, or held_out_pair_accuracy / win_rate / win_rate_lc
    max_increase     margin: largest allowed rise (candidate - baseline)
    max_decrease     margin: largest allowed fall (baseline - candidate)
    max_ratio        margin: largest allowed candidate / baseline mean
    min_ratio        margin: smallest allowed candidate / baseline mean
    max_value        hard limit: largest allowed candidate mean
    min_value        hard limit: smallest allowed candidate mean
    slices           where the rule applies (overall, key=value); default overall + every slice_keys slice
    on_inconclusive  fail | warn (default) | pass
  all_metrics      also gate every scored metric no rule names, with the default margin for its direction
                   (shares: 0.10 worse; others: 30% worse); false unless set (true in the shipped policies)
  slice_keys       slice tags to break results down by (default intent, risk, surface)
  min_items        fewer paired items in a slice = inconclusive (default 10)
  error_rate       chance of a false fail (default 0.05)
  correction       bh (default) | holm
  require_axes     axes (capability, reliability, safety) that must pass, else the verdict is inconclusive
  bootstrap_samples, seed   the paired bootstrap interval shown with each change
  drift            rules: ... checked against --reference RUN (cumulative change)
  major_change     rules, slice_keys, min_items, error_rate, require_axes applied when the candidate's
                   adapter learnt from a dataset version marked as a major change
"""


@app.command("gate", help=GATE_HELP)
def gate_cmd(
    baseline: str = typer.Argument(..., help="Baseline eval run id."),
    candidate: str = typer.Argument(..., help="Candidate eval run id."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Gate policy: a shipped name (default, release, voice) or a YAML file (default: default, which gates every scored metric)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference run (a surface's first release, or one pinned): the policy's drift: rules bound the change from it."),
    strict: bool = typer.Option(False, "--strict", help="A rule for a metric or slice the runs do not have is an error (exit 2) instead of 'not applicable'."),
    common_items: bool = typer.Option(False, "--common-items", help="Runs on different suite hashes: gate on the items both suites hold unchanged; the output says so."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write JUnit XML to this file: one test case per check, failures with their numbers."),
    as_json: bool = JsonOpt,
) -> None:
    from prefline.config import load_policy
    from prefline.gate.compare import compare_runs
    from prefline.report.terminal import print_gate

    result = compare_runs(_ledger(), baseline, candidate, load_policy(policy), reference_run=reference, strict=strict, common_items=common_items)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    if junit is not None:
        from prefline.report.junit import write_gate_junit

        write_gate_junit(result, junit)
    if as_json:
        _print_json(result.as_dict())
    else:
        print_gate(console, result)
        if result.verdict == "pass":
            _next(f"prefline release promote {candidate} --surface SURFACE")
        else:
            _next(f"prefline diagnose {baseline} {candidate}")
    raise typer.Exit({"pass": 0, "fail": 1}.get(result.verdict, EXIT_USAGE))


# --- release ----------------------------------------------------------------------------

SurfaceOpt = typer.Option(..., "--surface", help="Product surface (chat, code, voice, or any name in the surfaces file).")
SurfacesFileOpt = typer.Option(None, "--surfaces", help="Surfaces file mapping each surface to its suite and policy (default: $PREFLINE_HOME/surfaces.yaml, else the shipped one).")


def _say(message: str) -> None:
    Console(stderr=True, soft_wrap=True, highlight=False).print(message, markup=False)


def _fmt_metrics(metrics: dict[str, float], names: list[str] | None = None) -> str:
    from rich.markup import escape

    shown = [m for m in (names or metrics) if m in metrics]
    return escape(", ".join(f"{m} {metrics[m]:.3f}" for m in shown))


def _policy_metrics(policy: str | None) -> list[str] | None:
    from prefline.config import load_policy

    try:
        return [r.metric for r in load_policy(policy).rules] if policy else None
    except PreflineError:
        return None


@release_app.command("promote")
def release_promote(
    target: str = typer.Argument(..., help="What to make live: an adapter name, `base` (the base model alone), or an eval run id on the surface's suite."),
    surface: str = SurfaceOpt,
    force: bool = typer.Option(False, "--force", help="Record the release even if the gate does not pass (needs --reason)."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why: required with --force, recorded with the release."),
    surfaces: Optional[Path] = SurfacesFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate TARGET on the surface's suite and make it live if it passes the gate against the live release; exit 1 if not promoted."""
    _quiet()
    from rich.markup import escape

    from prefline.release import promote
    from prefline.report.terminal import print_gate

    result = promote(_ledger(), surface, target, force=force, reason=reason, surfaces=surfaces, progress=_say)
    if as_json:
        _print_json(result.as_dict())
    else:
        if result.gate is not None:
            print_gate(console, result.gate)
        if result.promoted:
            console.print(f"[bold green]released[/] {escape(result.target)} on {escape(surface)} (release {result.release['id']}, "
                          f"run {result.candidate_run}): {escape(result.message)}")
        else:
            console.print(f"[bold red]not released[/]: {escape(result.message)}")
    raise typer.Exit(0 if result.promoted else 1)


@release_app.command("rollback")
def release_rollback(
    surface: str = SurfaceOpt,
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the rollback."),
    surfaces: Optional[Path] = SurfacesFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make the previously live adapter live again, re-run the surface's suite on it and confirm recovery; exit 1 if not confirmed."""
    _quiet()
    from rich.markup import escape

    from prefline.release import rollback

    result = rollback(_ledger(), surface, surfaces=surfaces, reason=reason, progress=_say)
    if as_json:
        _print_json(result.as_dict())
    else:
        console.print(f"rolled back {escape(result.rolled_back['adapter_name'])} (release {result.rolled_back['id']}) on {escape(surface)}: "
                      f"{escape(result.restored['adapter_name'])} is live again (release {result.release['id']}, run {result.release['run_id']})")
        if result.differences:
            console.print(_table("differences beyond the margin", ["metric", "slice", "n", "recorded", "now", "change", "why"], [
                [escape(d["metric"]), escape(d["slice"]), d["n"],
                 f"{d['baseline']:.3f}" if d["direction"] == "worse" else f"{d['candidate']:.3f}",
                 f"{d['candidate']:.3f}" if d["direction"] == "worse" else f"{d['baseline']:.3f}",
                 d["direction"], escape(d["reason"])] for d in result.differences]))
        colour = "green" if result.confirmed else "red"
        console.print(f"[bold {colour}]{escape(result.message)}[/]")
    raise typer.Exit(0 if result.confirmed else 1)


@release_app.command("pin")
def release_pin(
    run: str = typer.Argument(..., help="Eval run id on the surface's suite to make its reference run."),
    surface: str = SurfaceOpt,
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the pin."),
    as_json: bool = JsonOpt,
) -> None:
    """Pin the surface's reference run, the anchor of the gate's drift budget (by default its first release's run)."""
    from prefline.release import pin_reference

    row = pin_reference(_ledger(), surface, run, reason=reason)
    if as_json:
        return _print_json(row)
    console.print(f"reference run of {surface} is now run {row['reference_run_id']} (release {row['id']})", markup=False)


@release_app.command("status")
def release_status(surfaces: Optional[Path] = SurfacesFileOpt, as_json: bool = JsonOpt) -> None:
    """What is live on each surface, since when, by which decision, with its run's metrics."""
    from rich.markup import escape

    from prefline.release import status

    rows = status(_ledger(), surfaces)
    if as_json:
        return _print_json(rows)
    table = []
    for r in rows:
        if r["live"] is None:
            table.append([escape(r["surface"]), "(nothing live)", "", "", "", "", escape(f"{r['suite']} / {r['policy']}"), ""])
            continue
        how = r["action"] + (" (forced: " + r["reason"] + ")" if r["forced"] else "")
        table.append([escape(r["surface"]), escape(r["live"]), f"{r['since']:%Y-%m-%d %H:%M}", r["release_id"],
                      r["decision_id"] or "-", escape(how), f"run {r['run_id']} (reference {r['reference_run_id']})",
                      _fmt_metrics(r["metrics"], _policy_metrics(r["policy"]))])
    console.print(_table("live per surface (times UTC)", ["surface", "live", "since", "release", "decision", "how", "runs", "metrics (overall)"], table))


@release_app.command("history")
def release_history(
    surface: Optional[str] = typer.Option(None, "--surface", help="Only this surface (default: all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Every promotion, rollback and pin, oldest first, with the gate's verdict and the run's metrics."""
    from rich.markup import escape

    from prefline.release import history

    rows = history(_ledger(), surface)
    if as_json:
        return _print_json(rows)
    table = []
    for r in rows:
        outcome = r["outcome"] or {}
        if r["action"] == "rollback":
            result = "recovery confirmed" if outcome.get("confirmed") else "recovery NOT confirmed"
        elif r["action"] == "pin":
            result = f"reference run {r['reference_run_id']}"
        else:
            result = (r["verdict"] or "first release") + (f"; forced: {r['reason']}" if r["forced"] else "")
        table.append([escape(r["surface"]), r["id"], f"{r['created_at']:%Y-%m-%d %H:%M}", r["action"], escape(r["adapter_name"]),
                      r["run_id"], r["decision_id"] or "-", escape(result), escape(r["actor"] or ""), _fmt_metrics(r["metrics"], _policy_metrics(r["policy"]))])
    console.print(_table("releases (times UTC)", ["surface", "release", "at", "action", "adapter", "run", "decision", "result", "by", "metrics (overall)"], table))


# --- diagnose ---------------------------------------------------------------------------


@app.command("diagnose")
def diagnose_cmd(
    baseline: Optional[str] = typer.Argument(None, help="Baseline eval run id (not with --bisect)."),
    candidate: Optional[str] = typer.Argument(None, help="Candidate eval run id, on the same suite (not with --bisect)."),
    alpha: float = typer.Option(0.05, "--alpha", help="A move in the bad direction is a regression when its adjusted p-value is at most this."),
    correction: str = typer.Option("bh", "--correction", help="Multiple-comparison adjustment over all metric x slice cells: bh or holm."),
    top: int = typer.Option(5, "--top", help="Findings for which the items that moved most are shown."),
    items: int = typer.Option(3, "--items", help="Items shown per top finding."),
    common_items: bool = typer.Option(False, "--common-items", help="Compare runs on different suite versions on the items both hold unchanged."),
    bisect_: bool = typer.Option(False, "--bisect", help="Find the first bad adapter in --history SURFACE or --adapters A,B,C."),
    history_of: Optional[str] = typer.Option(None, "--history", help="Bisect: the adapters promoted on this surface, oldest first."),
    adapters: Optional[str] = typer.Option(None, "--adapters", help="Bisect: comma-separated adapter names (base for the base model), good first, bad last."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Bisect: the suite (default: the surface's, with --history or --surface)."),
    surface: Optional[str] = typer.Option(None, "--surface", help="Bisect with --adapters: evaluate with this surface's suite, model and decoding."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Bisect: follow this metric (with --slice) instead of the top regression."),
    slice_name: Optional[str] = typer.Option(None, "--slice", help="Bisect: the slice (key=value, or overall) to evaluate."),
    surfaces: Optional[Path] = SurfacesFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Why is the candidate worse? Regressions ranked by effect size per category and slice, likely causes from
    lineage (data and config diffs), and the items that moved most; or, with --bisect, the first bad adapter."""
    _quiet()
    if bisect_:
        return _bisect(history_of, adapters, suite, surface, metric, slice_name, alpha, surfaces, as_json, bool(baseline or candidate))
    if history_of or adapters or metric or slice_name or surface:
        raise PreflineError("--history, --adapters, --surface, --metric and --slice go with --bisect")
    if baseline is None or candidate is None:
        raise PreflineError("diagnose needs BASELINE_RUN and CANDIDATE_RUN (or --bisect with --history SURFACE or --adapters A,B,C)")
    from prefline.gate.diagnose import diagnose
    from prefline.report.diagnosis import print_diagnosis

    result = diagnose(_ledger(), baseline, candidate, alpha=alpha, correction=correction, top=top, items=items, common_items=common_items)
    if as_json:
        return _print_json(result.as_dict())
    print_diagnosis(console, result)


def _bisect(history_of, adapters, suite, surface, metric, slice_name, alpha, surfaces, as_json, gave_runs) -> None:  # noqa: ANN001
    from rich.markup import escape

    from prefline.config import DecodingConfig
    from prefline.gate.bisect import bisect

    if gave_runs:
        raise PreflineError("--bisect takes no run ids: it evaluates the adapters of --history SURFACE or --adapters A,B,C")
    if bool(history_of) == bool(adapters):
        raise PreflineError("--bisect needs exactly one of --history SURFACE and --adapters A,B,C")
    if history_of and surface:
        raise PreflineError("--surface goes with --adapters; --history already names the surface")
    ledger = _ledger()
    decoding, model, runs = DecodingConfig(), None, {}
    if history_of or surface:
        from prefline.release import get_surface

        config = get_surface(history_of or surface, surfaces)
        suite, decoding, model = suite or config.suite, config.decoding, config.model
    if history_of:
        from prefline.evals.suite import load_suite
        from prefline.release import history_adapters

        names, runs = history_adapters(ledger, history_of, load_suite(suite).hash)
    else:
        if suite is None:
            raise PreflineError("--bisect --adapters needs --suite SUITE or --surface S")
        names = [a.strip() for a in adapters.split(",") if a.strip()]
    result = bisect(ledger, names, suite, decoding=decoding, model=model, metric=metric, slice_name=slice_name,
                    good_run=runs.get(names[0]), bad_run=runs.get(names[-1]), alpha=alpha, progress=_say)
    if as_json:
        return _print_json(result.as_dict())
    rows = [[escape(s.adapter), s.run, f"{s.value:.4g}", s.verdict] for s in [result.good, *result.steps, result.bad]]
    console.print(_table(f"bisect on {escape(result.metric)} in {escape(result.slice)} ({result.items} items; bad past {result.threshold:.4g})",
                         ["adapter", "run", result.metric, "verdict"], rows))
    console.print(f"first bad: [bold]{escape(result.first_bad)}[/] ({escape(result.metric)} {next(s.value for s in [*result.steps, result.bad] if s.adapter == result.first_bad):.4g} "
                  f"in {escape(result.slice)}; last good {escape(result.last_good)}); {result.evaluations} evaluation(s) for "
                  f"{len(result.adapters) - 2} adapter(s) in between")


# --- doctor -----------------------------------------------------------------------------


@app.command("doctor")
def doctor_cmd(
    fix: bool = typer.Option(False, "--fix", help="Remove the temporary folders of ingests that were killed (nothing else is touched)."),
    as_json: bool = JsonOpt,
) -> None:
    """Check that the ledger and the home's files agree: versions whose files are gone, folders no ledger row lists,
    leftovers of killed ingests, runs still marked running. Exit 0 when nothing is wrong, 1 when something is."""
    from prefline.doctor import PROBLEMS, as_dicts, check

    findings = check(_ledger(), fix=fix)
    problems = [f for f in findings if f.kind in PROBLEMS and not f.fixed]
    if as_json:
        _print_json({"ok": not problems, "findings": as_dicts(findings)})
    elif findings:
        console.print(_table("doctor", ["finding", "path", "detail", "fixed"],
                             [[f.kind, f.path, f.detail, "yes" if f.fixed else ""] for f in findings]))
    else:
        console.print("ledger and files agree: nothing to report")
    if problems:
        raise typer.Exit(1)


# --- demo -------------------------------------------------------------------------------


@app.command("demo")
def demo_cmd(
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the embedded SmolLM2-135M-Instruct)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Train each adapter for this many steps instead of the demo's 20."),
    suite: str = typer.Option("smoke", "--suite", help="Shipped suite or suite folder both surfaces evaluate and gate on."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="Longest generated answer, in tokens (default 160)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the demo's files: surfaces, gate decisions, diagnosis, reports (default: $PREFLINE_HOME/demo)."),
) -> None:
    """The whole story on shipped data: a length bias in the data, caught by the gate, diagnosed, mitigated, released, rolled back.

    Four kinds of signal -> data report -> the base model live on chat and voice -> a DPO candidate gated -> diagnose ->
    a length-balanced LD-DPO candidate gated -> a forced bad release rolled back -> the files the reports are built from.
    Exit 0 when every step ran (the gate verdicts are the demo's results, printed and recorded, not its exit code); 2 on bad input."""
    _quiet()
    from prefline.demo import DEMO_DECODING, run_demo

    decoding = DEMO_DECODING.model_copy(update={"max_new_tokens": max_new_tokens}) if max_new_tokens else None
    run_demo(_ledger(), console, model_spec=model, max_steps=max_steps, suite_name=suite, out_dir=out, decoding=decoding)


def _terminate(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt  # SIGTERM behaves like Ctrl-C: the same clean-up, the same exit


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    app()
