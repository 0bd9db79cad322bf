"""Training throughput: a plain TRL DPOTrainer script vs `prefline.train.run.train("dpo", ...)`.

Same process, same data (the 61 demo pairs, ingested into a temporary ledger), same seed, same LoRA
(r 8, alpha 16, all linear layers), same number of steps (8 steps of 4 pairs) on SmolLM2-135M-Instruct.
The plain script keeps TRL's defaults for everything else (bf16 autocast, gradient checkpointing,
max_length 1024, the reference log-probs computed every step). prefline runs in its default
configuration, then in the variants that can be faster on CPU. Throughput is pairs per second of
training (the trainer's ``train_runtime``: model loading and tokenization left out); the wall time
column includes them. Prints a table, each run's ratio to the plain script (target >= 1.0), and the
fastest configuration.

    .venv/bin/python benchmarks/train_throughput.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFLINE_HOME", str(Path.home() / ".prefline"))  # reuse the dequantized model
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STEPS, BATCH, SEED = 8, 4, 0
PAIRS = STEPS * BATCH


def plain_trl(model_path: str, pairs) -> tuple[float, float]:  # noqa: ANN001
    """What one writes with TRL alone: its DPOConfig defaults, LoRA, the same steps and batch."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, per_device_train_batch_size=BATCH, max_steps=STEPS, seed=SEED,
                         learning_rate=5e-4, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
                         use_cpu=not torch.cuda.is_available())
        trainer = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32), args=args, train_dataset=pairs,
            processing_class=AutoTokenizer.from_pretrained(model_path),
            peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
        runtime = trainer.train().metrics["train_runtime"]
    return runtime, time.perf_counter() - began


def prefline_run(model_path: str, ledger, name: str, **settings) -> tuple[float, float]:  # noqa: ANN001
    from prefline.config import TrainConfig
    from prefline.train.run import train

    began = time.perf_counter()
    config = TrainConfig(max_steps=STEPS, batch_size=BATCH, seed=SEED, **settings)
    adapter = train("dpo", "demo", name, config, ledger, model_spec=model_path, show_progress=False)
    return adapter["metrics"]["runtime_s"], time.perf_counter() - began


def main() -> None:
    import datasets
    import torch
    import transformers

    from prefline.data.ingest import ingest, load_pairs
    from prefline.demo import demo_pairs_path
    from prefline.ledger import Ledger
    from prefline.models import resolve_model

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    model_path = resolve_model().path  # the dequantized embedded model, in the real PREFLINE_HOME
    home = tempfile.mkdtemp(prefix="prefline-bench-")
    os.environ["PREFLINE_HOME"] = home  # adapters and the ledger go to a throwaway home
    ledger = Ledger(f"sqlite:///{home}/ledger.db")
    dataset = ledger.get_dataset(str(ingest(demo_pairs_path(), "demo", ledger).dataset_id))
    pairs = load_pairs(dataset).select_columns(["prompt", "chosen", "rejected"])

    runs = [("plain TRL DPOTrainer (TRL defaults)", lambda: plain_trl(model_path, pairs))]
    variants = {
        "prefline (defaults: bf16, grad. checkpointing)": {},
        "prefline + precompute_ref_log_probs": {"precompute_ref_log_probs": True},
        "prefline + precompute, no grad. checkpointing": {"precompute_ref_log_probs": True, "gradient_checkpointing": False},
        "prefline + precompute, no checkpointing, fp32": {"precompute_ref_log_probs": True, "gradient_checkpointing": False, "bf16": False},
    }
    for i, (label, settings) in enumerate(variants.items()):
        runs.append((label, lambda i=i, settings=settings: prefline_run(model_path, ledger, f"bench-{i}", **settings)))

    print(f"SmolLM2-135M-Instruct, {STEPS} steps x {BATCH} pairs, seed {SEED}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    results = []
    for label, run in runs:
        runtime, wall = run()
        results.append((label, PAIRS / runtime, wall))
        print(f"  done: {label}: {PAIRS / runtime:.3f} pairs/s", flush=True)
    base = results[0][1]
    print(f"\n| run | pairs/s | ratio to plain TRL | wall s (incl. loading) |\n|---|---|---|---|")
    for label, rate, wall in results:
        print(f"| {label} | {rate:.3f} | {rate / base:.2f} | {wall:.1f} |")
    best = max(results[1:], key=lambda r: r[1])
    print(f"\nprefline default / plain TRL: {results[1][1] / base:.2f} (target >= 1.0)")
    print(f"fastest: {best[0]}: {best[1]:.3f} pairs/s, {best[1] / base:.2f}x plain TRL")


if __name__ == "__main__":
    main()
