"""An eval run: suite x model (+ adapter) -> stored generations and per-item scores.

The run row is written first (status ``running``), then every generation and every
score with its evidence, then a summary: each metric's mean with a bootstrap interval,
overall and per slice tag.
"""

from __future__ import annotations

from typing import Any

from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals.backends import BACKENDS, Generation
from prefline.evals.scorers import get_scorers
from prefline.evals.suite import Suite
from prefline.gate.stats import bootstrap_mean
from prefline.ledger import Ledger
from prefline.models import resolve_model


def run_eval(
    suite: Suite,
    ledger: Ledger,
    model_spec: str | None = None,
    adapter: str | None = None,
    decoding: DecodingConfig | None = None,
    scorers: list[str] | None = None,
    backend: str = "hf",
    show_progress: bool = True,
) -> int:
    """Generate on every suite item, score, store; return the run id."""
    from prefline.train.run import adapter_path, software_versions

    decoding = decoding or DecodingConfig()
    chosen_scorers = get_scorers(scorers)
    if backend not in BACKENDS:
        raise PreflineError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    adapter_row = ledger.get_adapter(adapter) if adapter else None
    if adapter_row is not None and model_spec is None:
        model_spec = adapter_row["base_model"]
    model_ref = resolve_model(model_spec)
    if adapter_row is not None and adapter_row["base_model_hash"] != model_ref.hash:
        raise PreflineError(f"adapter {adapter!r} was trained on {adapter_row['base_model']}, not on {model_ref.spec} (base model hashes differ)")

    run_id = ledger.add_run(
        suite_name=suite.name, suite_hash=suite.hash,
        model=model_ref.spec, model_hash=model_ref.hash,
        adapter_id=adapter_row["id"] if adapter_row else None,
        adapter_hash=adapter_row["adapter_hash"] if adapter_row else None,
        backend=backend, decoding=decoding.model_dump(), seed=decoding.seed,
        scorers=[s.name for s in chosen_scorers], versions=software_versions(),
    )
    engine = BACKENDS[backend](model_ref, decoding, adapter_path(adapter_row) if adapter_row else None)
    generations = _generate(engine, suite, show_progress, label=f"run {run_id}")
    ledger.add_generations(run_id, (
        {
            "item_id": item.id, "item_hash": item.hash, "slices": item.slices, "messages": item.chat(),
            "output": gen.output, "input_tokens": gen.input_tokens, "output_tokens": gen.output_tokens,
            "latency_s": gen.latency_s, "finish_reason": gen.finish_reason,
        }
        for item, gen in zip(suite.items, generations)
    ))
    score_rows = []
    for item, gen in zip(suite.items, generations):
        for s in chosen_scorers:
            for metric, score in s.fn(item, gen).items():
                score_rows.append({"item_id": item.id, "metric": metric, "scorer": s.name, "value": score.value, "evidence": score.evidence})
    ledger.add_scores(run_id, score_rows)
    ledger.finish_run(run_id, summarize_scores(score_rows, {i.id: i.slices for i in suite.items}, seed=decoding.seed))
    return run_id


def _generate(engine, suite: Suite, show_progress: bool, label: str) -> list[Generation]:
    conversations = [item.chat() for item in suite.items]
    if not show_progress:
        return engine.generate(conversations)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"generating ({label})"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
        task = progress.add_task("gen", total=len(conversations))
        return engine.generate(conversations, on_batch=lambda n: progress.advance(task, n))


def summarize_scores(score_rows: list[dict[str, Any]], slices_of: dict[str, dict[str, str]], seed: int = 0) -> dict[str, Any]:
    """Per metric and slice (``overall`` and ``key=value``): n, mean and a 90% bootstrap interval."""
    groups: dict[str, dict[str, list[float]]] = {}
    for row in score_rows:
        if row["value"] is None:
            continue
        names = ["overall"] + [f"{k}={v}" for k, v in sorted(slices_of[row["item_id"]].items())]
        for name in names:
            groups.setdefault(row["metric"], {}).setdefault(name, []).append(row["value"])
    summary: dict[str, Any] = {}
    for metric, by_slice in groups.items():
        summary[metric] = {}
        for name, values in by_slice.items():
            ci = bootstrap_mean(values, seed=seed)
            summary[metric][name] = {"n": len(values), "mean": ci.estimate, "ci": [ci.low, ci.high]}
    return summary
