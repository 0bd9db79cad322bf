"""Training throughput: a plain TRL DPOTrainer script vs `prefline train dpo`, one epoch over 256 pairs.

Same data (256 single-turn pairs the script writes: prompts of 8 to 40 words, answers of 10 to 150 words,
so lengths vary as in real preference data, every pair under both arms' ``max_length``), same seed, same
LoRA (r 8, alpha 16, every linear layer), same batch (4 pairs), same learning rate, one epoch (64 steps),
on SmolLM2-135M-Instruct. The plain script keeps TRL's defaults for everything else (bf16 autocast,
gradient checkpointing, max_length 1024, random batches, the reference log-probs computed in every step);
prefline runs with its defaults. Each arm trains in a fresh process; the parent measures its wall time, its
CPU time (user + system, ``os.wait4``) and its peak RSS. With ``BENCH_ROUNDS=N`` the arms run N times,
the order reversed every other round; each figure is given as the median with the spread (min-max).
``BENCH_PARALLEL=1`` starts every arm of a round at once (on a machine shared with other jobs, so that
both arms see the same load; compare them per CPU-second then).

The final loss is the mean of the last 16 steps' losses (the batches differ between arms, so single steps
do not compare), with its standard error.

The training loop's share of the machine's bf16 matmul ceiling: the peak is measured first (the best of
square and model-shaped bf16 matmuls on this process's threads), and the loop's useful work is 3 x the
forward FLOPs of every real (non-padding) token the policy sees: 2 x the parameters of the decoder's linear
layers per token, plus the attention scores, plus the LM head at the response tokens (the only positions
TRL projects). The reference forward pass and the padding are not counted as useful work.

    .venv/bin/python benchmarks/train_throughput.py                       # one round, both arms
    BENCH_ROUNDS=2 .venv/bin/python benchmarks/train_throughput.py        # two rounds, interleaved
    BENCH_PAIRS=64 BENCH_ARMS="plain TRL;prefline;prefline, no precompute" .venv/bin/python benchmarks/train_throughput.py
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_memory import turn  # noqa: E402  (the same English-word text generator)

PAIRS = int(os.environ.get("BENCH_PAIRS", "256"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
PARALLEL = os.environ.get("BENCH_PARALLEL", "0") == "1"
BATCH, SEED, LR, LAST = 4, 0, 5e-4, 16
THREADS = 2

# label -> (prefline TrainConfig settings, or None for the plain TRL script; extra environment)
ARMS: dict[str, tuple[dict | None, dict]] = {
    "plain TRL": (None, {}),
    "prefline": ({}, {}),
    "prefline, no precompute": ({"precompute_ref_log_probs": False}, {}),
    "prefline, random batches": ({"group_by_length": False}, {}),
    "prefline, grad. checkpointing on": ({"gradient_checkpointing": True}, {}),
    "prefline, jemalloc": ({}, {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}),
    "prefline, tcmalloc": ({}, {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}),
}
CHOSEN = [a.strip() for a in os.environ.get("BENCH_ARMS", "plain TRL;prefline").split(";")]


def write_pairs(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(n):
            row = {"prompt": [{"role": "user", "content": turn(rng, 8, 40)}],
                   "chosen": [{"role": "assistant", "content": turn(rng, 15, 150)}],
                   "rejected": [{"role": "assistant", "content": turn(rng, 10, 150)}]}
            f.write(json.dumps(row) + "\n")


def plain_trl(model_path: str, pairs) -> dict:  # noqa: ANN001
    """What one writes with TRL alone: its DPOConfig defaults, LoRA, the same epoch, batch, seed and rate."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, per_device_train_batch_size=BATCH, num_train_epochs=1, seed=SEED,
                         learning_rate=LR, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
                         use_cpu=not torch.cuda.is_available())
        trainer = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32), args=args, train_dataset=pairs,
            processing_class=AutoTokenizer.from_pretrained(model_path),
            peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
        result = trainer.train()
        trainer.save_model(out)
    steps = [e for e in trainer.state.log_history if "loss" in e]
    return {"runtime": result.metrics["train_runtime"], "losses": [e["loss"] for e in steps], "tokens": steps[-1].get("num_tokens", 0)}


def prefline_run(ledger, model_path: str, name: str, settings: dict) -> dict:  # noqa: ANN001
    from prefline.config import TrainConfig
    from prefline.train.run import train

    config = TrainConfig(batch_size=BATCH, seed=SEED, learning_rate=LR, epochs=1, **settings)
    adapter = train("dpo", "bench", name, config, ledger, model_spec=model_path, show_progress=False)
    steps = ledger.train_steps(adapter["id"])
    return {"runtime": adapter["metrics"]["runtime_s"], "losses": [s["metrics"]["loss"] for s in steps],
            "tokens": steps[-1]["metrics"].get("num_tokens", 0),
            "settings": {k: adapter["config"].get(k) for k in ("precompute_ref_log_probs", "group_by_length", "gradient_checkpointing")}}


def child(home: str, model_path: str, label: str, name: str) -> None:
    import torch

    torch.set_num_threads(THREADS)
    from prefline.data.store import load_pairs
    from prefline.ledger import Ledger

    ledger = Ledger(f"sqlite:///{home}/ledger.db")
    settings = ARMS[label][0]
    began = time.perf_counter()
    if settings is None:
        pairs = load_pairs(ledger.get_dataset("bench")).select_columns(["prompt", "chosen", "rejected"])
        result = plain_trl(model_path, pairs)
    else:
        result = prefline_run(ledger, model_path, name, settings)
    result["wall_inside"] = time.perf_counter() - began
    print(json.dumps(result))


def measure(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, began: float) -> dict:
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"a training run failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def matmul_peak() -> tuple[float, float]:
    """The best bf16 matmul throughput of this process's threads: FLOP/s by wall time, and FLOP per CPU-second
    (which a loaded machine lowers less)."""
    import torch

    torch.set_num_threads(THREADS)
    best = best_cpu = 0.0
    for m, k, n in ((2048, 2048, 2048), (4096, 4096, 4096), (1536, 576, 1536), (1536, 1536, 576), (1536, 576, 576)):
        a, b = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)
        a @ b  # warm up
        reps = max(2, int(4e10 / (2 * m * k * n)))
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - began))
        best_cpu = max(best_cpu, 2 * m * k * n * reps / (time.process_time() - cpu))
    return best, best_cpu


def token_counts(model_path: str, pairs) -> tuple[int, int, float]:  # noqa: ANN001
    """Real tokens of every row the policy sees (prompt + chosen, prompt + rejected), their response tokens,
    and the mean row length, tokenized with the chat template as TRL does."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)

    def count(messages: list, **kwargs) -> int:
        return len(tok(tok.apply_chat_template(messages, tokenize=False, **kwargs), add_special_tokens=False)["input_ids"])

    real = response = 0
    lengths = []
    for row in pairs:
        prompt = count(row["prompt"], add_generation_prompt=True)
        for side in ("chosen", "rejected"):
            full = count(row["prompt"] + row[side])
            real, response = real + full, response + full - prompt
            lengths.append(full)
    return real, response, lengths


def padded_tokens(lengths: list[int]) -> dict[str, int]:
    """Tokens the model runs over one epoch, padding included, with random batches (TRL's default) and with
    transformers' length-grouped sampler (prefline's default), both seeded as the trainer seeds them: every
    row of a batch (its pairs' chosen and rejected rows) is padded to the batch's longest row."""
    import torch
    from torch.utils.data import RandomSampler
    from transformers.trainer_pt_utils import LengthGroupedSampler

    rows = [(lengths[2 * i], lengths[2 * i + 1]) for i in range(len(lengths) // 2)]

    def epoch(order: list[int]) -> int:
        batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
        return sum(2 * len(b) * max(max(rows[j]) for j in b) for b in batches)

    random_order = list(RandomSampler(range(len(rows)), generator=torch.Generator().manual_seed(SEED)))
    grouped = list(LengthGroupedSampler(BATCH, lengths=[max(r) for r in rows], generator=torch.Generator().manual_seed(SEED)))
    by_length = sorted(range(len(rows)), key=lambda j: max(rows[j]))  # prefline's reference pass
    return {"real": sum(lengths), "random batches": epoch(random_order), "length-grouped batches": epoch(grouped),
            "reference pass in length order": epoch(by_length)}


def forward_flops(model_path: str, real: int, response: int, mean_len: float) -> float:
    """Forward FLOPs over the epoch: the decoder's linear layers and attention at every real token, the LM
    head at the response tokens."""
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    h, inter, layers, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    head_dim = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * head_dim
    linear = h * h * 2 + h * kv * 2 + 3 * h * inter  # q, o; k, v; gate, up, down
    attention = 2 * mean_len * h  # QK^T and AV per token per layer, causal (half of 2 x 2 x len x h)
    return real * layers * 2 * (linear + attention) + response * 2 * h * vocab


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(*sys.argv[2:6])
    unknown = [a for a in CHOSEN if a not in ARMS]
    if unknown:
        sys.exit(f"BENCH_ARMS: unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    from prefline.data.ingest import ingest
    from prefline.data.store import load_pairs
    from prefline.ledger import Ledger
    from prefline.models import resolve_model

    model_path = resolve_model().path  # the dequantized embedded model, in the real PREFLINE_HOME
    home = Path(tempfile.mkdtemp(prefix="prefline-bench-"))
    data = home / "pairs.jsonl"
    write_pairs(data, PAIRS)
    ledger = Ledger(f"sqlite:///{home}/ledger.db")
    env = {**os.environ, "PREFLINE_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    os.environ["PREFLINE_HOME"] = str(home)
    dataset = ledger.get_dataset(str(ingest(data, "bench", ledger).dataset_id))
    pairs = load_pairs(dataset).select_columns(["prompt", "chosen", "rejected"])
    real, response, lengths = token_counts(model_path, pairs)
    mean_len = sum(lengths) / len(lengths)
    padded = padded_tokens(lengths)
    flops = 3 * forward_flops(model_path, real, response, mean_len)
    load = os.getloadavg()[0]
    peak, peak_cpu = matmul_peak()
    print(f"SmolLM2-135M-Instruct, DPO + LoRA, {PAIRS} pairs x 1 epoch, batch {BATCH}, seed {SEED}, {THREADS} threads per run, "
          f"{ROUNDS} round(s){', arms in parallel' if PARALLEL else ''}; {real:,} real tokens ({response:,} in responses), "
          f"mean row {mean_len:.0f} tokens; bf16 matmul peak {peak / 1e9:.1f} GFLOP/s, "
          f"{peak_cpu / 1e9:.1f} GFLOP per CPU-second (load {load:.1f})", flush=True)
    print("tokens the policy runs over per epoch, padding included: " + ", ".join(
        f"{k} {v:,} ({v / padded['real']:.2f}x real)" for k, v in padded.items() if k != "real"), flush=True)

    results: dict[str, list[dict]] = {label: [] for label in CHOSEN}
    names = iter(range(10_000))
    for round_ in range(ROUNDS):
        order = CHOSEN if round_ % 2 == 0 else CHOSEN[::-1]
        running = []
        for label in order:
            argv = [sys.executable, __file__, "--child", str(home), model_path, label, f"bench-{next(names)}"]
            started = (label, os.getloadavg()[0], time.perf_counter())
            proc = measure(argv, {**env, **ARMS[label][1]})
            running.append((started, proc))
            if not PARALLEL:
                running[-1] = (started, finish(proc, started[2]))
        for (label, load, began), proc in running:
            r = proc if isinstance(proc, dict) else finish(proc, began)
            r["load"] = load
            results[label].append(r)
            tail = r["losses"][-LAST:]
            print(f"  round {round_ + 1}: {label}: {r['wall']:.0f} s wall, {r['cpu']:.0f} CPU s, loop {r['runtime']:.0f} s, "
                  f"peak RSS {r['rss_mb']:,.0f} MB, load {load:.1f}, final loss {statistics.mean(tail):.4f}, "
                  f"tokens seen {int(r['tokens']):,}{', ' + json.dumps(r['settings']) if 'settings' in r else ''}", flush=True)

    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    def spread(label: str, key: str) -> str:
        values = [r[key] for r in results[label]]
        return f"{min(values):.0f}-{max(values):.0f}" if len(values) > 1 else "-"

    base = CHOSEN[0]
    print("\n| arm | wall s (median) | spread | pairs/s | ratio | CPU s | ratio per CPU-s | loop s | matmul share of loop | share per CPU-s | "
          "peak RSS MB | final loss (last 16 steps) | load |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for label in CHOSEN:
        tails = [x for r in results[label] for x in r["losses"][-LAST:]]
        loss = f"{statistics.mean(tails):.4f} ± {statistics.stdev(tails) / len(tails) ** 0.5:.4f}"
        share = flops / med(label, "runtime") / peak
        print(f"| {label} | {med(label, 'wall'):.0f} | {spread(label, 'wall')} | {PAIRS / med(label, 'wall'):.3f} | "
              f"{med(base, 'wall') / med(label, 'wall'):.2f} | {med(label, 'cpu'):.0f} | {med(base, 'cpu') / med(label, 'cpu'):.2f} | "
              f"{med(label, 'runtime'):.0f} | {share:.1%} | {flops / med(label, 'cpu') / peak_cpu:.1%} | {max(r['rss_mb'] for r in results[label]):,.0f} | {loss} | "
              f"{statistics.mean(r['load'] for r in results[label]):.1f} |")
    print(f"\nuseful work: 3 x {flops / 3 / 1e12:.2f} TFLOP forward = {flops / 1e12:.2f} TFLOP; "
          f"bf16 matmul peak {peak / 1e9:.1f} GFLOP/s on {THREADS} threads")


if __name__ == "__main__":
    main()
