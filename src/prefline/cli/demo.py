"""`prefline doctor` (the ledger against the files) and `prefline demo` (the whole story on shipped data)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefline.cli._shared import JsonOpt, console, emit, ledger, quiet


def doctor_cmd(
    fix: bool = typer.Option(False, "--fix", help="Remove the temporary folders of ingests that were killed (nothing else is touched)."),
    as_json: bool = JsonOpt,
) -> None:
    """Check that the ledger and the home's files agree: versions whose files are gone, folders no ledger row lists,
    leftovers of killed ingests, runs still marked running. Exit 0 when nothing is wrong, 1 when something is."""
    from prefline.doctor import PROBLEMS, as_dicts, check
    from prefline.report.terminal_release import print_doctor

    findings = check(ledger(), fix=fix)
    problems = [f for f in findings if f.kind in PROBLEMS and not f.fixed]
    emit(as_json, {"ok": not problems, "findings": as_dicts(findings)}, lambda: print_doctor(console, findings))
    if problems:
        raise typer.Exit(1)


def demo_cmd(
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the embedded SmolLM2-135M-Instruct)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Train each adapter for this many steps instead of the demo's 20."),
    suite: str = typer.Option("demo", "--suite", help="Shipped suite or suite folder both surfaces evaluate and gate on (default: demo, short questions for chat and voice)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="Longest generated answer, in tokens (default 256)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the demo's files: surfaces, gate decisions, diagnosis, reports (default: $PREFLINE_HOME/demo)."),
) -> None:
    """The whole story on shipped data: a length bias in the data, caught by the gate, diagnosed, mitigated, released, rolled back.

    Four kinds of signal -> data report -> the base model live on chat and voice -> a DPO candidate gated -> diagnose ->
    a length-balanced LD-DPO candidate gated -> a forced bad release rolled back -> the files the reports are built from.
    Exit 0 when every step ran (the gate verdicts are the demo's results, printed and recorded, not its exit code); 2 on bad input."""
    quiet()
    from prefline.demo import DEMO_DECODING, run_demo

    decoding = DEMO_DECODING.model_copy(update={"max_new_tokens": max_new_tokens}) if max_new_tokens else None
    run_demo(ledger(), console, model_spec=model, max_steps=max_steps, suite_name=suite, out_dir=out, decoding=decoding)
