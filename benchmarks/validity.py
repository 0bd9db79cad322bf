"""Validity of prefline's detectors on public human-labelled data: every figure of the validity check.

Reads, from the folder given with ``--data`` (never copied into the project):

- ``ifeval_dev.jsonl``: IFEval prompts with one GPT-4 response each and the official checker's
  strict and loose verdicts per instruction (Zhou et al. 2023, Apache-2.0). prefline's
  IFEval-compatible checks (``prefline.evals.scorers.behaviour_ifeval``) run on each response;
  printed: per-instruction agreement with the official verdicts, strict and loose, and prompt-level
  accuracy (all instructions of a prompt followed) beside the official figure, on the rows with an
  even ``key`` (where the checks were developed) and on those with an odd ``key`` (held out), then
  the instruction types that disagree anywhere.
- ``alpaca_eval_dev.jsonl``, ``alpaca_eval_baseline.jsonl``, ``alpaca_eval_dev_leaderboard.jsonl``:
  AlpacaEval 2 annotations of five models against the gpt4_1106_preview baseline (Dubois et al.
  2024, Apache-2.0). The five are fitted jointly (``joint_length_controlled_winrates``, lengths in
  characters as AlpacaEval measures them) and each alone (``length_controlled_winrate``); printed:
  each model's raw and length-controlled win rate beside the leaderboard's, the Spearman
  correlation with the leaderboard's LC, the gap between the verbose variant and its base model,
  and the largest move beyond the leaderboard's LC among models whose answers average under 2/3
  (or over 3/2) of the baseline's length. On the prompts with an even position in the baseline
  file (where the fit's settings were chosen), on the odd ones (held out), and on all.

Then, when ``benchmarks/validity_refusal.py`` exists, its ``report(data_dir)``: the refusal
detector on XSTest completions and agreement/review on PandaLM's test set.

    .venv/bin/python benchmarks/validity.py --data ../shared/validation
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

FAR = 2 / 3  # a model's mean length under FAR (or over 1/FAR) times the baseline's is "far" from it


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- IFEval --------------------------------------------------------------------------------------


def ifeval_figures(rows: list[dict]) -> dict:
    from prefline.evals.scorers.behaviour_instructions import check_instruction

    n = agree_strict = agree_loose = 0
    ours_strict = ours_loose = official_strict = official_loose = 0
    by_type: dict[str, list[int]] = {}
    for row in rows:
        strict, loose = [], []
        for kind, kwargs, want_strict, want_loose in zip(row["instruction_id_list"], row["kwargs"], row["official_strict"], row["official_loose"]):
            result = check_instruction(kind, {k: v for k, v in (kwargs or {}).items() if v is not None}, row["response"])
            strict.append(result["strict"])
            loose.append(result["loose"])
            n += 1
            agree_strict += result["strict"] == want_strict
            agree_loose += result["loose"] == want_loose
            counts = by_type.setdefault(kind, [0, 0, 0])
            counts[0] += 1
            counts[1] += result["strict"] == want_strict
            counts[2] += result["loose"] == want_loose
        ours_strict += all(strict)
        ours_loose += all(loose)
        official_strict += all(row["official_strict"])
        official_loose += all(row["official_loose"])
    p = len(rows)
    return {"prompts": p, "instructions": n, "agreement_strict": agree_strict / n, "agreement_loose": agree_loose / n,
            "prompt_strict": ours_strict / p, "official_prompt_strict": official_strict / p,
            "prompt_loose": ours_loose / p, "official_prompt_loose": official_loose / p,
            "disagreeing_types": {k: v for k, v in sorted(by_type.items()) if v[1] < v[0] or v[2] < v[0]}}


def print_ifeval(data: Path) -> None:
    rows = _jsonl(data / "ifeval_dev.jsonl")
    print("IFEval instructions vs the official checker (ifeval_dev.jsonl: GPT-4 responses; Zhou et al. 2023, Apache-2.0)")
    print(f"  {'split':<28} {'prompts':>7} {'instr.':>6} {'agree strict':>12} {'agree loose':>11} "
          f"{'prompt strict (official)':>25} {'prompt loose (official)':>24}")
    for label, subset in (("even keys (development)", [r for r in rows if r["key"] % 2 == 0]),
                          ("odd keys (held out)", [r for r in rows if r["key"] % 2 == 1]), ("all", rows)):
        f = ifeval_figures(subset)
        print(f"  {label:<28} {f['prompts']:>7} {f['instructions']:>6} {f['agreement_strict']:>12.4f} {f['agreement_loose']:>11.4f} "
              f"{f['prompt_strict']:>11.4f} ({f['official_prompt_strict']:.4f}) {f['prompt_loose']:>10.4f} ({f['official_prompt_loose']:.4f})")
    for kind, (n, s, lo) in f["disagreeing_types"].items():
        print(f"    disagrees: {kind}: strict {s}/{n}, loose {lo}/{n}")


# --- length-controlled win rate ---------------------------------------------------------------------


def alpaca_matrices(data: Path):
    baseline = {r["instruction"]: r["output"] for r in _jsonl(data / "alpaca_eval_baseline.jsonl")}
    prompts = list(baseline)
    board = {r["model"]: r for r in _jsonl(data / "alpaca_eval_dev_leaderboard.jsonl")}
    models = sorted(board)
    column = {p: i for i, p in enumerate(prompts)}
    wins = np.full((len(models), len(prompts)), np.nan)
    diffs = np.full_like(wins, np.nan)
    lengths = [[] for _ in models]
    for r in _jsonl(data / "alpaca_eval_dev.jsonl"):
        m, i = models.index(r["model"]), column[r["instruction"]]
        wins[m, i] = r["preference"]
        diffs[m, i] = len(r["output"]) - len(baseline[r["instruction"]])
        lengths[m].append(len(r["output"]))
    ratio = np.array([np.mean(lengths[m]) for m in range(len(models))]) / np.mean([len(o) for o in baseline.values()])
    return models, board, wins, diffs, ratio


def lc_figures(models, board, wins, diffs, ratio, columns, samples: int = 0) -> dict:
    from scipy.stats import spearmanr

    from prefline.evals.winrate import joint_length_controlled_winrates, length_controlled_winrate

    w, d = wins[:, columns], diffs[:, columns]
    joint = joint_length_controlled_winrates(w, d, names=models, samples=samples)
    alone = []
    for m in range(len(models)):
        seen = ~np.isnan(w[m])
        alone.append(length_controlled_winrate(w[m][seen], d[m][seen], samples=2).length_controlled.estimate * 100)
    lc = np.array([iv.estimate * 100 for iv in joint.length_controlled])
    reference = np.array([board[m]["lc_win_rate"] for m in models])
    far = (ratio < FAR) | (ratio > 1 / FAR)
    verbose = [(models.index(m), models.index(m.removesuffix("_verbose"))) for m in models
               if m.endswith("_verbose") and m.removesuffix("_verbose") in models]
    return {"models": models, "raw": [iv.estimate * 100 for iv in joint.raw], "lc": lc.tolist(), "alone": alone,
            "lc_ci": [[iv.low * 100, iv.high * 100] for iv in joint.length_controlled],
            "reference": reference.tolist(), "spearman": float(spearmanr(lc, reference).statistic),
            "spearman_alone": float(spearmanr(alone, reference).statistic),
            "verbose_gap": [(models[v], models[b], float(lc[v] - lc[b])) for v, b in verbose],
            "far_max_move": float(np.max(np.abs(lc - reference)[far])) if far.any() else None,
            "far_models": [models[i] for i in np.flatnonzero(far)], "phi": joint.length_coefficient, "prompts": len(columns)}


def print_lc(data: Path, samples: int = 100) -> None:
    models, board, wins, diffs, ratio = alpaca_matrices(data)
    n = wins.shape[1]
    print("\nLength-controlled win rate vs the AlpacaEval 2 leaderboard (alpaca_eval_dev*.jsonl; Dubois et al. 2024, Apache-2.0)")
    for label, columns in (("even prompts (development)", np.arange(0, n, 2)), ("odd prompts (held out)", np.arange(1, n, 2)),
                           ("all prompts", np.arange(n))):
        with_ci = label == "all prompts" and samples > 0  # each resample refits all five: ~0.4 s
        f = lc_figures(models, board, wins, diffs, ratio, columns, samples=samples if with_ci else 0)
        print(f"  {label}: {f['prompts']} prompts, shared length coefficient {f['phi']:.2f}")
        print(f"    {'model':<22} {'length/baseline':>15} {'raw':>6} {'LC joint':>8} {'LC alone':>8} {'board LC':>8} {'joint-board':>11}"
              + (f"  LC joint 90% CI ({samples} prompt resamples)" if with_ci else ""))
        for m, model in enumerate(models):
            print(f"    {model:<22} {ratio[m]:>15.2f} {f['raw'][m]:>6.2f} {f['lc'][m]:>8.2f} {f['alone'][m]:>8.2f} "
                  f"{f['reference'][m]:>8.2f} {f['lc'][m] - f['reference'][m]:>+11.2f}"
                  + (f"  [{f['lc_ci'][m][0]:.2f}, {f['lc_ci'][m][1]:.2f}]" if with_ci else ""))
        print(f"    Spearman with the leaderboard's LC: joint {f['spearman']:.3f}, alone {f['spearman_alone']:.3f}")
        for v, b, gap in f["verbose_gap"]:
            print(f"    verbose variant {v} minus {b}: {gap:+.2f} points")
        if f["far_max_move"] is not None:
            print(f"    largest |LC - board LC| among models far from the baseline's length ({', '.join(f['far_models'])}): {f['far_max_move']:.2f} points")


def refusal_report(data: Path) -> None:
    path = Path(__file__).with_name("validity_refusal.py")
    if not path.is_file():
        print("\n(benchmarks/validity_refusal.py not present: no refusal or agreement figures)")
        return
    spec = importlib.util.spec_from_file_location("validity_refusal", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print()
    module.report(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder with the public validation files.")
    parser.add_argument("--only", choices=["ifeval", "lc", "refusal"], help="Print one part only.")
    parser.add_argument("--samples", type=int, default=100, help="Bootstrap resamples for the LC intervals on all prompts (0: none).")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"error: --data {args.data} is not a folder", file=sys.stderr)
        raise SystemExit(2)
    parts = {"ifeval": print_ifeval, "lc": lambda data: print_lc(data, args.samples), "refusal": refusal_report}
    for name, part in parts.items():
        if args.only in (None, name):
            part(args.data)


if __name__ == "__main__":
    main()
