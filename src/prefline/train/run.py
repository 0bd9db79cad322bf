"""A training run, top to bottom: check, register, load, train, save, record lineage.

Everything that can be wrong with the request (unknown method or dataset, a taken adapter
name, bad hyper-parameters, weights a method cannot honour, an unknown probe suite) is checked
before any model is loaded. The adapter row is written first with status ``running`` and
completed at the end, and step metrics go to the ledger as they happen, so a run is visible
while it trains. What differs between methods (trainer, data, model head, loss arguments)
comes from the method table; a surface's defaults (``surfaces``) are applied before the method's.

Alongside the trainer: ``StepRecorder`` (step metrics, progress, trap warnings from ``traps``)
and, with ``probe_every``, ``probes.DriftProbe``. With ``save_steps`` the trainer writes
checkpoints under the adapter's folder; ``resume`` continues a killed run from the last one.
Under ``accelerate launch`` every process runs ``train``; the main one alone registers the
adapter, records steps and probes, and saves.

(A little over 400 lines: the run is kept as one recipe that reads top to bottom, as the
method table keeps what differs between methods out of it.)
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from prefline.config import TrainConfig
from prefline.data.store import check_name, load_pairs
from prefline.errors import PreflineError
from prefline.hashing import folder_hash
from prefline.home import home_dir
from prefline.ledger import Ledger, utcnow
from prefline.models import load_model, load_tokenizer, resolve_model
from prefline.provenance import software_versions
from prefline.train.memory import ReleaseMemory, cpu_logprob_tiles
from prefline.train.methods import METHODS, WEIGHT_COLUMN, Method, get_method
from prefline.train.probes import DriftProbe, probe_items
from prefline.train.surfaces import apply_surface
from prefline.train.traps import find_traps

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def train(
    method: str,
    dataset_ref: str,
    name: str,
    config: TrainConfig,
    ledger: Ledger,
    model_spec: str | None = None,
    surface: str | None = None,
    show_progress: bool = True,
    surfaces: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train adapter ``name`` with ``method`` on a dataset version; return its ledger row.

    ``surface`` fills in that surface's defaults where ``config`` sets nothing (``surfaces``: the
    config file's own surface defaults; see ``prefline.train.surfaces``). Under ``accelerate launch``
    every process runs this; only the main one writes to the ledger and the adapter folder.
    """
    spec = get_method(method)
    config, applied, notes = apply_surface(config, surface, spec, surfaces)
    config = spec.resolve(config)
    if config.finetune == "full" and spec.lora_task != "CAUSAL_LM":
        raise PreflineError(f"method {spec.name!r} trains a LoRA adapter with a score head only; finetune: full is for the generative methods")
    check_name(name, "adapter")
    existing = ledger.find_adapter(name)
    if existing is not None:
        raise PreflineError(f"adapter {name!r} already exists in the ledger (status {existing['status']}); choose another --name")
    dataset = ledger.get_dataset(dataset_ref)
    pairs = load_pairs(dataset)
    _check_weights(spec, pairs, dataset)
    model_ref = resolve_model(model_spec)
    if config.gradient_checkpointing is None:
        longest = longest_pair_tokens(pairs, config.max_length)
        config = config.model_copy(update={"gradient_checkpointing": needs_checkpointing(Path(model_ref.path), config, longest)})
    if config.precompute_ref_log_probs is None and "precompute_ref_log_probs" in spec.uses:
        config = config.model_copy(update={"precompute_ref_log_probs": precompute_ref_pays(spec, config, len(pairs))})
    if config.probe_every:
        probe_items(config)  # an unknown probe suite fails here, before a model loads

    out = home_dir("adapters") / name
    args = trl_config(spec, config, out / "checkpoints")
    main = _main_process(args)  # sets up the process group under accelerate launch: after it, ranks can wait
    adapter_id = None
    if main:
        shutil.rmtree(out, ignore_errors=True)  # only a failed run's leftovers: the name is unused in the ledger
        settings = spec.settings(config)
        if applied:
            settings["surface_defaults"] = applied
        adapter_id = ledger.add_adapter(
            name=name, method=method, status="running",
            base_model=model_ref.spec, base_model_hash=model_ref.hash,
            dataset_id=dataset["id"], dataset_hash=dataset["content_hash"],
            config=settings, seed=config.seed,
            surface=surface, path=str(out), versions=software_versions(),
        )
    run = _Run(spec, config, ledger, adapter_id, main, out, model_ref, args, show_progress, notes=notes)
    return run.train(pairs, name)


def resume(name: str, ledger: Ledger, show_progress: bool = True) -> dict[str, Any]:
    """Continue adapter ``name``'s killed or failed run from its last checkpoint, with its recorded config.

    The method, dataset version, base model and settings come from the ledger (the dataset and base
    model must still hash as recorded). Step metrics and probes recorded after the checkpoint are
    dropped: the resumed run records those steps again. With no complete checkpoint (``save_steps``
    was 0, or the run died before the first one) it starts again from step 0.
    """
    from prefline.config import parse

    adapter = ledger.get_adapter(name, finished=False)
    if adapter["status"] not in ("running", "failed"):
        raise PreflineError(f"adapter {name!r} has status {adapter['status']!r}: only a killed or failed run (running, failed) can be resumed")
    spec = get_method(adapter["method"])
    recorded = {k: v for k, v in adapter["config"].items() if k not in ("method", "surface_defaults")}
    if "group_by_length" in spec.uses:
        recorded.setdefault("group_by_length", False)  # recorded before batches were grouped: keep its batches
    config = parse(recorded, TrainConfig, f"adapter {name}: recorded config")
    dataset = ledger.get_dataset(str(adapter["dataset_id"]))
    if dataset["content_hash"] != adapter["dataset_hash"]:
        raise PreflineError(f"adapter {name!r}: dataset {dataset['name']}@{dataset['version']} no longer hashes as recorded")
    model_ref = resolve_model(adapter["base_model"])
    if model_ref.hash != adapter["base_model_hash"]:
        raise PreflineError(f"adapter {name!r}: base model {adapter['base_model']} no longer hashes as recorded")
    pairs = load_pairs(dataset)

    out = Path(adapter["path"])
    checkpoint = last_checkpoint(out / "checkpoints")
    step = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0
    args = trl_config(spec, config, out / "checkpoints")
    main = _main_process(args)
    baseline = None
    if main:
        if checkpoint is None:
            shutil.rmtree(out, ignore_errors=True)
        ledger.forget_steps_after(adapter["id"], step if checkpoint else -1)
        ledger.update_adapter(adapter["id"], status="running", finished_at=None)
    if checkpoint is not None and config.probe_every:
        baseline = next((p.metrics for p in ledger.probes(adapter["id"]) if p.step == 0), None)
    run = _Run(spec, config, ledger, adapter["id"], main, out, model_ref, args, show_progress, resume_from=checkpoint, baseline=baseline)
    return run.train(pairs, name)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder``: the trainer state is the last file a checkpoint gets."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if p.name.rsplit("-", 1)[1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)


def _check_weights(spec: Method, pairs, dataset: dict[str, Any]) -> None:  # noqa: ANN001
    if spec.weighted or WEIGHT_COLUMN not in pairs.column_names:
        return
    below = sum(1 for w in pairs[WEIGHT_COLUMN] if w < 1.0)
    if below:
        weighted = ", ".join(m.name for m in METHODS.values() if m.weighted)
        raise PreflineError(f"dataset {dataset['name']}@{dataset['version']}: {below} of {len(pairs)} pairs have a weight below 1, "
                            f"and method {spec.name!r} cannot weight pairs (it would count them fully); use one of: {weighted}")


def is_main_process() -> bool:
    """True outside ``accelerate launch``, and in its main process."""
    from accelerate.state import PartialState

    if not PartialState._shared_state:  # no process group set up: a single process
        return int(os.environ.get("RANK", "0")) == 0
    return PartialState().is_main_process


def _main_process(args) -> bool:  # noqa: ANN001
    """Whether this is the main process; under ``accelerate launch`` it also waits for every process,
    so all of them have checked the request before the main one writes anything."""
    from accelerate import PartialState

    args.device  # noqa: B018  (the TRL config sets up the process group when first asked for its device)
    state = PartialState()
    state.wait_for_everyone()
    return state.is_main_process


class _Run:
    """One training run from loading to the ledger's final row, fresh or resumed."""

    def __init__(self, spec: Method, config: TrainConfig, ledger: Ledger, adapter_id: int | None, main: bool, out: Path,
                 model_ref, args, show_progress: bool, resume_from: Path | None = None, baseline: dict | None = None,  # noqa: ANN001
                 notes: list[str] = ()):
        self.spec, self.config, self.ledger, self.adapter_id, self.main, self.out = spec, config, ledger, adapter_id, main, out
        self.model_ref, self.args, self.show_progress = model_ref, args, show_progress
        self.resume_from, self.baseline, self.notes = resume_from, baseline, list(notes)

    def train(self, pairs, name: str) -> dict[str, Any]:  # noqa: ANN001
        from accelerate import PartialState
        from peft import LoraConfig
        from transformers import set_seed

        spec, config, ledger = self.spec, self.config, self.ledger
        recorder = StepRecorder(ledger, self.adapter_id if self.main else None, self.show_progress)
        for note in self.notes:
            recorder.notify(note)
        try:
            keep = PAIR_COLUMNS + ((WEIGHT_COLUMN,) if spec.weighted else ())
            pairs = pairs.remove_columns([c for c in pairs.column_names if c not in keep])
            rows = spec.prepare(pairs, config)
            set_seed(config.seed)  # before loading: a reward model's score head starts random
            model = spec.load(self.model_ref) if spec.load else load_model(self.model_ref)
            tokenizer = load_tokenizer(self.model_ref, padding_side="right")
            peft_config = LoraConfig(
                r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                target_modules=config.target_modules, task_type=spec.lora_task,
            ) if config.finetune == "lora" else None  # full: TRL trains every weight (and loads its own reference)
            callbacks: list[TrainerCallback] = [recorder]
            if config.release_memory:
                callbacks.append(ReleaseMemory())
            probe = None
            if config.probe_every:
                adapter_id = self.adapter_id
                probe = DriftProbe(config, load_tokenizer(self.model_ref, padding_side="left"),
                                   record=lambda step, metrics, outputs: ledger.add_probe(adapter_id, step, metrics, outputs),
                                   notify=recorder.notify, baseline=self.baseline)
                callbacks.append(probe)
            with cpu_logprob_tiles(self.args.use_cpu):  # the reference pass runs while the trainer is built
                trainer = spec.trainer_class()(
                    model=model, args=self.args, train_dataset=rows,
                    processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
                )
                # disable_tqdm makes transformers print every log dict; the recorder reports instead.
                trainer.remove_callback(PrinterCallback)
                result = trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
            trainer.save_model(str(self.out))  # writes on the main process only
            if self.main:
                shutil.rmtree(self.out / "checkpoints", ignore_errors=True)
                metrics = summarize(trainer.state.log_history, result.metrics, n_pairs=len(pairs), n_rows=len(rows))
                metrics["warnings"] = recorder.warnings
                if probe is not None and probe.stopped:
                    metrics["stopped_early"] = probe.stopped
                    metrics["warnings"].append({"code": "drift-limit", "step": probe.stopped["step"], "message": probe.stopped["reason"]})
                if self.notes:
                    metrics["notes"] = self.notes
                if self.resume_from is not None:
                    metrics["resumed_from_step"] = int(self.resume_from.name.rsplit("-", 1)[1])
                ledger.update_adapter(self.adapter_id, status="done", adapter_hash=folder_hash(self.out), metrics=metrics, finished_at=utcnow())
        except BaseException:
            if self.main:
                ledger.update_adapter(self.adapter_id, status="failed", finished_at=utcnow())
            raise
        PartialState().wait_for_everyone()  # the other processes read the row the main one just wrote
        return ledger.get_adapter(name)


CHECKPOINTING_FROM_BYTES = 2 * 1024**3
# Activations kept for the backward pass, in bytes per token, per layer, per unit of the hidden size,
# measured with bf16 autocast and LoRA on every linear layer: DPO on SmolLM2-135M (30 layers, hidden
# 576), 8 sequences of 384 tokens per step, peaked 2.6 GB higher without checkpointing than with it
# (docs/benchmarks.md, training memory): 2.6e9 / (8 * 384 * 30 * 576) = about 48.
ACTIVATION_BYTES = 48
CHECKPOINTING_FROM_ACTIVATIONS = int(1.5 * 1024**3)
CHARS_PER_TOKEN = 3  # fewer than English's ~4: a pair's length in tokens is over- rather than under-estimated


def longest_pair_tokens(pairs, max_length: int) -> int:  # noqa: ANN001
    """An upper estimate of the longest row the trainer will see, in tokens: the prompt plus the longer
    response of the longest pair, from its characters, plus 32 for the chat template; at most ``max_length``."""
    def chars(value) -> int:  # noqa: ANN001
        return len(value) if isinstance(value, str) else sum(len(m.get("content") or "") for m in value)

    columns = [c for c in ("prompt", "chosen", "rejected", "completion") if c in pairs.column_names]
    table = pairs.select_columns(columns)
    longest = 0
    for row in table.iter(batch_size=1000):
        for i in range(len(row[columns[0]])):
            prompt = chars(row["prompt"][i]) if "prompt" in row else 0
            longest = max(longest, prompt + max(chars(row[c][i]) for c in columns if c != "prompt"))
    return min(max_length, longest // CHARS_PER_TOKEN + 32)


def activation_bytes(model_dir: Path, config: TrainConfig, tokens: int) -> int:
    """Estimated activations of one step: ``batch_size`` pairs (two sequences each) of ``tokens`` tokens."""
    import json

    model_config = json.loads((model_dir / "config.json").read_text())
    model_config = model_config.get("text_config", model_config)
    layers, hidden = model_config.get("num_hidden_layers", 0), model_config.get("hidden_size", 0)
    return 2 * config.batch_size * tokens * layers * hidden * ACTIVATION_BYTES


def needs_checkpointing(model_dir: Path, config: TrainConfig | None = None, tokens: int = 0) -> bool:
    """Gradient checkpointing, decided by memory: on when the weight files take 2 GB or more, or when a
    step's activations (``tokens`` per row, see :func:`activation_bytes`) would take 1.5 GiB or more.

    It trades a second forward pass for activation memory. With LoRA on a small model and short pairs
    the activations are small and the recomputation is pure cost (docs/benchmarks.md, training
    throughput); from about 1B parameters (bf16), or with long rows (DPO on multi-turn transcripts at
    ``max_length`` 384 peaked at 4.9 GB without it, 3.2 GB with it over 6 steps), the memory matters more.
    """
    weights = [f for pattern in ("*.safetensors", "*.bin") for f in model_dir.glob(pattern)]
    if sum(f.stat().st_size for f in weights) >= CHECKPOINTING_FROM_BYTES:
        return True
    return config is not None and activation_bytes(model_dir, config, tokens) >= CHECKPOINTING_FROM_ACTIVATIONS


def precompute_ref_pays(spec: Method, config: TrainConfig, n_pairs: int) -> bool:
    """Whether precomputing the reference log-probs is the faster way for this run (``precompute_ref_log_probs`` unset).

    Precomputing is one no-grad pass over every pair before training; without it each step runs the same
    reference forward pass on its own batch. So it costs no more as soon as the run trains on every pair at least
    once, and then it also saves the reference model's autocast and adapter switching in every step
    (docs/benchmarks.md, training throughput). For the DPO family only: kto's rows are not measured.
    """
    if not spec.weighted or n_pairs == 0:
        return False
    if config.max_steps > 0:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        trained = config.max_steps * config.batch_size * config.grad_accum * world
    else:
        trained = config.epochs * n_pairs
    return trained >= n_pairs


def trl_config(spec: Method, config: TrainConfig, output_dir: Path):
    """The method's TRL config object: prefline's shared settings plus the method's own arguments."""
    import torch

    return spec.config_class()(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float < 1 is a share of all steps
        max_length=config.max_length,
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_total_limit=config.save_total_limit,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        **spec.trl_args(config),
    )


def summarize(log_history: list[dict[str, Any]], final: dict[str, Any], n_pairs: int, n_rows: int) -> dict[str, Any]:
    """The headline numbers of a run: first and last step metrics, runtime and throughput.

    ``n_rows`` is what the trainer saw: the pairs, or for kto two labelled rows per pair.
    """
    steps = [entry for entry in log_history if "loss" in entry]
    keep = ("loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
            "nll_loss", "kl", "accuracy", "margin", "mean_token_accuracy")
    summary: dict[str, Any] = {
        "steps": steps[-1]["step"] if steps else 0,
        "pairs": n_pairs,
        "runtime_s": round(float(final.get("train_runtime", 0.0)), 2),
        "pairs_per_s": round(float(final.get("train_samples_per_second", 0.0)) * n_pairs / max(n_rows, 1), 4),
    }
    if steps:
        summary["first"] = {k: steps[0][k] for k in keep if k in steps[0]}
        summary["last"] = {k: steps[-1][k] for k in keep if k in steps[-1]}
    return summary


class StepRecorder(TrainerCallback):
    """Writes each logged step to the ledger, drives a rich progress bar, and reports traps.

    After each logged step the trap checks (``prefline.train.traps``) run on the history so far;
    a new trap is printed once, with its one-line explanation, and stored with the adapter at
    once (``metrics["warnings"]``), so a run that dies keeps its warnings.
    """

    def __init__(self, ledger: Ledger, adapter_id: int | None, show_progress: bool):
        self.ledger, self.adapter_id, self.show_progress = ledger, adapter_id, show_progress
        self.progress = self.task = None
        self._last = (time.perf_counter(), 0.0)
        self.warnings: list[dict[str, Any]] = []

    def notify(self, message: str) -> None:
        """A one-line warning on the terminal (above the progress bar when there is one)."""
        if self.adapter_id is None:  # not the main process
            return
        from rich.console import Console

        console = self.progress.console if self.progress is not None else Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(f"warning: {message}", markup=False)

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.show_progress and state.is_world_process_zero:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            # standard error, like every warning: standard output holds the result (`train --json | jq .`)
            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), console=Console(stderr=True))
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, info="")

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now, tokens = time.perf_counter(), float(logs.get("num_tokens", 0.0))
        metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        elapsed = now - self._last[0]
        if tokens and elapsed > 0:
            metrics["tokens_per_s"] = (tokens - self._last[1]) / elapsed
        self._last = (now, tokens)
        self.ledger.add_train_step(self.adapter_id, state.global_step, metrics)
        if self.progress is not None:
            info = f"loss {metrics['loss']:.3f}"
            if "rewards/margins" in metrics:
                info += f"  margin {metrics['rewards/margins']:+.3f}"
            self.progress.update(self.task, info=info)
        self._check_traps(state)

    def _check_traps(self, state) -> None:  # noqa: ANN001
        seen = {w["code"] for w in self.warnings}
        new = [trap for trap in find_traps(state.log_history, state.max_steps) if trap.code not in seen]
        for trap in new:
            self.notify(f"step {trap.step}: {trap.message}")
            self.warnings.append(trap.as_dict())
        if new:
            self.ledger.update_adapter(self.adapter_id, metrics={"warnings": self.warnings})

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


