"""The diff between two dataset versions, and the major-change flag.

A diff counts the pairs added and removed, the
pairs per source and per slice before and after, and the change in the bias profile
(length and style-marker shares). The share of pairs that changed is the Jaccard distance
of the two id sets, ``(added + removed) / |old ∪ new|``; above ``MAJOR_CHANGE_SHARE`` the
version is a **major change**, which the gate can require to be evaluated in full.
The diff is recorded with each version's parents (``data.lineage``).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from prefline.data import dedup
from prefline.data.coverage import bias_stats, parse_slices

MAJOR_CHANGE_SHARE = 0.3   # share of pairs changed (Jaccard distance of the id sets) above which a version is a major change
BIAS_KEYS = ("chosen_longer", "length_ratio_mean", "chosen_refuses", "rejected_refuses", "chosen_hedges",
             "rejected_hedges", "chosen_cites", "rejected_cites")


def diff_versions(old: dict[str, Any], new: dict[str, Any], major_share: float | None = None, bias: bool = True) -> dict[str, Any]:
    """What changed from dataset version ``old`` to ``new`` (ledger rows)."""
    major_share = MAJOR_CHANGE_SHARE if major_share is None else major_share
    a, b = _columns(old), _columns(new)
    added = pc.invert(pc.is_in(b.column("id"), value_set=a.column("id")))
    removed = pc.invert(pc.is_in(a.column("id"), value_set=b.column("id")))
    n_added, n_removed = pc.sum(added).as_py() or 0, pc.sum(removed).as_py() or 0
    union = a.num_rows + n_added
    share = (n_added + n_removed) / union if union else 0.0
    out = {
        "old": _label(old, a.num_rows), "new": _label(new, b.num_rows),
        "added": n_added, "removed": n_removed, "kept": b.num_rows - n_added,
        "changed_share": round(share, 4), "major_share": major_share, "major_change": share > major_share,
        "added_ids": b.column("id").filter(added).slice(0, dedup.MAX_LISTED).to_pylist(),
        "removed_ids": a.column("id").filter(removed).slice(0, dedup.MAX_LISTED).to_pylist(),
        "by_source": _compare(_source_counts(a), _source_counts(b)),
        "by_slice": _compare(_slice_counts(a), _slice_counts(b)),
    }
    if bias:
        out["bias"] = _bias_change(old, new)
    return out


def _label(row: dict[str, Any], n: int) -> dict[str, Any]:
    return {"id": row.get("id"), "name": row.get("name"), "version": row.get("version"), "pairs": n}


def _columns(row: dict[str, Any]) -> pa.Table:
    import pyarrow.parquet as pq

    path = row["path"]
    names = pq.ParquetFile(path).schema_arrow.names
    return pq.read_table(path, columns=[c for c in ("id", "source", "slices") if c in names])


def _source_counts(table: pa.Table) -> dict[str, int]:
    if "source" not in table.column_names:
        return {"(none)": table.num_rows}
    counts = pc.value_counts(pc.fill_null(table.column("source"), "")).to_pylist()
    return {c["values"] or "(none)": c["counts"] for c in counts}


def _slice_counts(table: pa.Table) -> dict[str, int]:
    if "slices" not in table.column_names:
        return {}
    counts = pc.value_counts(pc.fill_null(table.column("slices"), "")).to_pylist()
    out: dict[str, int] = {}
    for tags, count in zip(parse_slices([c["values"] for c in counts]), (c["counts"] for c in counts)):
        for key, value in tags.items():
            out[f"{key}={value}"] = out.get(f"{key}={value}", 0) + count
    return out


def _compare(old: dict[str, int], new: dict[str, int]) -> dict[str, dict[str, int]]:
    return {k: {"old": old.get(k, 0), "new": new.get(k, 0), "change": new.get(k, 0) - old.get(k, 0)} for k in sorted(old.keys() | new.keys())}


def _bias_change(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    from prefline.data.quality import scan

    before, after = (scan(row, light=True) for row in (old, new))
    sides = {}
    for label, features in (("old", before), ("new", after)):
        stats = bias_stats(slice(None), features.chosen_words, features.rejected_words, features.markers, features.sampled)
        sides[label] = {k: stats[k] for k in BIAS_KEYS if k in stats}
    return {k: {"old": sides["old"].get(k), "new": sides["new"].get(k),
                "change": round(sides["new"][k] - sides["old"][k], 4) if k in sides["old"] and k in sides["new"] else None}
            for k in BIAS_KEYS if k in sides["old"] or k in sides["new"]}
