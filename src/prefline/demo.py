"""The demo: a length bias in the data, caught by the gate, explained by diagnose, fixed, and released.

On the embedded model, the demo data shipped with prefline (written for it, see ``tools/demo_data.py``)
and the ``demo`` suite (short questions for chat and voice), every number computed in the run:

1. ingest four kinds of signal (pairwise votes with a dissenting annotator, ratings, implicit
   events, judge labels asked in both orders) and mix them into one dataset; its report shows the
   chosen responses are longer in most pairs;
2. evaluate the base model (the baseline) and make it live on the ``chat`` and ``voice`` surfaces;
3. train a DPO adapter on that data, evaluate it, and try to promote it: the gate fails where the
   answers grew; ``diagnose`` names the data's length bias as the likely cause, with its numbers;
4. mitigate: a length-balanced version of the data (``data mix --balance-length``) and a
   length-desensitized method (``ld-dpo``); evaluate, gate again, and show what changed;
5. promote what passed; force a bad release out and roll it back, with recovery confirmed or not;
6. write the reports (HTML per run, adapter, gate decision, the diagnosis, capability per candidate and the
   releases; markdown per gate decision; the JSON they are built from) and print the paths.

The surfaces (their suite, policy, model and decoding) are written to ``surfaces.yaml`` in the
demo's output folder, so every ``prefline release ...`` command it prints next works as shown.

(A little over 400 lines: the story is one function that reads top to bottom in the order it prints,
with the report writing and the terminal tables it shows beside it.)
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prefline.config import DecodingConfig, TrainConfig
from prefline.data.ingest import ingest
from prefline.data.mix import mix
from prefline.data.quality import data_report
from prefline.evals.run import Engines, run_eval
from prefline.evals.suite import load_suite
from prefline.gate.diagnose import Diagnosis, diagnose
from prefline.home import home_dir
from prefline.ledger import Ledger
from prefline.models import resolve_model
from prefline.release import history, promote, rollback
from prefline.report.diagnosis import print_diagnosis
from prefline.report.terminal import verdict_line
from prefline.train.run import train

# The demo's training: enough steps for SmolLM2-135M to pick up the data's length preference on
# every run (measured: see the README), few enough to stay within minutes on two CPU cores.
DEMO_TRAIN = TrainConfig(epochs=1, max_steps=20, learning_rate=1e-3, beta=0.1, batch_size=4, max_length=320)
# ld_alpha: the share of the longer response's extra tokens that counts in the margin (LD-DPO).
MITIGATED_TRAIN = DEMO_TRAIN.model_copy(update={"ld_alpha": 0.3})
DEMO_DECODING = DecodingConfig(max_new_tokens=256, batch_size=16)
SIGNALS = (("votes", "pairwise"), ("ratings", "ratings"), ("events", "events"), ("judged", "judge"))
SURFACES = (("chat", "default"), ("voice", "voice"))  # surface -> gate policy; voice: stricter length and latency bounds
WATCH = ("length_tokens", "length_sentences", "voice_too_long", "over_refusal", "hedging_rate", "ttft_s")


def demo_data_path(name: str) -> Path:
    return Path(str(resources.files("prefline") / "resources" / "demo" / name))


def demo_pairs_path(name: str = "pairs.jsonl") -> Path:
    """The plain demo pairs (used by tests and examples; the demo itself ingests the signals)."""
    return demo_data_path(name)


@dataclass
class DemoResult:
    """What the demo made: ledger ids, names, verdicts and the files it wrote."""

    out_dir: Path
    datasets: dict[str, str] = field(default_factory=dict)      # role -> name@version
    adapters: dict[str, str] = field(default_factory=dict)      # role -> adapter name
    runs: dict[str, int] = field(default_factory=dict)          # role -> eval run id
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)  # "role/surface" -> verdict, decision, promoted
    causes: list[dict[str, Any]] = field(default_factory=list)
    rollback: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


class _Steps:
    """A titled rule per step on stdout, and a progress bar per step on stderr."""

    def __init__(self, console: Console, began: float):
        self.console, self.began = console, began
        self.bar_console = Console(stderr=True)

    @contextmanager
    def step(self, title: str, parts: int):
        self.console.rule(f"[bold]{escape(title)}[/bold]  ({time.perf_counter() - self.began:.0f} s)")
        progress = Progress(TextColumn(f"step: {escape(title[:40])}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), console=self.bar_console, transient=True)
        with progress:
            task = progress.add_task("", total=parts)

            def advance(what: str = "") -> None:
                progress.update(task, advance=1, description=escape(what))

            yield advance


def run_demo(ledger: Ledger, console: Console, model_spec: str | None = None, max_steps: int | None = None,
             suite_name: str = "demo", out_dir: str | Path | None = None, decoding: DecodingConfig | None = None,
             show_progress: bool = True) -> DemoResult:
    """Run the whole story; see the module docs. Returns what it made; prints results on ``console``."""
    began = time.perf_counter()
    steps = _Steps(console, began)
    out = Path(out_dir) if out_dir else home_dir("demo")
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out)
    decoding = decoding or DEMO_DECODING
    config = DEMO_TRAIN.model_copy(update={"max_steps": max_steps}) if max_steps else DEMO_TRAIN
    mitigated_config = MITIGATED_TRAIN.model_copy(update={"max_steps": config.max_steps})

    with steps.step("0. model", 1) as advance:
        model = resolve_model(model_spec)
        advance("resolved")
    console.print(f"base model {model.spec} at {model.path} (hash {model.hash[:12]})", markup=False)

    with steps.step("1. data: four kinds of signal -> one dataset", len(SIGNALS) + 2) as advance:
        parts = []
        for file, kind in SIGNALS:
            got = ingest(demo_data_path(f"signals/{file}.jsonl"), f"demo-{file}", ledger, signal=kind)
            for problem in got.problems:
                console.print(f"  {problem}", markup=False)
            console.print(f"{kind:9s} {file}.jsonl -> demo-{file}@{got.version}: read {got.n_read} = accepted {got.n_accepted} + "
                          f"rejected {got.n_rejected} + duplicates {got.n_duplicates} + excluded {got.n_excluded} -> {got.n_pairs} pairs"
                          + _agreement(got.path), markup=False)
            parts.append(f"demo-{file}@{got.version}")
            advance(file)
        mixed = mix("demo", [(p, 1.0) for p in parts], ledger)
        biased = f"{mixed['dataset']['name']}@{mixed['dataset']['version']}"
        result.datasets["biased"] = biased
        advance("mix")
        report = data_report(ledger.get_dataset(biased), ledger, workers=1)
        result.files["data_report_json"] = _write_json(out / "data-report.json", report)
        result.files["data_report_html"] = _data_report_html(report, out / "data-report.html")
        advance("report")
    console.print(f"dataset {biased}: {report['dataset']['pairs']} pairs mixed from {', '.join(parts)}", markup=False)
    console.print(_bias_table(report))
    for warning in report["bias"]["warnings"]:
        console.print(f"warning: {warning}", markup=False)
    overall = report["bias"]["overall"]
    console.print(f"the chosen response is longer in {overall['chosen_longer']:.0%} of pairs "
                  f"[{overall['chosen_longer_ci'][0]:.0%}, {overall['chosen_longer_ci'][1]:.0%}]; chosen responses average "
                  f"{overall['chosen_words_mean']:.0f} words, rejected {overall['rejected_words_mean']:.0f}", markup=False)

    suite = load_suite(suite_name)
    surfaces = _write_surfaces(out / "surfaces.yaml", suite_name, model.spec, decoding)
    result.files["surfaces"] = surfaces
    engines = Engines()

    def evaluate(adapter: str | None) -> int:
        return run_eval(suite, ledger, model_spec=model.spec, adapter=adapter, decoding=decoding, show_progress=show_progress, engines=engines)

    with steps.step(f"2. baseline: the base model on suite {suite.name} ({len(suite.items)} items), live on chat and voice",
                    1 + len(SURFACES)) as advance:
        base_run = evaluate(None)
        result.runs["baseline"] = base_run
        advance("evaluated")
        for surface, _ in SURFACES:
            done = promote(ledger, surface, str(base_run), surfaces=surfaces)
            console.print(f"released base on {surface} (release {done.release['id']}, run {base_run}): {done.message}", markup=False)
            advance(surface)

    def candidate(role: str, method: str, dataset: str, train_config: TrainConfig, title: str) -> None:
        with steps.step(title, 2 + len(SURFACES)) as advance:
            name = _free_adapter_name(ledger, f"demo-{role}")
            adapter = train(method, dataset, name, train_config, ledger, model_spec=model.spec, show_progress=show_progress)
            result.adapters[role] = name
            last = adapter["metrics"].get("last", {})
            console.print(f"adapter {name} ({method} on {dataset}): {adapter['metrics']['steps']} steps, final loss "
                          f"{last.get('loss', float('nan')):.3f}, reward margin {last.get('rewards/margins', float('nan')):+.3f}", markup=False)
            advance("trained")
            run = evaluate(name)
            result.runs[role] = run
            advance("evaluated")
            for surface, policy in SURFACES:
                attempt = promote(ledger, surface, str(run), surfaces=surfaces)
                gate = attempt.gate
                result.gates[f"{role}/{surface}"] = {"verdict": gate.verdict, "decision": gate.decision_id, "promoted": attempt.promoted,
                                                    "policy": policy, "failures": [c.name for c in gate.failures]}
                result.files[f"gate_{role}_{surface}"] = _write_json(out / f"gate-{role}-{surface}.json", gate.as_dict())
                _print_attempt(console, name, surface, attempt)
                advance(surface)

    candidate("dpo", "dpo", biased, config, "3. candidate: DPO on the length-biased data, gated on voice and chat")

    with steps.step("3b. diagnose: which slices regressed, and the likely cause", 1) as advance:
        found = diagnose(ledger, base_run, result.runs["dpo"])
        advance("done")
    print_diagnosis(console, found)
    result.causes = [c.__dict__ for c in found.causes]
    result.files["diagnosis"] = _write_json(out / "diagnosis-dpo.json", found.as_dict())

    with steps.step("4. mitigate: length-balanced data and a length-desensitized method", 1) as advance:
        balanced = mix("demo", [(biased, 1.0)], ledger, balance_length=True)
        balanced_ref = f"{balanced['dataset']['name']}@{balanced['dataset']['version']}"
        result.datasets["balanced"] = balanced_ref
        advance("mix")
    cut = sum(1 for r in balanced["rejects"] if r.get("category") == "length-balance") if isinstance(balanced.get("rejects"), list) else None
    balanced_report = data_report(ledger.get_dataset(balanced_ref), ledger, workers=1)
    b = balanced_report["bias"]["overall"]
    console.print(f"dataset {balanced_ref}: {balanced_report['dataset']['pairs']} pairs "
                  + (f"({cut} chosen-longer pairs cut) " if cut is not None else "")
                  + f"with the chosen response longer in {b['chosen_longer']:.0%}, per slice balanced; "
                  f"trained with ld-dpo (ld_alpha {mitigated_config.ld_alpha:g})", markup=False)
    candidate("mitigated", "ld-dpo", balanced_ref, mitigated_config, "4b. candidate: LD-DPO on the length-balanced data, gated again")
    console.print(_change_table(ledger, result.runs, suite))

    with steps.step("5. a bad release forced out on chat, then rolled back", 2) as advance:
        live = ledger.latest_release("chat")
        if live["adapter_name"] != result.adapters["dpo"]:
            forced = promote(ledger, "chat", str(result.runs["dpo"]), force=True,
                             reason="demo: a release that skipped the gate, to show a rollback", surfaces=surfaces)
            console.print(f"forced {forced.target} live on chat (release {forced.release['id']}) past a {forced.gate.verdict} gate "
                          f"(decision {forced.gate.decision_id})", markup=False)
        else:
            console.print(f"{result.adapters['dpo']} is live on chat already (its gate passed): rolling it back", markup=False)
        advance("forced")
        back = rollback(ledger, "chat", surfaces=surfaces, reason="verbosity regression reported on chat")
        advance("rolled back")
    result.rollback = {"confirmed": back.confirmed, "restored": back.restored["adapter_name"], "rolled_back": back.rolled_back["adapter_name"],
                       "release": back.release["id"], "run": back.release["run_id"], "differences": len(back.differences)}
    colour = "green" if back.confirmed else "red"
    console.print(f"rolled back {escape(back.rolled_back['adapter_name'])} on chat: {escape(back.restored['adapter_name'])} is live again "
                  f"(release {back.release['id']}, run {back.release['run_id']})\n[bold {colour}]{escape(back.message)}[/]")
    console.print(_live_table(ledger))

    with steps.step("6. reports", 1) as advance:
        releases = history(ledger)
        result.files["releases"] = _write_json(out / "releases.json", releases)
        result.files["summary"] = _write_summary(out / "summary.md", result, found)
        result.files.update(write_html_reports(ledger, result, out))
        advance("written")
    result.seconds = time.perf_counter() - began
    console.rule(f"[bold]done in {result.seconds:.0f} s[/bold]")
    for label, path in result.files.items():
        console.print(f"{label + ':':22s}{path}", markup=False, highlight=False)
    dpo, mitigated = result.runs["dpo"], result.runs["mitigated"]
    voice = result.gates.get("dpo/voice", {}).get("verdict", "")
    gate_note = {"fail": "the failing gate again (exit 1)", "pass": "the voice gate again (it passed: exit 0)"}.get(
        voice, "the voice gate again (inconclusive: exit 2)")
    console.print(
        f"ledger: {ledger.safe_url}\n\nnext:\n"
        f"  prefline gate {base_run} {dpo} --policy voice         {gate_note}\n"
        f"  prefline diagnose {base_run} {dpo}                    the regressions and their likely cause\n"
        f"  prefline compare {dpo} {mitigated}                    what the mitigation changed, every metric and slice\n"
        f"  prefline release history --surface chat              every promotion and rollback\n"
        f"  prefline release status --surfaces {surfaces}", markup=False, highlight=False)
    return result


# --- reports -----------------------------------------------------------------------------------


def write_html_reports(ledger: Ledger, result: DemoResult, out: Path) -> dict[str, Path]:
    """The HTML reports of what the demo made, one self-contained page each, written under ``out``.

    Per eval run (``run-ROLE.html``) and adapter (``adapter-ROLE.html``); per gate decision
    (``gate-ROLE-SURFACE.html``, with its markdown summary for a pull request); the diagnosis of the
    length-biased candidate; a capability report per candidate (style and refusal apart from
    accuracy); and the releases of both surfaces over time. Returns label -> path, in that order.
    """
    from prefline.report import (write_adapter_report, write_capability_report, write_diagnose_report, write_gate_report,
                                 write_release_report, write_run_report)

    files: dict[str, Path] = {}
    for role, run in result.runs.items():
        files[f"run_{role}_html"] = write_run_report(ledger, run, html=out / f"run-{role}.html")["html"]
    for role, name in result.adapters.items():
        files[f"adapter_{role}_html"] = write_adapter_report(ledger, name, html=out / f"adapter-{role}.html")["html"]
    for key, gate in result.gates.items():
        stem = f"gate-{key.replace('/', '-')}"
        written = write_gate_report(ledger, gate["decision"], html=out / f"{stem}.html", md=out / f"{stem}.md")
        files[f"{stem.replace('-', '_')}_html"], files[f"{stem.replace('-', '_')}_md"] = written["html"], written["markdown"]
    base = result.runs["baseline"]
    if "dpo" in result.runs:
        files["diagnosis_html"] = write_diagnose_report(ledger, base, result.runs["dpo"], html=out / "diagnosis-dpo.html")["html"]
    for role in ("dpo", "mitigated"):
        if role in result.runs:
            files[f"capability_{role}_html"] = write_capability_report(ledger, base, result.runs[role],
                                                                       html=out / f"capability-{role}.html")["html"]
    files["releases_html"] = write_release_report(ledger, html=out / "releases.html")["html"]
    return files


def _data_report_html(report: dict[str, Any], path: Path) -> Path:
    from prefline.report.data_html import write_html

    write_html(report, path)
    return path


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _write_summary(path: Path, result: DemoResult, found: Diagnosis) -> Path:
    """A markdown summary for a pull-request comment: verdicts, failing checks, the likely cause, rollback."""
    lines = ["# prefline demo", "", "| candidate | surface | policy | verdict | promoted | decision |", "|---|---|---|---|---|---|"]
    for key, gate in result.gates.items():
        role, surface = key.split("/")
        lines.append(f"| {result.adapters[role]} | {surface} | {gate['policy']} | {gate['verdict']} | {'yes' if gate['promoted'] else 'no'} "
                     f"| {gate['decision']} |")
    for key, gate in result.gates.items():
        if gate["failures"]:
            lines += ["", f"**{result.adapters[key.split('/')[0]]} on {key.split('/')[1]}** failed: " + ", ".join(gate["failures"])]
    if found.causes:
        top = found.causes[0]
        lines += ["", f"Likely cause (confidence {top.confidence:.2f}): {top.evidence}"]
    rb = result.rollback
    lines += ["", f"Rollback on chat: {rb['rolled_back']} -> {rb['restored']}, recovery {'confirmed' if rb['confirmed'] else 'NOT confirmed'}."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- terminal helpers --------------------------------------------------------------------------


def _agreement(path: str) -> str:
    """The pairs' consensus confidence: below 1 where annotators split, or where the signal is weaker evidence (events)."""
    import pyarrow.parquet as pq

    if "confidence" not in pq.ParquetFile(path).schema_arrow.names:
        return ""
    confidence = [c for c in pq.read_table(path, columns=["confidence"]).column("confidence").to_pylist() if c is not None]
    split = sum(1 for c in confidence if c < 1)
    return f"; consensus confidence mean {sum(confidence) / len(confidence):.2f}, below 1 in {split}" if confidence else ""


def _bias_table(report: dict[str, Any]) -> Table:
    bias = report["bias"]
    table = Table(title="data report: length bias (chosen vs rejected)", title_justify="left")
    for column in ["group", "pairs", "chosen longer [95% CI]", "chosen words", "rejected words"]:
        table.add_column(column)
    groups = [("overall", bias["overall"])] + [(f"source={k}", v) for k, v in bias["by_source"].items()] + list(bias["by_slice"].items())
    for label, s in groups:
        ci = s.get("chosen_longer_ci") or [None, None]
        share = f"{s['chosen_longer']:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci[0] is not None else "")
        table.add_row(escape(label), str(s["pairs"]), share, f"{s.get('chosen_words_mean', 0):.1f}", f"{s.get('rejected_words_mean', 0):.1f}")
    return table


def _print_attempt(console: Console, name: str, surface: str, attempt) -> None:  # noqa: ANN001
    gate = attempt.gate
    worst = sorted(gate.failures, key=lambda c: (not c.slice.startswith("surface=voice"), c.slice != "overall", c.metric))
    console.print(f"{escape(name)} -> {escape(surface)} (policy {escape(gate.policy)}): " + verdict_line(gate))
    for c in worst[:8]:
        console.print(f"  fail: {escape(c.name)}: {escape(c.reason)}")
    if len(worst) > 8:
        console.print(f"  ... and {len(worst) - 8} more failing check(s) (gate-*.json, or prefline gate with --json)")
    for c in gate.inconclusive[:3]:
        console.print(f"  inconclusive: {escape(c.name)}: {escape(c.reason)}")
    what = "[bold green]released[/]" if attempt.promoted else "[bold red]not released[/]"
    console.print(f"  {what}: {escape(attempt.message)}")


def _change_table(ledger: Ledger, runs: dict[str, int], suite) -> Table:  # noqa: ANN001
    """Overall and per-surface means of the watched metrics, for each run."""
    table = Table(title="what changed (mean per run; overall and per surface slice)", title_justify="left")
    table.add_column("metric")
    table.add_column("slice")
    for role, run in runs.items():
        table.add_column(f"{role} (run {run})")
    summaries = {role: ledger.get_run(run).get("summary") or {} for role, run in runs.items()}
    slices = ["overall"] + sorted({f"surface={item.slices['surface']}" for item in suite.items if "surface" in item.slices})
    for metric in WATCH:
        for name in slices:
            cells = []
            for role in runs:
                stats = summaries[role].get(metric, {}).get(name)
                cells.append(f"{stats['mean']:.3f}" if stats else "-")
            if any(cell != "-" for cell in cells):
                table.add_row(metric, name, *cells)
    return table


def _live_table(ledger: Ledger) -> Table:
    table = Table(title="releases (oldest first)", title_justify="left")
    for column in ["surface", "release", "action", "adapter", "run", "decision", "outcome"]:
        table.add_column(column)
    for row in history(ledger):
        outcome = row.get("outcome") or {}
        if row["action"] == "rollback":
            what = "recovery confirmed" if outcome.get("confirmed") else "recovery NOT confirmed"
        else:
            what = (row.get("verdict") or "first release") + ("; forced: " + (row.get("reason") or "") if row.get("forced") else "")
        table.add_row(escape(row["surface"]), str(row["id"]), row["action"], escape(row["adapter_name"]), str(row["run_id"]),
                      str(row["decision_id"] or "-"), escape(what))
    return table


def _write_surfaces(path: Path, suite: str, model: str, decoding: DecodingConfig) -> Path:
    surfaces = {name: {"suite": suite, "policy": policy, "model": model, "decoding": decoding.model_dump()} for name, policy in SURFACES}
    path.write_text("# written by `prefline demo`: the demo's surfaces, for the release commands it prints\n"
                    + yaml.safe_dump({"surfaces": surfaces}, sort_keys=False), encoding="utf-8")
    return path


def _free_adapter_name(ledger: Ledger, stem: str) -> str:
    name, n = stem, 1
    while ledger.find_adapter(name) is not None:
        n += 1
        name = f"{stem}-{n}"
    return name



__all__ = ["DEMO_DECODING", "DEMO_TRAIN", "DemoResult", "demo_data_path", "demo_pairs_path", "run_demo", "write_html_reports"]
