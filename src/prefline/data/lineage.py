"""Lineage of dataset versions: the parents of a version, read without writing; recording them.

Every version knows where it came from (the ledger's ``dataset_lineage``): the versions it was
derived from (``mix``, ``decontaminate``, ``split``) and the previous version of its own name
(``refresh``), each with the diff against it (``diff.diff_versions``). A version written by
``prefline data ingest`` has no parents recorded, since ingest itself does not compute diffs:
:func:`backfill` records its ``refresh`` link to its previous version, and the commands that
show or act on that link (``data diff``, ``data report``, the gate, the run and adapter reports)
call it first. :func:`lineage` and :func:`parents` only read.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from prefline.data.diff import diff_versions
from prefline.data.store import ROW_GROUP, VersionWriter, check_name
from prefline.data.schema import SCHEMA_VERSION
from prefline.errors import PreflineError
from prefline.ledger import Ledger, LineageRow


def parents(ledger: Ledger, dataset_id: int) -> list[LineageRow]:
    """The recorded parents of a version (none for an ingested version not yet backfilled)."""
    return ledger.dataset_parents(dataset_id)


def lineage(ledger: Ledger, dataset: dict[str, Any]) -> dict[str, Any]:
    """A version's parents (relation, params, changed share) and its major-change flag, as recorded."""
    rows = ledger.dataset_parents(dataset["id"])
    primary = next((r for r in rows if r.is_primary), None)
    return {
        "parents": [{"dataset": f"{r.parent_name}@{r.parent_version}", "parent_id": r.parent_id, "relation": r.relation,
                     "params": r.params, "changed_share": r.changed_share, "major_change": r.major_change,
                     "added": (r.diff or {}).get("added"), "removed": (r.diff or {}).get("removed")} for r in rows],
        "major_change": primary.major_change if primary else None,
    }


def backfill(ledger: Ledger, dataset: dict[str, Any]) -> bool:
    """Record an ingested version as a ``refresh`` of the previous version of its name, when it has
    no parents yet and there is one; True when a link was recorded."""
    if dataset.get("version", 1) <= 1 or ledger.dataset_parents(dataset["id"]):
        return False
    previous = ledger.previous_dataset(dataset["name"], dataset["version"])
    if previous is None:
        return False
    record_parent(ledger, dataset, previous, "refresh", None, primary=True)
    return True


def versions_to_diff(ledger: Ledger, old: str, new: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two ledger rows ``data diff OLD [NEW]`` compares: OLD and NEW, or, without NEW, OLD's primary
    recorded parent and OLD (an ingested version's ``refresh`` parent is backfilled first)."""
    if new is not None:
        return ledger.get_dataset(old), ledger.get_dataset(new)
    child = ledger.get_dataset(old)
    backfill(ledger, child)
    recorded = parents(ledger, child["id"])
    if not recorded:
        raise PreflineError(f"dataset {child['name']}@{child['version']} has no parent; name two versions: prefline data diff A B")
    primary = next((p for p in recorded if p.is_primary), recorded[0])
    return ledger.get_dataset(str(primary.parent_id)), child


def record_parent(ledger: Ledger, dataset: dict[str, Any], parent: dict[str, Any], relation: str, params: dict[str, Any] | None,
                  primary: bool, major_share: float | None = None) -> dict[str, Any]:
    """Diff ``dataset`` against ``parent`` and store the link; returns the lineage row's values."""
    change = diff_versions(parent, dataset, major_share)
    values = {"dataset_id": dataset["id"], "parent_id": parent["id"], "relation": relation, "params": params,
              "diff": change, "changed_share": change["changed_share"], "major_change": change["major_change"],
              "is_primary": primary}
    ledger.add_lineage(**values)
    return values


def write_version(table: pa.Table, name: str, ledger: Ledger, parents: list[tuple[dict[str, Any], str, dict[str, Any]]],
                  rejects: list[dict[str, Any]] | None = None, major_share: float | None = None) -> dict[str, Any]:
    """Store ``table`` (pairs, in ingest's columns) as the next version of ``name``, with its lineage.

    ``parents`` holds (dataset row, relation, params). The previous version of ``name``, when
    there is one, is recorded too (``refresh``) and is the primary parent; otherwise the first
    listed one is. ``rejects`` (each with ``kind`` and ``reason``) go to ``rejects.jsonl``.
    """
    check_name(name)
    if table.num_rows == 0:
        raise PreflineError(f"dataset {name}: no pairs left to store")
    rejects = rejects or []
    n_duplicates = sum(1 for r in rejects if r.get("kind") == "duplicate")
    with VersionWriter(name, f"dataset {name}", keep_signals=False) as out:
        out.write(table, row_group_size=ROW_GROUP)
        for reject in rejects:
            out.removed(reject)

        def row(_final) -> dict[str, Any]:
            return {"n_read": table.num_rows + len(rejects), "n_accepted": table.num_rows, "n_duplicates": n_duplicates,
                    "n_rejected": 0, "n_excluded": len(rejects) - n_duplicates,  # removed on purpose (e.g. contaminated), not malformed
                    "n_pairs": table.num_rows,
                    "meta": {"schema_version": SCHEMA_VERSION, "format": "derived", "derived": sorted({rel for _, rel, _ in parents}),
                             "parents": [f"{p['name']}@{p['version']}" for p, _, _ in parents], "slices": out.slices}}

        stored = out.commit(ledger, row)
    dataset = ledger.get_dataset(f"{name}@{stored.version}")
    previous = ledger.previous_dataset(name, stored.version)
    links = list(parents)
    if previous is not None and previous["id"] not in {p["id"] for p, _, _ in parents}:
        links.insert(0, (previous, "refresh", None))
    primary_id = previous["id"] if previous is not None else links[0][0]["id"]
    recorded = [record_parent(ledger, dataset, parent, relation, params, parent["id"] == primary_id, major_share)
                for parent, relation, params in links]
    primary = next(r for r in recorded if r["is_primary"])
    return {"dataset": {k: dataset[k] for k in ("id", "name", "version", "content_hash", "path", "rejects_path")} | {"pairs": table.num_rows},
            "parents": [{"dataset": f"{p['name']}@{p['version']}", "relation": r["relation"], "params": r["params"],
                         "changed_share": r["changed_share"], "major_change": r["major_change"]} for (p, _, _), r in zip(links, recorded)],
            "major_change": primary["major_change"], "diff": primary["diff"], "rejects": len(rejects)}
