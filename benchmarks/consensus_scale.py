"""Consensus at scale: `data ingest` with combining consensus on files of many signals about each pair.

Writes (cached under the work folder) two synthetic files per size:

- ``pairwise``: N pairwise choices (``--signal pairwise``) about N/3 pairs, one to five annotators per
  pair out of twelve (three of them careless: right 55% of the time against 90%), 4% ties, every
  pair's votes scattered over the whole file, prompts and responses as long as in data_pipeline.py
  (10-25 and 25-140 words), slices and sources;
- ``ratings``: N single ratings in the one-rating-per-row layout (``--signal ratings``): four responses
  per prompt, each rated 1-5 by three of six raters, the rows of a prompt scattered over the file.

Then it times, each in a fresh process, ``ingest`` of the pairwise file with ``majority`` and with
``dawid-skene``, and of the ratings file with ``majority``: by the out-of-core path (``new``) and, with
``--baseline``, by the in-memory path it replaced (``old``: every signal held as a Python object,
grouped in a dict). It prints seconds, peak resident memory (``resource.getrusage``: the step's process
and the largest of its worker processes), the pairs stored, the content hash (equal for both paths),
and the 1-minute load average when the step started.

    .venv/bin/python benchmarks/consensus_scale.py                                   # 1M signals, new path
    .venv/bin/python benchmarks/consensus_scale.py --sizes 100000 --baseline         # 100k, new and old path
    .venv/bin/python benchmarks/consensus_scale.py --sizes 100000 --steps majority   # one step
    .venv/bin/python benchmarks/consensus_scale.py --sizes 100000 1000000 --baseline --baseline-max 100000
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

sys.path.insert(0, str(Path(__file__).parent))
from data_pipeline import ASKS, INTENTS, SOURCES, TOPICS, _answer, _sentence, _vocab  # noqa: E402

ANNOTATORS = [f"rater-{i:02d}" for i in range(12)]
CARELESS = set(ANNOTATORS[:3])
STEPS = {"majority": ("pairwise", "majority"), "dawid-skene": ("pairwise", "dawid-skene"), "ratings": ("ratings", "majority")}


def _pair_texts(p: int, vocab: list[str]) -> tuple[str, str, str, dict]:
    rng = random.Random(p)
    topic = TOPICS[p % len(TOPICS)]
    prompt = rng.choice(ASKS).format(t=topic) + " " + _sentence(rng, vocab, rng.randint(4, 14))
    a, b = _answer(rng, vocab, topic, rng.randint(25, 110)), _answer(rng, vocab, topic, rng.randint(15, 140))
    return prompt, a, b, {"intent": rng.choice(INTENTS), "source": rng.choice(SOURCES)}


def write_pairwise(path: Path, n: int, seed: int = 0) -> Path:
    if path.is_file():
        return path
    rng = random.Random(seed)
    vocab = _vocab(random.Random(1))
    order: list[int] = []
    p = 0
    while len(order) < n:
        order.extend([p] * rng.randint(1, 5))
        p += 1
    order = order[:n]
    rng.shuffle(order)  # the votes about one pair are anywhere in the file
    truth = [rng.choice("ab") for _ in range(p)]
    voters: dict[int, list[str]] = {}
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as handle:
        for pair in order:
            prompt, a, b, tags = _pair_texts(pair, vocab)
            left = voters.setdefault(pair, rng.sample(ANNOTATORS, 5))
            annotator = left.pop()
            right = 0.55 if annotator in CARELESS else 0.9
            roll = rng.random()
            choice = "tie" if roll < 0.04 else truth[pair] if roll < 0.04 + right * 0.96 else {"a": "b", "b": "a"}[truth[pair]]
            handle.write(json.dumps({"prompt": prompt, "response_a": a, "response_b": b, "choice": choice, "annotator": annotator,
                                     "slices": {"intent": tags["intent"]}, "source": tags["source"]}) + "\n")
            if not left:
                del voters[pair]
    tmp.rename(path)
    return path


def write_ratings(path: Path, n: int, seed: int = 0) -> Path:
    if path.is_file():
        return path
    rng = random.Random(seed)
    vocab = _vocab(random.Random(1))
    rows_per_prompt = 4 * 3
    order = [q for q in range(-(-n // rows_per_prompt)) for _ in range(rows_per_prompt)][:n]
    rng.shuffle(order)
    plan: dict[int, list[tuple[int, str]]] = {}
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as handle:
        for q in order:
            prompt, a, b, tags = _pair_texts(q, vocab)
            if q not in plan:
                plan[q] = [(r, rater) for r in range(4) for rater in rng.sample(ANNOTATORS[:6], 3)]
                rng.shuffle(plan[q])
            response, rater = plan[q].pop()
            text = (a, b, a + " In short, it depends.", "I'm not sure, " + b)[response]
            quality = (4.5, 3.0, 3.5, 1.5)[response] + rng.uniform(-1, 1)
            handle.write(json.dumps({"prompt_id": f"q{q}", "prompt": prompt, "response_id": f"q{q}-{response}", "response": text,
                                     "annotator": rater, "rating": max(1, min(5, round(quality))),
                                     "slices": {"intent": tags["intent"]}, "source": tags["source"]}) + "\n")
            if not plan[q]:
                del plan[q]
    tmp.rename(path)
    return path


def _peaks_mb() -> tuple[float, float]:
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def child(kind: str, method: str, which: str, path: str, name: str) -> None:
    """One timed ingest in this (fresh) process; prints a JSON line."""
    from prefline.data import grouping
    from prefline.data.ingest import assemble, ingest, write_assembly
    from prefline.ledger import Ledger

    if which == "old":  # the in-memory path: every signal an object, grouped in a dict
        grouping.group = lambda read, kind, ctx, method, out, workers=1, reread=None: write_assembly(out, assemble(read(), kind, ctx, method), read)
    ledger = Ledger()
    started = time.perf_counter()
    result = ingest(path, name, ledger, signal=kind, consensus=method)
    seconds = time.perf_counter() - started
    main_mb, worker_mb = _peaks_mb()
    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))
    print(json.dumps({"seconds": round(seconds, 1), "cpu_s": round(cpu, 1), "peak_mb": round(main_mb), "worker_peak_mb": round(worker_mb),
                      "read": result.n_read, "pairs": result.n_pairs, "excluded": result.n_excluded, "hash": result.content_hash[:12]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000], help="Signals (records) per file.")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--baseline", action="store_true", help="Also time the in-memory path (slow and large at 1M).")
    parser.add_argument("--baseline-max", type=int, default=None, help="Time the in-memory path only for sizes up to this many signals.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/prefline-bench-consensus"), help="Folder for the files and the ledger.")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFLINE_HOME": str(args.work / f"home-{int(time.time())}")}
    env.pop("PREFLINE_DB_URL", None)
    print(f"{'signals':>9}  {'step':<12} {'path':<4} {'seconds':>8} {'CPU s':>7} {'peak MB':>8} {'worker MB':>9} {'load':>5}  detail", flush=True)
    for n in args.sizes:
        for step in args.steps:
            kind, method = STEPS[step]
            started = time.perf_counter()
            writer = write_pairwise if kind == "pairwise" else write_ratings
            path = writer(args.work / f"{kind}-{n}.jsonl", n)
            print(f"# {path} ready ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
            old = args.baseline and (args.baseline_max is None or n <= args.baseline_max)
            for which in ("new", "old") if old else ("new",):
                load = os.getloadavg()[0]
                out = subprocess.run([sys.executable, __file__, "--child", kind, method, which, str(path), f"{step}-{which}-{n}"],
                                     env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{n:>9}  {step:<12} {which:<4} failed (exit {out.returncode}): {(out.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                detail = {k: v for k, v in result.items() if k not in ("seconds", "cpu_s", "peak_mb", "worker_peak_mb")}
                print(f"{n:>9}  {step:<12} {which:<4} {result['seconds']:>8.1f} {result['cpu_s']:>7.1f} {result['peak_mb']:>8} {result['worker_peak_mb']:>9} "
                      f"{load:>5.1f}  {json.dumps(detail)}", flush=True)


if __name__ == "__main__":
    main()
