"""Dataset versions: reading their pairs, writing derived ones, their parents, the diff between
two versions, and the major-change flag.

Every version knows where it came from (the ledger's ``dataset_lineage``): the versions it
was derived from (``mix``, ``decontaminate``) and the previous version of its own name
(``refresh``), each with the diff against it. A diff counts the pairs added and removed, the
pairs per source and per slice before and after, and the change in the bias profile
(length and style-marker shares). The share of pairs that changed is the Jaccard distance
of the two id sets, ``(added + removed) / |old ∪ new|``; above ``MAJOR_CHANGE_SHARE`` the
version is a **major change**, which the gate can require to be evaluated in full.

Versions written by ``prefline data ingest`` get their ``refresh`` lineage the first time
it is asked for (``lineage``), since ingest itself does not compute diffs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from prefline.data import dedup
from prefline.data.coverage import bias_stats, parse_slices
from prefline.errors import PreflineError

MAJOR_CHANGE_SHARE = 0.3   # share of pairs changed (Jaccard distance of the id sets) above which a version is a major change
BIAS_KEYS = ("chosen_longer", "length_ratio_mean", "chosen_refuses", "rejected_refuses", "chosen_hedges",
             "rejected_hedges", "chosen_cites", "rejected_cites")
WRITE_ROWS = 1000          # rows per Parquet row group, as ingest writes them


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


def versions_to_diff(ledger, old: str, new: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two ledger rows ``data diff OLD [NEW]`` compares: OLD and NEW, or, without NEW, OLD's primary
    recorded parent and OLD (an ingested version's parent is recorded first, as ``lineage`` does)."""
    if new is not None:
        return ledger.get_dataset(old), ledger.get_dataset(new)
    child = ledger.get_dataset(old)
    lineage(ledger, child)
    recorded = parents(ledger, child["id"])
    if not recorded:
        raise PreflineError(f"dataset {child['name']}@{child['version']} has no parent; name two versions: prefline data diff A B")
    primary = next((p for p in recorded if p["is_primary"]), recorded[0])
    return ledger.get_dataset(str(primary["parent_id"])), child


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


# --- reading a version's pairs --------------------------------------------------------------


BATCH_ROWS = 4096  # small batches keep numpy's temporaries in cache: measured 2-3x faster than 100k-row batches


def pair_batches(pairs, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS):
    """Record batches of a dataset's pairs, with those of ``columns`` it has.

    ``pairs`` is a ``pairs.parquet`` path, a ledger dataset row (its ``path``), a
    ``pyarrow.Table``, a Hugging Face ``datasets.Dataset``, or a list of pair rows (dicts).
    A Parquet file is read a batch at a time, never whole.
    """
    import pyarrow.parquet as pq

    if isinstance(pairs, dict) and "path" in pairs:
        pairs = pairs["path"]
    if isinstance(pairs, (str, bytes)) or hasattr(pairs, "__fspath__"):
        handle = pq.ParquetFile(pairs)
        present = [c for c in (columns or handle.schema_arrow.names) if c in handle.schema_arrow.names]
        yield from handle.iter_batches(batch_size=batch_rows, columns=present)
        return
    table = pairs_table(pairs)
    present = [c for c in (columns or table.column_names) if c in table.column_names]
    yield from table.select(present).to_batches(max_chunksize=batch_rows)


def pairs_table(pairs) -> pa.Table:
    """A ``pyarrow.Table`` of pairs from any of the forms ``pair_batches`` reads (a Parquet file is read whole)."""
    import json

    import pyarrow.parquet as pq

    if isinstance(pairs, dict) and "path" in pairs:
        pairs = pairs["path"]
    if isinstance(pairs, (str, bytes)) or hasattr(pairs, "__fspath__"):
        return pq.read_table(pairs)
    if isinstance(pairs, pa.Table):
        return pairs
    inner = getattr(getattr(pairs, "data", None), "table", None)  # datasets.Dataset
    if isinstance(inner, pa.Table):
        return inner
    rows = [{**row, "slices": row["slices"] if isinstance(row.get("slices"), str) else json.dumps(row.get("slices") or {}, sort_keys=True)}
            for row in (r.to_row() if hasattr(r, "to_row") else r for r in pairs)]
    return pa.Table.from_pylist(rows)


def row_count(pairs) -> int:
    import pyarrow.parquet as pq

    if isinstance(pairs, dict) and "path" in pairs:
        pairs = pairs["path"]
    if isinstance(pairs, (str, bytes)) or hasattr(pairs, "__fspath__"):
        return pq.ParquetFile(pairs).metadata.num_rows
    return pairs_table(pairs).num_rows


def message_text(column: pa.Array | pa.ChunkedArray, role: str | None = None) -> pa.Array:
    """The content of each row's last message (of ``role``, if given), or the string itself for plain-text columns.

    Rows are message lists (``[{"role", "content"}, ...]``) as ingest stores them. With a
    ``role``, a row with no message of that role gives an empty string.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.fill_null(column, "")
    offsets = column.offsets.to_numpy()
    values = column.values
    content = pc.fill_null(pc.struct_field(values, "content"), "")
    if role is None:
        last = offsets[1:] - 1
    else:
        matches = np.flatnonzero(pc.fill_null(pc.equal(pc.struct_field(values, "role"), role), False).to_numpy(zero_copy_only=False))
        # the last matching message at or before each row's end
        at = np.searchsorted(matches, offsets[1:], side="left") - 1
        last = np.where(at >= 0, matches[np.maximum(at, 0)], -1)
        last = np.where(last >= offsets[:-1], last, -1)
    out = content.take(pa.array(np.maximum(last, 0)))
    if (last < 0).any():
        out = pc.if_else(pa.array(last >= 0), out, "")
    return out


# --- lineage in the ledger ------------------------------------------------------------------


def record_parent(ledger, dataset: dict[str, Any], parent: dict[str, Any], relation: str, params: dict[str, Any] | None,
                  primary: bool, major_share: float | None = None) -> dict[str, Any]:
    """Diff ``dataset`` against ``parent`` and store the link; returns the lineage row."""
    change = diff_versions(parent, dataset, major_share)
    values = {"dataset_id": dataset["id"], "parent_id": parent["id"], "relation": relation, "params": params,
              "diff": change, "changed_share": change["changed_share"], "major_change": change["major_change"],
              "is_primary": primary}
    ledger._insert("dataset_lineage", created_at=_now(), **values)
    return values


def parents(ledger, dataset_id: int) -> list[dict[str, Any]]:
    t, d = ledger.t["dataset_lineage"], ledger.t["datasets"]
    query = (sa.select(t, d.c.name.label("parent_name"), d.c.version.label("parent_version"))
             .join(d, d.c.id == t.c.parent_id).where(t.c.dataset_id == dataset_id).order_by(t.c.id))
    return ledger._rows(query)


def lineage(ledger, dataset: dict[str, Any], backfill: bool = True) -> dict[str, Any]:
    """A version's parents (relation, params, changed share) and its major-change flag.

    A version with no recorded parents whose name has an earlier version is recorded now as a
    ``refresh`` of it (``backfill``): that is how ingested versions get their diff.
    """
    rows = parents(ledger, dataset["id"])
    if not rows and backfill and dataset.get("version", 1) > 1:
        previous = _previous(ledger, dataset)
        if previous is not None:
            record_parent(ledger, dataset, previous, "refresh", None, primary=True)
            rows = parents(ledger, dataset["id"])
    primary = next((r for r in rows if r["is_primary"]), None)
    return {
        "parents": [{"dataset": f"{r['parent_name']}@{r['parent_version']}", "parent_id": r["parent_id"], "relation": r["relation"],
                     "params": r["params"], "changed_share": r["changed_share"], "major_change": r["major_change"],
                     "added": (r["diff"] or {}).get("added"), "removed": (r["diff"] or {}).get("removed")} for r in rows],
        "major_change": primary["major_change"] if primary else None,
    }


def _previous(ledger, dataset: dict[str, Any]) -> dict[str, Any] | None:
    t = ledger.t["datasets"]
    return ledger._one(sa.select(t).where(t.c.name == dataset["name"], t.c.version < dataset["version"])
                       .order_by(t.c.version.desc()).limit(1))


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(tzinfo=None)


# --- writing a derived version -----------------------------------------------------------------


def write_version(table: pa.Table, name: str, ledger, parents: list[tuple[dict[str, Any], str, dict[str, Any]]],
                  rejects: list[dict[str, Any]] | None = None, major_share: float | None = None) -> dict[str, Any]:
    """Store ``table`` (pairs, in ingest's columns) as the next version of ``name``, with its lineage.

    ``parents`` holds (dataset row, relation, params). The previous version of ``name``, when
    there is one, is recorded too (``refresh``) and is the primary parent; otherwise the first
    listed one is. ``rejects`` (each with ``kind`` and ``reason``) go to ``rejects.jsonl``.
    """
    import pyarrow.parquet as pq

    from prefline.data.ingest import check_name, move_orphan_aside, version_lock
    from prefline.data.schema import SCHEMA_VERSION
    from prefline.hashing import content_hash
    from prefline.home import home_dir

    check_name(name)
    if table.num_rows == 0:
        raise PreflineError(f"dataset {name}: no pairs left to store")
    rejects = rejects or []
    with version_lock(name):  # the number, the folder and the ledger row, as one step against other writers
        previous = _previous(ledger, {"name": name, "version": ledger.next_dataset_version(name)})
        version = ledger.next_dataset_version(name)
        final = home_dir("datasets", name) / f"v{version}"
        tmp = Path(tempfile.mkdtemp(prefix=f".ingest-{os.getpid()}-", suffix=".partial", dir=final.parent))
        try:
            pq.write_table(table, tmp / "pairs.parquet", row_group_size=WRITE_ROWS)
            with open(tmp / "rejects.jsonl", "w", encoding="utf-8") as handle:
                for reject in rejects:
                    handle.write(json.dumps(reject, ensure_ascii=False) + "\n")
            move_orphan_aside(final)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

        ids = table.column("id").to_pylist()
        weights = table.column("weight").to_pylist() if "weight" in table.column_names else [1.0] * len(ids)
        kinds = [r.get("kind") for r in rejects]
        values = {
            "name": name, "version": version, "content_hash": content_hash({"schema_version": SCHEMA_VERSION, "pairs": ids, "weights": weights}),
            "path": str(final / "pairs.parquet"), "rejects_path": str(final / "rejects.jsonl"),
            "n_read": len(ids) + len(rejects), "n_accepted": len(ids), "n_duplicates": kinds.count("duplicate"),
            "n_rejected": len(rejects) - kinds.count("duplicate"),
            "meta": {"schema_version": SCHEMA_VERSION, "format": "derived", "derived": sorted({rel for _, rel, _ in parents}),
                     "parents": [f"{p['name']}@{p['version']}" for p, _, _ in parents],
                     "slices": _nested(_slice_counts(table))},
        }
        columns = ledger.t["datasets"].c
        if "n_pairs" in columns:
            values["n_pairs"] = len(ids)
        if "n_excluded" in columns:  # removed on purpose (e.g. contaminated), not malformed
            values["n_excluded"] = values["n_rejected"]
            values["n_rejected"] = 0
        try:
            dataset_id = ledger.add_dataset(**values)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)  # the folder this call made
            raise
    dataset = {**values, "id": dataset_id}
    links = [(parent, relation, params) for parent, relation, params in parents]
    if previous is not None and previous["id"] not in {p["id"] for p, _, _ in parents}:
        links.insert(0, (previous, "refresh", None))
    primary_id = previous["id"] if previous is not None else links[0][0]["id"]
    recorded = [record_parent(ledger, dataset, parent, relation, params, parent["id"] == primary_id, major_share)
                for parent, relation, params in links]
    primary = next(r for r in recorded if r["is_primary"])
    return {"dataset": {k: dataset[k] for k in ("id", "name", "version", "content_hash", "path", "rejects_path")} | {"pairs": len(ids)},
            "parents": [{"dataset": f"{p['name']}@{p['version']}", "relation": r["relation"], "params": r["params"],
                         "changed_share": r["changed_share"], "major_change": r["major_change"]} for (p, _, _), r in zip(links, recorded)],
            "major_change": primary["major_change"], "diff": primary["diff"], "rejects": len(rejects)}


def _nested(flat: dict[str, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for label, count in flat.items():
        key, _, value = label.partition("=")
        out.setdefault(key, {})[value] = count
    return out
