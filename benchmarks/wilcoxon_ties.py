"""Wilcoxon signed-rank on a gate's small slices: prefline's p-value against scipy's default, same run.

A surface slice of the demo suite holds 13 items, and per-item differences of counts (tokens,
sentences) tie often. For at most 13 tied differences scipy's default runs an exhaustive permutation
test that re-ranks every one of the 2**13 sign patterns (seconds per call); prefline enumerates the
patterns once over the fixed ranks (``prefline.stats.wilcoxon_signed_rank``). Prints the time of each
over the same seeded samples, the ratio, and the largest difference between their p-values.

    .venv/bin/python benchmarks/wilcoxon_ties.py              # 20 samples of 13 tied differences
    .venv/bin/python benchmarks/wilcoxon_ties.py --calls 100 --n 12
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import stats as sp

from prefline.stats import wilcoxon_signed_rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="samples tested by each side")
    parser.add_argument("--n", type=int, default=13, help="differences per sample (ties among them)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    samples = []
    while len(samples) < args.calls:  # token-count changes: integers, tied, no zeros (zeros are dropped first)
        d = rng.integers(-40, 41, size=args.n).astype(float) // 5
        if np.all(d != 0) and np.unique(np.abs(d)).size < d.size:
            samples.append(d)
    sides = {}
    for name, test in (("prefline", wilcoxon_signed_rank), ("scipy default", lambda d: float(sp.wilcoxon(d).pvalue))):
        wall, cpu = time.perf_counter(), time.process_time()
        p = [test(d) for d in samples]
        sides[name] = (time.perf_counter() - wall, time.process_time() - cpu, np.array(p))
    print(f"load (1 min): {os.getloadavg()[0]:.1f}; {args.calls} samples of {args.n} tied differences")
    for name, (wall, cpu, _) in sides.items():
        print(f"{name:14s} wall {wall:8.3f} s  CPU {cpu:8.3f} s  ({1000 * cpu / args.calls:.2f} ms CPU per call)")
    ours, ref = sides["prefline"], sides["scipy default"]
    print(f"speed-up (CPU): {ref[1] / max(ours[1], 1e-9):.0f}x; largest |p difference|: {np.max(np.abs(ours[2] - ref[2])):.2e}")


if __name__ == "__main__":
    main()
