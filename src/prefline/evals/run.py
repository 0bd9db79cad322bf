"""An eval run: suite x model (+ adapter) -> stored generations and per-item scores.

The run row is written first (status ``running``), then every generation and every
score with its evidence, then a summary: each metric's mean with a bootstrap interval,
overall and per slice tag.

Generations go through a content-addressed cache keyed by what determines them (model
hash, adapter hash, backend, decoding settings, messages), written batch by batch. An
unchanged re-run generates nothing, and a run killed mid-way resumes from its last
finished batch when started again. ``batch_size`` is left out of the key: it changes
throughput, not what greedy decoding returns.

The backend (``hf``, ``openai``, ``vllm``; see ``prefline.evals.backends``) names the model
first, so a fully cached run never loads a model or contacts a server. Its options
(``backend_options``, e.g. ``base_url`` for ``openai``) travel to it unchanged; only the
model identity it reports is stored, never the options themselves (an API key stays out).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals.backends import Generation, check_options, get_backend
from prefline.evals.scorers import Scorer, get_scorers
from prefline.evals.suite import Suite, check_frozen, register_suite, suite_from_ledger
from prefline.stats import bootstrap_mean
from prefline.hashing import content_hash
from prefline.ledger import Ledger

EXPORT_SCHEMA_VERSION = 1


def generation_key(model_hash: str, adapter_hash: str | None, backend: str, decoding: DecodingConfig, messages: list[dict]) -> str:
    settings = decoding.model_dump(exclude={"batch_size"})
    return content_hash({"model": model_hash, "adapter": adapter_hash, "backend": backend, "decoding": settings, "messages": messages})


def run_eval(
    suite: Suite,
    ledger: Ledger,
    model_spec: str | None = None,
    adapter: str | None = None,
    decoding: DecodingConfig | None = None,
    scorers: list[str] | None = None,
    backend: str = "hf",
    show_progress: bool = True,
    backend_options: dict[str, Any] | None = None,
    engines: Engines | None = None,
) -> int:
    """Generate on every suite item (reusing cached generations), score, store; return the run id.

    With ``backend="openai"``, ``model_spec`` is the served model name and ``backend_options``
    holds at least ``base_url``. Runs given the same ``engines`` share loaded models: several
    adapters are then evaluated on one loaded base (see :func:`run_evals`).
    """
    from prefline.provenance import software_versions

    decoding = decoding or DecodingConfig()
    chosen_scorers = get_scorers(scorers or suite.scorers or None)
    engine_cls = get_backend(backend)
    options = check_options(backend, backend_options or {})
    check_frozen(suite, ledger)
    adapter_row = ledger.get_adapter(adapter) if adapter else None
    if adapter_row is not None and adapter_row["method"] == "reward":
        raise PreflineError(f"adapter {adapter!r} is a reward model: it scores responses, it does not generate them; "
                            "use it as a judge (prefline preference winrate --judge reward:NAME)")
    model_ref = engine_cls.model_ref(model_spec, adapter_row, **options)
    if adapter_row is not None and adapter_row["base_model_hash"] != model_ref.hash:
        raise PreflineError(f"adapter {adapter!r} was trained on {adapter_row['base_model']}, not on {model_ref.spec} (base model hashes differ)")
    adapter_hash = adapter_row["adapter_hash"] if adapter_row else None

    register_suite(suite, ledger)
    run_id = ledger.add_run(
        suite_name=suite.name, suite_hash=suite.hash,
        model=model_ref.spec, model_hash=model_ref.hash,
        adapter_id=adapter_row["id"] if adapter_row else None, adapter_hash=adapter_hash,
        backend=backend, decoding=decoding.model_dump(), seed=decoding.seed,
        scorers=[s.name for s in chosen_scorers], versions=software_versions(),
    )
    with failing_run(ledger, run_id):
        _generate_and_score(suite, ledger, run_id, model_ref, adapter_row, adapter_hash, decoding, chosen_scorers,
                            engine_cls, options, engines, backend, show_progress)
    return run_id


@contextmanager
def failing_run(ledger: Ledger, run_id: int) -> Iterator[None]:
    """A run that stops with an error or an interrupt is marked ``failed`` with the reason, then the error goes on.

    What was generated before is in the generation cache, so the same command run again resumes there.
    """
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            reason = "interrupted (Ctrl-C or SIGTERM)"
        elif isinstance(exc, PreflineError):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        try:
            ledger.fail_run(run_id, reason)
        except Exception:  # the ledger itself is unreachable: the original error matters more
            pass
        raise


def _generate_and_score(suite, ledger, run_id, model_ref, adapter_row, adapter_hash, decoding, chosen_scorers,  # noqa: ANN001
                        engine_cls, options, engines, backend, show_progress) -> None:
    from prefline.provenance import adapter_path

    keys = [generation_key(model_ref.hash, adapter_hash, backend, decoding, item.chat()) for item in suite.items]
    cached = ledger.cached_generations(keys)
    todo = [i for i, key in enumerate(keys) if key not in cached]
    if todo:
        engine = (engines or Engines()).get(engine_cls, model_ref, decoding, adapter_path(adapter_row) if adapter_row else None, options)

        def persist(positions: list[int], gens: list[Generation]) -> None:
            rows = [{"key": keys[todo[p]], **gen.__dict__} for p, gen in zip(positions, gens)]
            ledger.cache_generations(rows)
            cached.update({row["key"]: row for row in rows})

        _generate(engine, [suite.items[i].chat() for i in todo], persist, show_progress, label=f"run {run_id}")
    generations = [Generation(**{f: cached[key][f] for f in Generation.__dataclass_fields__}) for key in keys]
    ledger.add_generations(run_id, (
        {
            "item_id": item.id, "item_hash": item.hash, "slices": item.slices, "messages": item.chat(),
            "output": gen.output, "input_tokens": gen.input_tokens, "output_tokens": gen.output_tokens,
            "latency_s": gen.latency_s, "ttft_s": gen.ttft_s, "finish_reason": gen.finish_reason, "cache_key": key,
        }
        for item, gen, key in zip(suite.items, generations, keys)
    ))
    _score_and_finish(ledger, run_id, suite, generations, chosen_scorers, decoding.seed)


class Engines:
    """Loaded generation backends, kept across runs so that a base model is loaded once.

    A backend that can switch adapters on its loaded base (``use_adapter``: the hf backend) is
    reused for every adapter of that base; any other is built anew when its adapter changes.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def get(self, engine_cls, model_ref, decoding: DecodingConfig, adapter_dir, options: dict[str, Any]):  # noqa: ANN001
        key = json.dumps([engine_cls.name, model_ref.hash, decoding.model_dump(), sorted(options.items())], default=str)
        engine = self._loaded.get(key)
        if engine is not None and getattr(engine, "use_adapter", None) is not None and engine.use_adapter(adapter_dir):
            return engine
        self._loaded[key] = engine = engine_cls(model_ref, decoding, adapter_dir, **options)
        return engine


def run_evals(suite: Suite, ledger: Ledger, adapters: list[str | None], model_spec: str | None = None, **kwargs: Any) -> list[int]:
    """One run per adapter (None: the base model alone) on one suite, loading the base model once."""
    engines = Engines()
    return [run_eval(suite, ledger, model_spec=model_spec, adapter=adapter, engines=engines, **kwargs) for adapter in adapters]


def replay_run(source_run: int | str, ledger: Ledger, scorers: list[str] | None = None) -> int:
    """Re-score a stored run's generations with (new or changed) scorers, generating nothing."""
    source = ledger.get_run(source_run)
    chosen_scorers = get_scorers(scorers or source["scorers"])
    suite_row = ledger.get_suite(source["suite_hash"])
    if suite_row is None:
        raise PreflineError(f"run {source['id']} has no stored suite content (it predates suite storage); re-run it instead")
    suite = suite_from_ledger(suite_row)
    stored = {g["item_id"]: g for g in ledger.generations(source["id"])}
    missing = [item.id for item in suite.items if item.id not in stored]
    if missing:
        raise PreflineError(f"run {source['id']} lacks generations for {len(missing)} item(s) (e.g. {missing[0]}); it did not finish")
    run_id = ledger.add_run(**{k: source[k] for k in ("suite_name", "suite_hash", "model", "model_hash", "adapter_id",
                                                       "adapter_hash", "backend", "decoding", "seed", "versions")},
                            scorers=[s.name for s in chosen_scorers], replay_of=source["id"])
    with failing_run(ledger, run_id):
        ledger.add_generations(run_id, ({k: v for k, v in stored[item.id].items() if k != "run_id"} for item in suite.items))
        generations = [Generation(**{f: stored[item.id][f] for f in Generation.__dataclass_fields__}) for item in suite.items]
        _score_and_finish(ledger, run_id, suite, generations, chosen_scorers, source["seed"])
    return run_id


def _score_and_finish(ledger: Ledger, run_id: int, suite: Suite, generations: list[Generation], scorers: list[Scorer], seed: int) -> None:
    score_rows = []
    for s in scorers:
        for item, scores in zip(suite.items, s.score_all(suite.items, generations)):
            for metric, score in scores.items():
                score_rows.append({"item_id": item.id, "metric": metric, "scorer": s.name, "value": score.value, "evidence": score.evidence})
    ledger.add_scores(run_id, score_rows)
    ledger.finish_run(run_id, summarize_scores(score_rows, {i.id: i.slices for i in suite.items}, seed=seed))


def _generate(engine, conversations: list[list[dict]], on_batch, show_progress: bool, label: str) -> list[Generation]:
    if not show_progress:
        return engine.generate(conversations, on_batch=on_batch)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # progress goes to standard error: standard output holds results (`prefline eval --json | jq .`)
    with Progress(TextColumn(f"generating ({label})"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:
        task = progress.add_task("gen", total=len(conversations))

        def advance(positions, gens):
            on_batch(positions, gens)
            progress.advance(task, len(positions))

        return engine.generate(conversations, on_batch=advance)


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


def export_run(run_id: int | str, ledger: Ledger) -> dict[str, Any]:
    """A self-describing JSON document of one run: settings, suite, every item's output and scores."""
    from prefline.evals.scorers import SCORERS

    run = ledger.get_run(run_id)
    scores: dict[str, dict[str, Any]] = {}
    for row in ledger.scores(run["id"]):
        scores.setdefault(row["item_id"], {})[row["metric"]] = {"value": row["value"], "scorer": row["scorer"], "evidence": row["evidence"]}
    get_scorers(None)  # make sure the built-in scorers are registered for their metadata
    metrics = {m: {"scorer": s.name, "direction": d, "layer": s.layer, "category": s.category, "axis": s.axis}
               for s in SCORERS.values() if s.name in run["scorers"] for m, d in s.metrics.items()}
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "kind": "prefline.eval_run",
        "run": {k: v for k, v in run.items() if k != "summary"},
        "metrics": metrics,
        "summary": run["summary"],
        "items": [{**{k: v for k, v in g.items() if k != "run_id"}, "scores": scores.get(g["item_id"], {})}
                  for g in ledger.generations(run["id"])],
    }
