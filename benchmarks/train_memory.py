"""Training memory: peak resident memory of DPO with LoRA on long multi-turn HH-RLHF-style transcripts.

The script writes Anthropic HH-RLHF-style pairs (``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...",
"rejected": ...}``, 3 to 6 human turns, answers of 40 to 140 words, chosen and rejected sharing every
turn but the last answer; nearly every pair is longer than ``max_length``, so truncation is exercised),
ingests them with ``prefline data ingest --format hh-rlhf``, then trains ``dpo`` (batch 4,
``max_length`` 384, seed 0, every other setting prefline's default) once per configuration, each in a
fresh process, and reports that process's peak RSS and CPU seconds (``os.wait4``), its wall time and its
per-step losses, so configurations can be checked for the same loss curve; and per step the CPU seconds,
the resident memory at the step's end and the peak so far, so growth with the steps would show. The
dataset holds ``BENCH_STEPS`` x 4 pairs, so compare only runs with the same ``BENCH_STEPS``.
Configurations are named on the command line (all of them when none is); the allocator ones preload
jemalloc or tcmalloc from Debian's packages (``libjemalloc2``, ``libtcmalloc-minimal4``).

    .venv/bin/python benchmarks/train_memory.py                              # every configuration, 12 steps
    BENCH_STEPS=6 .venv/bin/python benchmarks/train_memory.py default "TRL's LM-head tiles (4,096 tokens)"
"""

from __future__ import annotations

import json
import os
import random
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
    """One training run in this process (the parent measures its peak RSS); prints its losses as JSON,
    with the process's CPU seconds and resident memory at the end of every step."""
    import prefline.train.run as run
    from prefline.train import memory
    from prefline.config import TrainConfig
    from prefline.ledger import Ledger

    trace: list[tuple[float, float, float]] = []  # per step: CPU seconds of the process so far, resident MB, peak MB so far

    class Traced(run.StepRecorder):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            trace.append((time.process_time(), rss_mb(), peak_mb()))
            return super().on_train_begin(args, state, control, **kwargs)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            trace.append((time.process_time(), rss_mb(), peak_mb()))
            return super().on_step_end(args, state, control, **kwargs)

    run.StepRecorder = Traced  # callbacks run in order: the recorder first, so the RSS is taken before any trim
    settings = json.loads(settings)
    if "tile_tokens" in settings:  # not a TrainConfig field: the module constant prefline's run reads
        memory.CPU_LOGPROB_TOKENS = settings.pop("tile_tokens")
    ledger = Ledger(f"sqlite:///{home}/ledger.db")
    config = TrainConfig(batch_size=4, max_length=384, max_steps=STEPS, seed=0, **settings)
    adapter = run.train("dpo", "hh", name, config, ledger, show_progress=False)
    losses = [s["metrics"]["loss"] for s in ledger.train_steps(adapter["id"])]
    cpu = [b[0] - a[0] for a, b in zip(trace, trace[1:])]
    print(json.dumps({"losses": losses, "runtime_s": adapter["metrics"]["runtime_s"], "step_cpu_s": cpu,
                      "step_rss_mb": [r for _, r, _ in trace[1:]], "start_peak_mb": trace[0][2],
                      "step_peak_mb": [p for _, _, p in trace[1:]]}))


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run ``argv``; its wall seconds, its own CPU seconds and peak RSS in MB (``wait4``), its stdout."""
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(argv)} failed:\n{err.read()[-3000:]}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
NO_TRIM = {"release_memory": False}

# label -> (TrainConfig settings, extra environment). glibc reads its MALLOC_*_ variables at process start.
VARIANTS: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "TRL's LM-head tiles (4,096 tokens), no trimming": ({"tile_tokens": 4096, **NO_TRIM}, {}),
    "TRL's LM-head tiles (4,096 tokens)": ({"tile_tokens": 4096}, {}),
    "LM-head tiles of 1,024 tokens": ({"tile_tokens": 1024}, {}),
    "no trimming": (NO_TRIM, {}),
    "no trimming, mmap threshold 1 MiB": (NO_TRIM, {"MALLOC_MMAP_THRESHOLD_": str(2**20)}),
    "no trimming, jemalloc": (NO_TRIM, {"LD_PRELOAD": JEMALLOC}),
    "no trimming, tcmalloc": (NO_TRIM, {"LD_PRELOAD": TCMALLOC}),
    "gradient checkpointing off": ({"gradient_checkpointing": False}, {}),
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
        wall, cpu, peak, out = measure([sys.executable, __file__, "--child", str(home), f"mem-{i}", json.dumps(settings)],
                                       {**env, **extra_env})
        result = json.loads(out.strip().splitlines()[-1])
        steps_cpu = result["step_cpu_s"][1:]  # the first step also warms up
        print(f"  {label}: peak RSS {peak:,.0f} MB, {wall:.1f} s wall, {cpu:.1f} CPU s "
              f"({sum(steps_cpu) / len(steps_cpu):.1f} CPU s per step after the first), load {load:.1f}; losses "
              f"{' '.join(f'{x:.4f}' for x in result['losses'])}; RSS after each step (MB) "
              f"{' '.join(f'{x:,.0f}' for x in result['step_rss_mb'])}; peak (MB) before the first step "
              f"{result['start_peak_mb']:,.0f}, after each step {' '.join(f'{x:,.0f}' for x in result['step_peak_mb'])}",
              flush=True)

if __name__ == "__main__":
    main()
