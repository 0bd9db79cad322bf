"""`prefline compare`, `prefline gate` and `prefline diagnose` (with --bisect): run vs run, the policy's verdict, why."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefline.cli._shared import EXIT_USAGE, JsonOpt, console, emit, ledger, quiet, say, stderr
from prefline.errors import PreflineError

SurfacesFileOpt = typer.Option(None, "--surfaces", help="Surfaces file mapping each surface to its suite and policy (default: $PREFLINE_HOME/surfaces.yaml, else the shipped one).")


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

    result = compare(ledger(), baseline, candidate, common_items=common_items, correction=correction, samples=samples, seed=seed)

    def human() -> None:
        console.print(comparison_table(result))
        console.print(result.scope, markup=False)

    emit(as_json, result.as_dict(), human)


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

    result = compare_runs(ledger(), baseline, candidate, load_policy(policy), reference_run=reference, strict=strict, common_items=common_items)
    err = stderr()
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    if junit is not None:
        from prefline.report.junit import write_gate_junit

        write_gate_junit(result, junit)
    follow = f"prefline release promote {candidate} --surface SURFACE" if result.verdict == "pass" else f"prefline diagnose {baseline} {candidate}"
    emit(as_json, result.as_dict(), lambda: print_gate(console, result), follow)
    raise typer.Exit({"pass": 0, "fail": 1}.get(result.verdict, EXIT_USAGE))


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
    quiet()
    if bisect_:
        if baseline or candidate:
            raise PreflineError("--bisect takes no run ids: it evaluates the adapters of --history SURFACE or --adapters A,B,C")
        from prefline.release import bisect_releases
        from prefline.report.terminal_release import print_bisect

        found = bisect_releases(ledger(), history_of=history_of, adapters=adapters, suite=suite, surface=surface, metric=metric,
                                slice_name=slice_name, alpha=alpha, surfaces=surfaces, progress=say)
        return emit(as_json, found.as_dict(), lambda: print_bisect(console, found))
    if history_of or adapters or metric or slice_name or surface:
        raise PreflineError("--history, --adapters, --surface, --metric and --slice go with --bisect")
    if baseline is None or candidate is None:
        raise PreflineError("diagnose needs BASELINE_RUN and CANDIDATE_RUN (or --bisect with --history SURFACE or --adapters A,B,C)")
    from prefline.gate.diagnose import diagnose
    from prefline.report.diagnosis import print_diagnosis

    result = diagnose(ledger(), baseline, candidate, alpha=alpha, correction=correction, top=top, items=items, common_items=common_items)
    emit(as_json, result.as_dict(), lambda: print_diagnosis(console, result))
