"""Mixtures: a new dataset version drawn from existing versions, with weights per dataset and per slice.

``prefline data mix --name NEW --from A:0.5 --from B:1 --by-slice surface=voice:2`` keeps, of
each source dataset, the share of its pairs given by its weight, multiplied by the weight of
every ``--by-slice`` tag a pair carries (a pair tagged with two weighted slices gets both).

- A dataset weight is a share in (0, 1]: 0.5 keeps half of its pairs, 1 keeps all of them.
- A slice weight is a factor >= 0: 0 drops the slice, 2 doubles its share (up to all of it).
  A pair's rate is capped at 1: a pair is stored at most once (a second copy would be a
  duplicate id, and would weigh the pair twice without saying so; use the ``weight`` column
  for that).
- Within each source and rate, exactly ``round(rate * count)`` pairs are kept: those with the
  smallest hash of ``seed`` and the pair id. The draw depends only on the seed and the pairs,
  not on their order, and a pair kept from one version of a source is kept from the next.
- A pair found in several sources is kept once, from the first source listed; the later
  copies are written to the new version's ``rejects.jsonl`` as duplicates.

With ``--balance-length`` the drawn pairs are then length-balanced: within each combination of
slice tags, the pairs whose chosen response is longer (in words, as the data report counts them)
are cut down to as many as the pairs whose chosen response is not longer, keeping those with the
smallest draw keys. A model trained on the result cannot learn "longer is better" from the pairs'
labels. Each pair cut is written to ``rejects.jsonl`` (kind ``excluded``, category
``length-balance``), so the new version's counts reconcile with its sources'.

The new version records every source as a parent (relation ``mix``) with its weight, the
slice weights, the seed, the counts and whether it was length-balanced.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefline.data import dedup, lineage, store
from prefline.data.coverage import parse_slices
from prefline.errors import PreflineError


def parse_source(text: str) -> tuple[str, float]:
    """``NAME[@VERSION]:WEIGHT`` -> (dataset reference, weight in (0, 1])."""
    ref, sep, weight = text.rpartition(":")
    value = _number(weight, f"--from {text!r}") if sep else None
    if not ref or value is None:
        raise PreflineError(f"--from {text!r}: expected DATASET:WEIGHT, e.g. helpful@2:0.5")
    if not 0 < value <= 1:
        raise PreflineError(f"--from {text!r}: the weight is the share of the dataset's pairs to keep, in (0, 1]; got {value:g}")
    return ref, value


def parse_slice_weight(text: str) -> tuple[str, str, float]:
    """``KEY=VALUE:WEIGHT`` -> (key, value, factor >= 0)."""
    tag, sep, weight = text.rpartition(":")
    key, eq, value = tag.partition("=")
    factor = _number(weight, f"--by-slice {text!r}") if sep else None
    if not (key and eq and value) or factor is None:
        raise PreflineError(f"--by-slice {text!r}: expected KEY=VALUE:WEIGHT, e.g. surface=voice:2")
    if factor < 0:
        raise PreflineError(f"--by-slice {text!r}: the weight is a factor >= 0; got {factor:g}")
    return key, value, factor


def _number(text: str, where: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        raise PreflineError(f"{where}: the weight {text!r} is not a number") from None


def draw_keys(ids: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """A uniform 64-bit key per pair id, fixed by the seed: the draw keeps the smallest."""
    prefix = f"{seed}:".encode()
    return np.fromiter((int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "big") for i in ids.to_pylist()),
                       dtype=np.uint64, count=len(ids))


def rates(table: pa.Table, weight: float, by_slice: list[tuple[str, str, float]]) -> np.ndarray:
    """Each pair's keep rate: the dataset weight times the weights of the slices it carries, capped at 1."""
    rate = np.full(table.num_rows, weight, dtype=np.float64)
    if by_slice and "slices" in table.column_names:
        encoded = pc.dictionary_encode(pc.fill_null(table.column("slices").combine_chunks(), ""))
        factors = np.ones(len(encoded.dictionary), dtype=np.float64)
        for code, tags in enumerate(parse_slices(encoded.dictionary.to_pylist())):
            for key, value, factor in by_slice:
                if tags.get(key) == value:
                    factors[code] *= factor
        rate *= factors[encoded.indices.to_numpy(zero_copy_only=False)]
    return np.minimum(rate, 1.0)


def draw(table: pa.Table, rate: np.ndarray, seed: int) -> np.ndarray:
    """The rows kept: within each distinct rate, the ``round(rate * count)`` with the smallest draw keys."""
    keys = draw_keys(table.column("id"), seed)
    keep = np.zeros(table.num_rows, dtype=bool)
    for value in dedup.sorted_unique(rate):
        rows = np.flatnonzero(rate == value)
        k = int(round(value * rows.size))
        if k:
            keep[rows[np.argsort(keys[rows], kind="stable")[:k]]] = True
    return keep


def length_balance(table: pa.Table, seed: int) -> np.ndarray:
    """The rows kept so that, in each combination of slice tags, chosen-longer pairs are no more than the others."""
    chosen = dedup.tokenize(store.message_text(table.column("chosen"))).counts
    rejected = dedup.tokenize(store.message_text(table.column("rejected"))).counts
    longer = np.asarray(chosen) > np.asarray(rejected)
    if "slices" in table.column_names:
        strata = pc.dictionary_encode(pc.fill_null(table.column("slices").combine_chunks(), "")).indices.to_numpy(zero_copy_only=False)
    else:
        strata = np.zeros(table.num_rows, dtype=np.int64)
    keys = draw_keys(table.column("id"), seed)
    keep = ~longer
    for stratum in np.unique(strata):
        rows = np.flatnonzero((strata == stratum) & longer)
        allowed = int(((strata == stratum) & ~longer).sum())
        keep[rows[np.argsort(keys[rows], kind="stable")[:allowed]]] = True
    return keep


def mix(name: str, sources: list[tuple[str, float]], ledger, by_slice: list[tuple[str, str, float]] | None = None,
        seed: int = 0, major_share: float | None = None, balance_length: bool = False) -> dict[str, Any]:
    """Draw a new version of ``name`` from ``sources`` (dataset reference, weight); see the module docs."""
    if not sources:
        raise PreflineError("a mixture needs at least one --from DATASET:WEIGHT")
    by_slice = by_slice or []
    parents, tables, rejects = [], [], []
    seen: pa.Array = pa.array([], pa.string())
    slice_params = [{"key": k, "value": v, "weight": w} for k, v, w in by_slice]
    for ref, weight in sources:
        parent = ledger.get_dataset(ref)
        table = store.pairs_table(parent)
        keep = draw(table, rates(table, weight, by_slice), seed)
        drawn = table.filter(pa.array(keep))
        repeated = pc.is_in(drawn.column("id"), value_set=seen)
        for pair_id in drawn.column("id").filter(repeated).to_pylist():
            rejects.append({"id": pair_id, "kind": "duplicate", "reason": f"also drawn from an earlier source; kept once (from {ref})"})
        drawn = drawn.filter(pc.invert(repeated))
        seen = pa.concat_arrays([seen, drawn.column("id").combine_chunks()])
        tables.append(drawn)
        parents.append((parent, "mix", {"weight": weight, "by_slice": slice_params, "seed": seed, "balance_length": balance_length,
                                        "pairs_in": table.num_rows, "pairs_drawn": int(keep.sum()), "pairs_kept": drawn.num_rows}))
    combined = pa.concat_tables(tables, promote_options="permissive")
    if balance_length and combined.num_rows:
        kept = length_balance(combined, seed)
        for pair_id in combined.column("id").filter(pa.array(~kept)).to_pylist():
            rejects.append({"id": pair_id, "kind": "excluded", "category": "length-balance",
                            "reason": "chosen response longer: cut to balance the slice's chosen-longer and chosen-not-longer pairs"})
        combined = combined.filter(pa.array(kept))
    if combined.num_rows == 0:
        raise PreflineError(f"mixture {name}: the weights keep no pairs")
    return lineage.write_version(combined, name, ledger, parents, rejects=rejects, major_share=major_share)
