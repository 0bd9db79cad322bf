"""Candidate run vs baseline run, answer by answer, under a pairwise judge.

For every suite item both runs answered, the judge compares the two answers in both
orders; the result is the candidate's raw win rate, its length-controlled win rate, and
the judge's position-flip rate, overall and per slice, with every judgment kept as evidence.
"""

from __future__ import annotations

from typing import Any

from prefline.errors import PreflineError
import numpy as np

from prefline.evals.winrate import combine_swapped, joint_length_controlled_winrates, length_controlled_winrate
from prefline.stats import bootstrap_mean
from prefline.ledger import Ledger

MIN_ITEMS_FOR_LC = 10  # the length model needs a spread of length differences to fit


def paired_generations(ledger: Ledger, baseline_run: int | str, candidate_run: int | str) -> list[tuple[dict, dict]]:
    """Generations of both runs for the items they share; the runs must use the same suite hash."""
    base, cand = ledger.get_run(baseline_run), ledger.get_run(candidate_run)
    if base["suite_hash"] != cand["suite_hash"]:
        raise PreflineError(f"runs {base['id']} and {cand['id']} used different suites ({base['suite_hash'][:12]} vs "
                            f"{cand['suite_hash'][:12]}); only runs on the same suite hash are compared")
    base_gens = {g["item_id"]: g for g in ledger.generations(base["id"])}
    pairs = [(base_gens[g["item_id"]], g) for g in ledger.generations(cand["id"]) if g["item_id"] in base_gens]
    if not pairs:
        raise PreflineError(f"runs {base['id']} and {cand['id']} share no answered items")
    return pairs


def head_to_head(ledger: Ledger, baseline_run: int | str, candidate_run: int | str, judge, samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    pairs = paired_generations(ledger, baseline_run, candidate_run)
    judgments = judge.judge([c["messages"] for _, c in pairs], [c["output"] for _, c in pairs], [b["output"] for b, _ in pairs])
    items = []
    for (base, cand), j in zip(pairs, judgments):
        score, flipped = combine_swapped(j.first, j.second)
        items.append({"item_id": cand["item_id"], "slices": cand["slices"], "win": score, "flipped": flipped,
                      "length_diff": cand["output_tokens"] - base["output_tokens"],
                      "verdicts": [j.first, j.second], "judge_said": j.raw})

    groups: dict[str, list[dict]] = {}
    for item in items:
        for name in ["overall"] + [f"{k}={v}" for k, v in sorted(item["slices"].items())]:
            groups.setdefault(name, []).append(item)
    by_slice: dict[str, Any] = {}
    for name, members in sorted(groups.items(), key=lambda kv: (kv[0] != "overall", kv[0])):
        wins = [m["win"] for m in members]
        entry: dict[str, Any] = {"n": len(members), "flip_rate": sum(m["flipped"] for m in members) / len(members)}
        raw = bootstrap_mean(wins, samples=samples, seed=seed)
        entry["raw"] = {"estimate": raw.estimate, "ci": [raw.low, raw.high]}
        if len(members) >= MIN_ITEMS_FOR_LC:
            lc = length_controlled_winrate(wins, [m["length_diff"] for m in members], samples=samples, seed=seed)
            entry["length_controlled"] = lc.as_dict()["length_controlled"]
            entry["warning"] = lc.warning
        by_slice[name] = entry
    return {"judge": judge.describe(), "baseline_run": pairs[0][0]["run_id"], "candidate_run": pairs[0][1]["run_id"],
            "slices": by_slice, "items": items}


def joint_length_control(results: list[dict[str, Any]], samples: int = 200, seed: int = 0) -> dict[str, Any] | None:
    """The length-controlled win rates of several head-to-heads against one baseline, fitted jointly
    over every item any of them judged (None when a candidate has too few items to fit)."""
    ids = sorted({item["item_id"] for r in results for item in r["items"]})
    column = {item_id: k for k, item_id in enumerate(ids)}
    wins = np.full((len(results), len(ids)), np.nan)
    diffs = np.full((len(results), len(ids)), np.nan)
    for m, result in enumerate(results):
        if len(result["items"]) < MIN_ITEMS_FOR_LC:
            return None
        for item in result["items"]:
            wins[m, column[item["item_id"]]] = item["win"]
            diffs[m, column[item["item_id"]]] = item["length_diff"]
    fit = joint_length_controlled_winrates(wins, diffs, names=[f"run {r['candidate_run']}" for r in results], samples=samples, seed=seed)
    return fit.as_dict()
