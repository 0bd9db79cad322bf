"""A training run, top to bottom: check, register, load, train, save, record lineage.

Everything that can be wrong with the request (unknown method or dataset, a taken
adapter name, bad hyper-parameters) is checked before any model is loaded. The adapter
row is written first with status ``running`` and completed at the end, and step metrics
go to the ledger as they happen, so a run is visible while it trains. What differs
between methods (trainer, data, model head, loss arguments) comes from the method table.
"""

from __future__ import annotations

import platform
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from prefline.config import TrainConfig
from prefline.data.ingest import check_name, load_pairs
from prefline.errors import PreflineError
from prefline.hashing import folder_hash
from prefline.home import home_dir
from prefline.ledger import Ledger
from prefline.models import load_model, load_tokenizer, resolve_model
from prefline.train.methods import Method, get_method

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def software_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("prefline", "torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def train(
    method: str,
    dataset_ref: str,
    name: str,
    config: TrainConfig,
    ledger: Ledger,
    model_spec: str | None = None,
    surface: str | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train adapter ``name`` with ``method`` on a dataset version; return its ledger row."""
    spec = get_method(method)
    config = spec.resolve(config)
    check_name(name, "adapter")
    existing = ledger.find_adapter(name)
    if existing is not None:
        raise PreflineError(f"adapter {name!r} already exists in the ledger (status {existing['status']}); choose another --name")
    dataset = ledger.get_dataset(dataset_ref)
    model_ref = resolve_model(model_spec)

    from peft import LoraConfig
    from transformers import set_seed

    out = home_dir("adapters") / name
    shutil.rmtree(out, ignore_errors=True)  # only a failed run's leftovers: the name is unused in the ledger
    adapter_id = ledger.add_adapter(
        name=name, method=method, status="running",
        base_model=model_ref.spec, base_model_hash=model_ref.hash,
        dataset_id=dataset["id"], dataset_hash=dataset["content_hash"],
        config=spec.settings(config), seed=config.seed,
        surface=surface, path=str(out), versions=software_versions(),
    )
    try:
        pairs = load_pairs(dataset)
        pairs = pairs.remove_columns([c for c in pairs.column_names if c not in PAIR_COLUMNS])
        rows = spec.prepare(pairs, config)
        set_seed(config.seed)  # before loading: a reward model's score head starts random
        model = spec.load(model_ref) if spec.load else load_model(model_ref)
        tokenizer = load_tokenizer(model_ref, padding_side="right")
        peft_config = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=config.target_modules, task_type=spec.lora_task,
        )
        recorder = StepRecorder(ledger, adapter_id, show_progress)
        trainer = spec.trainer_class()(
            model=model, args=trl_config(spec, config, out / "checkpoints"), train_dataset=rows,
            processing_class=tokenizer, peft_config=peft_config, callbacks=[recorder],
        )
        # disable_tqdm makes transformers print every log dict; the recorder reports instead.
        trainer.remove_callback(PrinterCallback)
        result = trainer.train()
        trainer.save_model(str(out))
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        metrics = summarize(trainer.state.log_history, result.metrics, n_pairs=len(pairs), n_rows=len(rows))
        ledger.update_adapter(adapter_id, status="done", adapter_hash=folder_hash(out), metrics=metrics, finished_at=_utcnow())
    except BaseException:
        ledger.update_adapter(adapter_id, status="failed", finished_at=_utcnow())
        raise
    return ledger.get_adapter(name)


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
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        **spec.trl_args(config),
    )


def _utcnow():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(tzinfo=None)


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
    """Writes each logged step to the ledger and drives a rich progress bar."""

    def __init__(self, ledger: Ledger, adapter_id: int, show_progress: bool):
        self.ledger, self.adapter_id, self.show_progress = ledger, adapter_id, show_progress
        self.progress = self.task = None
        self._last = (time.perf_counter(), 0.0)

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.show_progress and state.is_world_process_zero:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, info="")

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

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def adapter_path(adapter: dict[str, Any]) -> Path:
    path = Path(adapter["path"])
    if not (path / "adapter_config.json").is_file():
        raise PreflineError(f"adapter {adapter['name']!r}: its folder {path} has no adapter_config.json")
    return path
