"""Training memory: peak resident memory of DPO with LoRA on long multi-turn HH-RLHF-style transcripts.

The script writes Anthropic HH-RLHF-style pairs (``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...",
"rejected": ...}``, 3 to 6 human turns, answers of 40 to 140 words, chosen and rejected sharing every
turn but the last answer; nearly every pair is longer than ``max_length``, so truncation is exercised),
ingests them with ``prefline data ingest --format hh-rlhf``, then trains ``dpo`` (batch 4,
``max_length`` 384, seed 0, every other setting prefline's default) once per configuration, each in a
fresh process, and reports that process's peak RSS (``os.wait4``), its wall time and its per-step
losses, so configurations can be checked for the same loss curve. Peak RSS grows with the number of
steps (the allocator keeps freed memory), so compare only runs with the same ``BENCH_STEPS``.

    .venv/bin/python benchmarks/train_memory.py                              # every configuration, 12 steps
    BENCH_STEPS=3 .venv/bin/python benchmarks/train_memory.py default "gradient checkpointing off"
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = int(os.environ.get("BENCH_STEPS", "12"))
PAIRS = 4 * STEPS
WORDS = ("the a model answer question time people system data result water city plan because however "
         "should would could might explain example reason important different change simple history "
         "science energy market policy health school family river mountain garden kitchen letter music "
         "travel weather budget project meeting report design account service network language number "
         "careful quickly usually often never always before after during within between around across").split()


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    return " ".join(words).capitalize() + "."


def turn(rng: random.Random, lo: int, hi: int) -> str:
    n, out = rng.randint(lo, hi), []
    while sum(len(s.split()) for s in out) < n:
        out.append(sentence(rng, 6, 18))
    return " ".join(out)


def write_pairs(path: Path, n: int, seed: int = 0) -> None:
    """``n`` multi-turn HH-RLHF transcripts: a shared conversation, then a chosen and a rejected last answer."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(n):
            history = ""
            for _ in range(rng.randint(2, 5)):
                history += f"\n\nHuman: {turn(rng, 20, 60)}\n\nAssistant: {turn(rng, 40, 140)}"
            history += f"\n\nHuman: {turn(rng, 20, 60)}\n\nAssistant:"
            chosen, rejected = turn(rng, 40, 140), turn(rng, 20, 140)
            f.write(json.dumps({"chosen": f"{history} {chosen}", "rejected": f"{history} {rejected}"}) + "\n")


def child(home: str, name: str, settings: str) -> None:
    """One training run in this process (the parent measures its peak RSS); prints its losses as JSON."""
    from prefline.config import TrainConfig
    from prefline.ledger import Ledger
    from prefline.train.run import train

    ledger = Ledger(f"sqlite:///{home}/ledger.db")
    config = TrainConfig(batch_size=4, max_length=384, max_steps=STEPS, seed=0, **json.loads(settings))
    adapter = train("dpo", "hh", name, config, ledger, show_progress=False)
    losses = [s["metrics"]["loss"] for s in ledger.train_steps(adapter["id"])]
    print(json.dumps({"losses": losses, "runtime_s": adapter["metrics"]["runtime_s"]}))


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv``; its wall seconds, its own peak RSS in MB (``wait4``), its stdout."""
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(argv)} failed:\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


# label -> (TrainConfig settings, extra environment)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "gradient checkpointing on": ({"gradient_checkpointing": True}, {}),
    "gradient checkpointing off": ({"gradient_checkpointing": False}, {}),
    "precompute_ref_log_probs": ({"precompute_ref_log_probs": True}, {}),
}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(*sys.argv[2:5])
    only = sys.argv[1:]
    home = Path(tempfile.mkdtemp(prefix="prefline-mem-"))
    model_home = os.environ.get("PREFLINE_HOME", str(Path.home() / ".prefline"))
    (home / "models").symlink_to(Path(model_home) / "models")  # reuse the dequantized model
    env = {**os.environ, "PREFLINE_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    data = home / "hh.jsonl"
    write_pairs(data, PAIRS)
    cli = str(Path(sys.executable).with_name("prefline"))
    measure([cli, "data", "ingest", str(data), "--name", "hh", "--format", "hh-rlhf"], env)
    print(f"DPO + LoRA, SmolLM2-135M-Instruct, {STEPS} steps x batch 4, max_length 384, {PAIRS} multi-turn HH-RLHF "
          f"pairs; each run in a fresh process, peak RSS of that process")
    for i, (label, (settings, extra_env)) in enumerate(VARIANTS.items()):
        if only and label not in only:
            continue
        load = os.getloadavg()[0]
        wall, peak, out = measure([sys.executable, __file__, "--child", str(home), f"mem-{i}", json.dumps(settings)],
                                  {**env, **extra_env})
        losses = json.loads(out.strip().splitlines()[-1])["losses"]
        print(f"  {label}: peak RSS {peak:,.0f} MB, {wall:.1f} s, load {load:.1f}; losses "
              f"{' '.join(f'{x:.4f}' for x in losses)}", flush=True)


if __name__ == "__main__":
    main()
