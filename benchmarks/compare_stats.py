"""Comparison statistics at scale: 10,000 items x 30 slices x 15 metrics, 2,000 resamples (target: under 10 s).

Times ``compare_paired``, the pure part of ``prefline compare`` (and of the gate's evidence): for
every metric in every slice (31 with ``overall``, so 465 cells), the paired Poisson bootstrap of the
mean difference and ratio, exact McNemar for the 10 binary metrics, Wilcoxon signed-rank for the 5
continuous ones, and the Benjamini-Hochberg adjustment over all cells. The data are synthetic and
seeded: three slice keys with ten values each, a fifth of each metric's values missing (a metric
that does not apply to an item), candidate values that differ from the baseline's by chance plus a
small shift in a few metrics.

For scale, the naive approach measured in the same run: a loop over cells, each resampling its own
items with ``rng.integers`` (the classic percentile bootstrap, what the gate did before) and calling
scipy's test; it is timed on ``--naive-cells`` cells spread evenly over the 465 and scaled to all of them.

    .venv/bin/python benchmarks/compare_stats.py
    .venv/bin/python benchmarks/compare_stats.py --items 2000 --resamples 1000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import stats as sp

from prefline.gate.comparison import PairedData, compare_paired

TARGET_S = 10.0


def synthetic(items: int, metrics: int, binary: int, keys: int, values: int, seed: int) -> PairedData:
    rng = np.random.default_rng(seed)
    base = np.empty((items, metrics))
    cand = np.empty((items, metrics))
    for j in range(metrics):
        if j < binary:
            p = rng.beta(1, 4, items)
            base[:, j] = rng.random(items) < p
            cand[:, j] = rng.random(items) < np.clip(p + (0.03 if j % 4 == 0 else 0), 0, 1)
        else:
            mu = rng.lognormal(np.log(60), 0.5, items)
            base[:, j] = np.round(mu * rng.lognormal(0, 0.3, items))
            cand[:, j] = np.round(mu * rng.lognormal(0.05 if j % 2 else 0, 0.3, items))
        missing = rng.random(items) < 0.2
        base[missing, j] = np.nan
        cand[missing, j] = np.nan
    slices = {"overall": np.ones(items, dtype=bool)}
    for k in range(keys):
        tag = rng.integers(0, values, items)
        for v in range(values):
            slices[f"key{k}=v{v}"] = tag == v
    return PairedData([f"i{n}" for n in range(items)], [f"m{j}" for j in range(metrics)], base, cand, slices)


def naive(data: PairedData, resamples: int, cells: int, seed: int) -> float:
    """Seconds for the per-cell loop on ``cells`` cells spread evenly over all of them (big and small slices alike)."""
    rng = np.random.default_rng(seed)
    binary = data.binary()
    names = list(data.slices)
    began = time.perf_counter()
    total = data.baseline.shape[1] * len(names)
    for cell in np.linspace(0, total - 1, cells).astype(int):
        j, mask = cell // len(names), data.slices[names[cell % len(names)]]
        keep = mask & ~np.isnan(data.baseline[:, j]) & ~np.isnan(data.candidate[:, j])
        d = data.candidate[keep, j] - data.baseline[keep, j]
        means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
        np.quantile(means, [0.05, 0.95])
        if binary[j]:
            up, down = int((d > 0).sum()), int((d < 0).sum())
            sp.binomtest(min(up, down), up + down, 0.5) if up + down else None
        else:
            sp.wilcoxon(d[d != 0])
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=15)
    parser.add_argument("--binary", type=int, default=10, help="How many of the metrics are 0/1 per item.")
    parser.add_argument("--keys", type=int, default=3, help="Slice keys; each has --values values (3 x 10 = 30 slices).")
    parser.add_argument("--values", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--naive-cells", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = synthetic(args.items, args.metrics, args.binary, args.keys, args.values, args.seed)
    cells = args.metrics * len(data.slices)
    load = os.getloadavg()[0]
    cpu0, began = time.process_time(), time.perf_counter()
    rows = compare_paired(data, samples=args.resamples, seed=args.seed)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu0
    assert len(rows) == cells
    naive_s = naive(data, args.resamples, args.naive_cells, args.seed) * cells / args.naive_cells
    significant = sum(r.p_adjusted <= 0.05 for r in rows)
    print(f"{args.items} items x {len(data.slices) - 1} slices (+ overall) x {args.metrics} metrics = {cells} cells, "
          f"{args.resamples} resamples, {os.cpu_count()} CPUs, load {load:.2f}")
    print(f"compare_paired: {wall:.2f} s wall, {cpu:.2f} s CPU (target {TARGET_S:.0f} s: {'met' if wall < TARGET_S else 'MISSED'})")
    print(f"naive per-cell loop: {naive_s:.1f} s (timed on {args.naive_cells} cells spread over all, scaled to {cells}); speed-up {naive_s / wall:.1f}x")
    print(f"{significant} of {cells} cells with BH-adjusted p <= 0.05")


if __name__ == "__main__":
    main()
