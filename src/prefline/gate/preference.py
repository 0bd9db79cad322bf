"""Preference-layer metrics as gateable per-item values, read from the ledger's preference evaluations.

- ``win_rate``: per suite item, the judged win of the candidate over the baseline (1, 0.5 for a
  tie, 0), from the latest win-rate evaluation of exactly these two runs. The baseline's value is
  0.5 on every item: a run judged against itself wins half. So ``min_value: 0.5`` asks for a
  candidate that wins more often than it loses, and ``max_decrease: 0.1`` for one that wins at least 40%.
- ``win_rate_lc``: the length-controlled win rate has no per-item value (it comes from a model
  fitted over all items), so it is gated on the stored per-slice estimate and its 90% bootstrap
  interval: pass when the interval's worse end is inside the bound, fail when the whole interval
  is beyond it, inconclusive otherwise; it has no p-value and stays out of the correction.
- ``held_out_pair_accuracy``: per held-out pair, 1 when the candidate's adapter ranks the chosen
  response above the rejected one (0.5 for a tie), from its latest pair-accuracy evaluation on a
  dataset it was not trained on. The baseline's value comes from the baseline adapter's
  evaluation on the same dataset, or 0.5 for the base model (its implicit reward is zero for
  both responses).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prefline.gate.comparison import MetricInfo, PairedData, slice_masks
from prefline.ledger import Ledger

PREFERENCE_METRICS = {
    "win_rate": MetricInfo("higher", "capability", "behaviour"),
    "win_rate_lc": MetricInfo("higher", "capability", "behaviour"),
    "held_out_pair_accuracy": MetricInfo("higher", "capability", "behaviour"),
}


def win_rate_slices(ledger: Ledger, base_run: dict[str, Any], cand_run: dict[str, Any]) -> dict[str, Any] | None:
    """The per-slice summary of the latest win-rate evaluation of exactly these two runs, or None."""
    wins = [e for e in ledger.preference_evals()
            if e["kind"] == "win_rate" and e["baseline_run_id"] == base_run["id"] and e["candidate_run_id"] == cand_run["id"]]
    return (wins[-1]["summary"] or {}).get("slices") if wins else None


def preference_data(ledger: Ledger, base_run: dict[str, Any], cand_run: dict[str, Any]) -> list[PairedData]:
    """The preference metrics available for these two runs, each as its own aligned item set."""
    evals = ledger.preference_evals()
    out = []
    wins = [e for e in evals if e["kind"] == "win_rate" and e["baseline_run_id"] == base_run["id"] and e["candidate_run_id"] == cand_run["id"]]
    if wins:
        items = wins[-1]["items"]
        cand = np.array([[float(i["win"])] for i in items])
        out.append(PairedData([i["item_id"] for i in items], ["win_rate"], np.full_like(cand, 0.5), cand,
                              slice_masks([i["slices"] for i in items]), {"win_rate": PREFERENCE_METRICS["win_rate"]}))
    held = _held_out(evals, cand_run.get("adapter_id"))
    if held is not None:
        base_items = {}
        if base_run.get("adapter_id") is None:
            base_items = {i["id"]: 0.5 for i in held["items"]}
        else:
            same = [e for e in evals if e["kind"] == "pair_accuracy" and e["adapter_id"] == base_run["adapter_id"]
                    and e["dataset_id"] == held["dataset_id"]]
            if same:
                base_items = {i["id"]: float(i["correct"]) for i in same[-1]["items"]}
        items = held["items"]
        cand = np.array([[float(i["correct"])] for i in items])
        base = np.array([[base_items.get(i["id"], np.nan)] for i in items])
        out.append(PairedData([i["id"] for i in items], ["held_out_pair_accuracy"], base, cand, slice_masks([i["slices"] for i in items]),
                              {"held_out_pair_accuracy": PREFERENCE_METRICS["held_out_pair_accuracy"]}))
    return out


def _held_out(evals: list[dict[str, Any]], adapter_id: int | None) -> dict[str, Any] | None:
    """The adapter's latest pair-accuracy evaluation on data it was not trained on."""
    if adapter_id is None:
        return None
    mine = [e for e in evals if e["kind"] == "pair_accuracy" and e["adapter_id"] == adapter_id and not (e["summary"] or {}).get("warning")]
    return mine[-1] if mine else None
