"""Training throughput: a plain TRL DPOTrainer script vs `prefline.train.run.train("dpo", ...)`.

Same process, same data (the 61 demo pairs, ingested into a temporary ledger), same seed, same LoRA
(r 8, alpha 16, all linear layers), same number of steps (8 steps of 4 pairs) on SmolLM2-135M-Instruct.
The plain script keeps TRL's defaults for everything else (bf16 autocast, gradient checkpointing,
max_length 1024, the reference log-probs computed every step). prefline runs in its default
configuration, then in the variants that can be faster on CPU.

Three throughputs per run, in pairs per second: end to end (32 trained pairs over the wall time of
the whole call: model loading, tokenization, precomputing reference log-probs, training, saving), of
the training loop alone (the trainer's ``train_runtime``, which leaves out what precomputing costs),
and per CPU-second of the process (its user + system time over the whole call). On a machine shared
with other jobs the wall-clock numbers fall with the load while the CPU time stays close to the
work done, so the ratios are given both ways, and the fastest configuration is chosen per
CPU-second. The 1-minute load average when each run started is printed with it. With
``BENCH_ROUNDS=2`` every configuration runs twice (the second round in reverse order) and keeps
its faster round.

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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
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

    from prefline.data.ingest import ingest
    from prefline.data.store import load_pairs
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
        # the defaults on a 135M model: bf16 autocast, no gradient checkpointing (it is on from 2 GB of weights)
        "prefline (defaults: bf16 autocast, no grad. checkpointing)": {},
        "prefline, grad. checkpointing on (TRL's default)": {"gradient_checkpointing": True},
        "prefline, fp32": {"bf16": False},
        "prefline, precompute_ref_log_probs": {"precompute_ref_log_probs": True},
    }
    names = iter(range(1000))  # every prefline run registers a new adapter
    for label, settings in variants.items():
        runs.append((label, lambda settings=settings: prefline_run(model_path, ledger, f"bench-{next(names)}", **settings)))

    print(f"SmolLM2-135M-Instruct, {STEPS} steps x {BATCH} pairs, seed {SEED}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {ROUNDS} rounds (best kept)")
    best: dict[str, tuple[float, float, float]] = {}
    for round_ in range(ROUNDS):
        for label, run in (runs if round_ % 2 == 0 else runs[::-1]):
            load = os.getloadavg()[0]  # other processes on the machine, when the run starts
            cpu = time.process_time()
            runtime, wall = run()
            cpu = time.process_time() - cpu
            print(f"  round {round_ + 1}: {label}: {PAIRS / wall:.3f} pairs/s end to end, {PAIRS / runtime:.3f} in the loop, "
                  f"{PAIRS / cpu:.3f} per CPU-second, load {load:.1f}", flush=True)
            if label not in best or wall < best[label][1]:
                best[label] = (runtime, wall, cpu, load)
    labels = [label for label, _ in runs]
    base, base_cpu = PAIRS / best[labels[0]][1], PAIRS / best[labels[0]][2]
    print("\n| run | pairs/s end to end | ratio | pairs/s in the loop | pairs per CPU-second | ratio | load |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for label in labels:
        runtime, wall, cpu, load = best[label]
        print(f"| {label} | {PAIRS / wall:.3f} | {PAIRS / wall / base:.2f} | {PAIRS / runtime:.3f} | "
              f"{PAIRS / cpu:.3f} | {PAIRS / cpu / base_cpu:.2f} | {load:.1f} |")
    fastest = max(labels[1:], key=lambda label: PAIRS / best[label][2])
    print(f"\nprefline default / plain TRL: {PAIRS / best[labels[1]][1] / base:.2f} end to end, "
          f"{PAIRS / best[labels[1]][2] / base_cpu:.2f} per CPU-second (target >= 1.0)")
    print(f"fastest prefline configuration (per CPU-second): {fastest}: {PAIRS / best[fastest][2] / base_cpu:.2f}x plain TRL")


if __name__ == "__main__":
    main()
