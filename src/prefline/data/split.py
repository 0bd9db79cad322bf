"""Hold out pairs for evaluation: a dataset version split into a train and a held-out version.

The split is by prompt: every pair of one prompt lands on the same side, so no prompt the
adapter trained on is scored as unseen. It is stratified by slice: within each combination of
slice tags the same share of prompts is held out (rounded so the totals add up, by largest
remainder). Which prompts go is fixed by the seed. Both versions record the parent and the
split's parameters as lineage (relation ``split``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefline.errors import PreflineError


def heldout_groups(strata: list[str], keys: np.ndarray, share: float) -> np.ndarray:
    """Which prompt groups are held out: ``share`` of each stratum (by largest remainder), smallest keys first.

    ``strata`` gives each group's stratum, ``keys`` each group's seeded random key.
    """
    strata_arr = np.asarray(strata, dtype=object)
    names, inverse, counts = np.unique(strata_arr.astype(str), return_inverse=True, return_counts=True)
    exact = counts * share
    take = np.floor(exact).astype(int)
    short = int(round(counts.sum() * share)) - int(take.sum())
    if short > 0:  # hand the remaining prompts to the strata with the largest remainders
        order = np.lexsort((names, -(exact - take)))
        take[order[:short]] += 1
    held = np.zeros(len(strata), dtype=bool)
    for code in range(len(names)):
        rows = np.flatnonzero(inverse == code)
        held[rows[np.argsort(keys[rows], kind="stable")[: take[code]]]] = True
    return held


def split(dataset: str, heldout: float, ledger, seed: int = 0, train_name: str | None = None,
          heldout_name: str | None = None) -> dict[str, Any]:
    """Write ``NAME-train`` and ``NAME-heldout`` (or the given names) from one dataset version."""
    from prefline.data.lineage import write_version
    from prefline.data.store import pairs_table
    from prefline.data.mix import draw_keys

    if not 0.0 < heldout < 1.0:
        raise PreflineError(f"--heldout {heldout}: the held-out share must be between 0 and 1 (e.g. 0.2)")
    parent = ledger.get_dataset(dataset)
    train_name = train_name or f"{parent['name']}-train"
    heldout_name = heldout_name or f"{parent['name']}-heldout"
    if train_name == heldout_name:
        raise PreflineError(f"--train-name and --heldout-name are both {train_name!r}: the two sides need different names")
    table = pairs_table(parent)
    prompts = [json.dumps(p, sort_keys=True, ensure_ascii=False) for p in table.column("prompt").to_pylist()]
    slices = table.column("slices").to_pylist() if "slices" in table.column_names else [None] * table.num_rows
    encoded = pc.dictionary_encode(pa.array(prompts, pa.string()))
    group_of = encoded.indices.to_numpy(zero_copy_only=False)
    n_groups = len(encoded.dictionary)
    if n_groups < 2:
        raise PreflineError(f"dataset {parent['name']}@{parent['version']} has {n_groups} distinct prompt(s): nothing to split")
    _, first_row = np.unique(group_of, return_index=True)  # each prompt's first pair carries its slice tags
    strata = [_stratum(slices[row]) for row in first_row]
    keys = draw_keys(encoded.dictionary, seed)
    held_group = heldout_groups(strata, keys, heldout)
    if held_group.all() or not held_group.any():
        raise PreflineError(f"--heldout {heldout} of {n_groups} prompts leaves one side empty; use a share that keeps at least one prompt on each side")
    held_row = held_group[group_of]
    params = {"heldout": heldout, "seed": seed, "by": "prompt", "stratified_by": "slices", "prompts": n_groups,
              "heldout_prompts": int(held_group.sum())}
    sides = {}
    for side, name, mask in (("train", train_name, ~held_row), ("heldout", heldout_name, held_row)):
        sides[side] = write_version(table.filter(pa.array(mask)), name, ledger, parents=[(parent, "split", {**params, "side": side})])
    return {"parent": f"{parent['name']}@{parent['version']}", **params, **sides}


def _stratum(slices: Any) -> str:
    """A canonical text of a pair's slice tags (its JSON text, or none)."""
    if not slices:
        return "{}"
    try:
        return json.dumps(json.loads(slices) if isinstance(slices, str) else slices, sort_keys=True)
    except ValueError:
        return "{}"
