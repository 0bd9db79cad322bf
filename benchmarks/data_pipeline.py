"""Data pipeline at scale: ingest + full quality report on synthetic pair sets of 10k, 100k and 1M pairs.

For each size it writes a synthetic JSONL of conversational pairs (cached under the work
folder), then runs, each in a fresh process so peak memory is per step:

1. ``prefline data ingest`` (the library call ``ingest``), which includes consensus: the
   synthetic file holds plain pairs, so by default each pair is its own group (``none``);
   ``--consensus majority`` times the combining path instead (every pair a one-vote group);
2. the full quality report without close calls (``data_report``: coverage, bias profile,
   trivial negatives, exact and near duplicates, contamination against the frozen ``smoke``
   suite, whose prompts a few synthetic pairs copy).

It prints seconds and peak resident memory (``resource.getrusage``: the step's process, and
the largest of its worker processes) for each, the seconds per 1k pairs, to see how time
grows with size, the machine's 1-minute load average when the step started, and the two
steps' total per size.

    .venv/bin/python benchmarks/data_pipeline.py                 # 10k, 100k, 1M
    .venv/bin/python benchmarks/data_pipeline.py --sizes 10000   # one size
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

TOPICS = ("python lists", "sql joins", "tax returns", "sourdough bread", "a job interview", "marathon training", "kubernetes pods",
          "the french revolution", "photosynthesis", "mortgage rates", "a cover letter", "regex groups", "houseplants",
          "a wedding toast", "git rebase", "vitamin d", "electric cars", "a birthday poem", "rust lifetimes", "the moon landing")
ASKS = ("How do I get started with {t}?", "Explain {t} to a beginner in a few sentences.", "What is the most common mistake with {t}?",
        "Give me three tips about {t}.", "Can you compare two approaches to {t} and say which is better?",
        "Write a short paragraph about {t} for a newsletter.", "Why does {t} matter, briefly?")
INTENTS, DIFFICULTY, RISK = ("factual", "howto", "coding", "advice", "creative"), ("easy", "medium", "hard"), ("none", "sensitive-benign", "harmful")
SURFACES, SOURCES = ("chat", "code", "voice"), ("raters-2026-09", "raters-2026-10", "judge-gpt", "thumbs")


def _vocab(rng: random.Random, n: int = 4000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def _sentence(rng: random.Random, vocab: list[str], words: int) -> str:
    return " ".join(rng.choices(vocab, k=words)).capitalize() + "."


def _answer(rng: random.Random, vocab: list[str], topic: str, words: int) -> str:
    parts, left = [], words
    while left > 0:
        k = min(left, rng.randint(8, 18))
        parts.append(_sentence(rng, vocab, k))
        left -= k
    return f"For {topic}, " + " ".join(parts)


def synthetic_row(i: int, rng: random.Random, vocab: list[str], suite_prompts: list[str]) -> dict:
    topic = TOPICS[i % len(TOPICS)]
    prompt = rng.choice(ASKS).format(t=topic) + " " + _sentence(rng, vocab, rng.randint(4, 14))
    if suite_prompts and i % 997 == 0:  # a few copies of evaluation prompts: contamination to find
        prompt = suite_prompts[i % len(suite_prompts)]
    chosen = _answer(rng, vocab, topic, rng.randint(25, 110))
    kind = rng.random()
    if kind < 0.05:
        rejected = "I'm sorry, but I can't help with that request."
    elif kind < 0.12:
        rejected = "It might possibly depend, and perhaps it could maybe vary. " + _answer(rng, vocab, topic, rng.randint(10, 40))
    elif kind < 0.15:
        rejected = chosen[: len(chosen) // 2].rstrip(" .")  # truncated
    elif kind < 0.17:
        rejected = _sentence(rng, vocab, rng.randint(20, 40))  # off-topic
    elif kind < 0.18:
        rejected = chosen.replace(".", "!", 1)  # near-identical
    else:
        rejected = _answer(rng, vocab, topic, rng.randint(15, 140))
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "slices": {"intent": rng.choice(INTENTS), "difficulty": rng.choice(DIFFICULTY), "risk": rng.choices(RISK, (8, 3, 1))[0],
                       "surface": rng.choices(SURFACES, (6, 3, 1))[0], "tool_use": rng.choice(("yes", "no")),
                       "long_context": rng.choices(("yes", "no"), (1, 9))[0]},
            "source": rng.choice(SOURCES)}


def write_synthetic(path: Path, n: int, seed: int = 0) -> Path:
    from prefline.evals.suite import load_suite

    if path.is_file():
        return path
    suite_prompts = [item.messages[-1].content for item in load_suite("smoke").items]
    rng = random.Random(seed)
    vocab = _vocab(rng)
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as handle:
        previous = None
        for i in range(n):
            row = synthetic_row(i, rng, vocab, suite_prompts)
            if previous is not None and i % 100 == 0:  # near duplicates of the previous example
                row["prompt"], row["chosen"] = previous["prompt"], [{"role": "assistant", "content": previous["chosen"][0]["content"] + " Indeed."}]
            handle.write(json.dumps(row) + "\n")
            previous = row
    tmp.rename(path)
    return path


def _peaks_mb() -> tuple[float, float]:
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def child(step: str, path: str, name: str, consensus: str) -> None:
    """One timed step in this (fresh) process; prints a JSON line."""
    from prefline.ledger import Ledger

    ledger = Ledger()
    started = time.perf_counter()
    if step == "ingest":
        from prefline.data.ingest import ingest

        result = ingest(path, name, ledger, consensus=consensus)
        detail = {"pairs": result.n_pairs or result.n_accepted}
    else:
        from prefline.data.quality import data_report

        report = data_report(ledger.get_dataset(name), ledger)
        detail = {"pairs": report["dataset"]["pairs"], "near_dup_groups": report["duplicates"]["near"]["groups"],
                  "contaminated_pairs": report["contamination"]["contaminated_pairs"], "timings_s": report["timings_s"]}
    seconds = time.perf_counter() - started
    main_mb, worker_mb = _peaks_mb()
    print(json.dumps({"step": step, "seconds": round(seconds, 1), "peak_mb": round(main_mb), "worker_peak_mb": round(worker_mb), **detail}))


def run_step(step: str, path: Path, name: str, consensus: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, str(path), name, consensus], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"step": step, "error": (out.stderr.strip().splitlines() or ["?"])[-1], "returncode": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/prefline-bench-data"), help="Folder for the synthetic files and the ledger.")
    parser.add_argument("--consensus", default="none", choices=("none", "majority", "dawid-skene"),
                        help="Consensus method of the ingest step (default: none, as for any file of plain pairs).")
    parser.add_argument("--child", nargs=4, metavar=("STEP", "PATH", "NAME", "CONSENSUS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFLINE_HOME": str(args.work / f"home-{int(time.time())}")}
    env.pop("PREFLINE_DB_URL", None)
    subprocess.run([sys.executable, "-m", "prefline", "suite", "freeze", "smoke"], env=env, check=True, capture_output=True)
    print(f"{'pairs':>9}  {'step':<7} {'seconds':>8} {'s/1k pairs':>10} {'peak MB':>8} {'worker MB':>9} {'load':>5}  detail")
    for n in args.sizes:
        started = time.perf_counter()
        path = write_synthetic(args.work / f"pairs-{n}.jsonl", n)
        print(f"# {path} ready ({time.perf_counter() - started:.0f} s)", flush=True)
        total = 0.0
        for step in ("ingest", "report"):
            load = os.getloadavg()[0]  # other work on the machine slows every step down
            result = run_step(step, path, f"bench-{n}", args.consensus, env)
            if "error" in result:
                print(f"{n:>9}  {step:<7} failed (exit {result['returncode']}): {result['error']}", flush=True)
                break
            total += result["seconds"]
            detail = {k: v for k, v in result.items() if k not in ("step", "seconds", "peak_mb", "worker_peak_mb")}
            print(f"{n:>9}  {step:<7} {result['seconds']:>8.1f} {1000 * result['seconds'] / n:>10.2f} {result['peak_mb']:>8} "
                  f"{result['worker_peak_mb']:>9} {load:>5.1f}  {json.dumps(detail)}", flush=True)
        else:
            print(f"{n:>9}  {'total':<7} {total:>8.1f} {1000 * total / n:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
