"""Ingest: a file of preference rows -> a new, immutable dataset version in the ledger.

Every record read is accounted for: ``read = accepted + rejected + duplicates``.
Rejected and duplicate records are written, with their line and reason, to a
``rejects.jsonl`` beside the dataset's ``pairs.parquet``. The version folder is
written under a temporary name and renamed into place before the ledger row is added,
so an interrupted ingest leaves no dataset version behind.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefline.data.schema import SCHEMA_VERSION, Pair, RowError, pair_from_row
from prefline.data.sources import reader_for
from prefline.errors import PreflineError
from prefline.hashing import content_hash, file_hash
from prefline.home import home_dir
from prefline.ledger import Ledger

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class IngestResult:
    dataset_id: int
    name: str
    version: int
    content_hash: str
    path: str
    rejects_path: str
    n_read: int
    n_accepted: int
    n_rejected: int
    n_duplicates: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_name(name: str, what: str = "dataset") -> str:
    if not NAME_PATTERN.match(name):
        raise PreflineError(f"{what} name {name!r} must start with a letter or digit and use only letters, digits, '.', '_' or '-'")
    return name


def ingest(path: str | Path, name: str, ledger: Ledger, fmt: str | None = None, source: str | None = None) -> IngestResult:
    """Read, validate and deduplicate ``path`` and store it as the next version of ``name``."""
    path = Path(path)
    check_name(name)
    if not path.is_file():
        raise PreflineError(f"{path}: no such file")
    read = reader_for(path, fmt)
    default_source = source or path.name

    pairs: list[Pair] = []
    rejects: list[dict[str, Any]] = []
    first_line_of: dict[str, int] = {}
    n_read = n_duplicates = 0
    for record in read(path):
        n_read += 1
        reason = record.error
        pair = None
        if reason is None:
            try:
                pair = pair_from_row(record.row, default_source)
            except RowError as exc:
                reason = str(exc)
        if pair is not None and pair.id in first_line_of:
            n_duplicates += 1
            rejects.append({"line": record.line, "kind": "duplicate", "reason": f"duplicate of line {first_line_of[pair.id]}", "raw": record.raw})
            continue
        if pair is None:
            rejects.append({"line": record.line, "kind": "rejected", "reason": reason, "raw": record.raw})
            continue
        first_line_of[pair.id] = record.line
        pairs.append(pair)

    n_rejected = len(rejects) - n_duplicates
    problems = [f"{path}:{r['line']}: {r['kind']}: {r['reason']}" for r in rejects]
    if not pairs:
        detail = f"; first problem: {problems[0]}" if problems else ""
        raise PreflineError(f"{path}: no valid preference pairs among {n_read} record(s){detail}")

    version = ledger.next_dataset_version(name)
    final = home_dir("datasets", name) / f"v{version}"
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_parquet([p.to_row() for p in pairs], tmp / "pairs.parquet")
    with open(tmp / "rejects.jsonl", "w", encoding="utf-8") as handle:
        for reject in rejects:
            handle.write(json.dumps(reject, ensure_ascii=False) + "\n")
    if final.exists():  # left by a crash between rename and ledger insert
        shutil.rmtree(final)
    tmp.rename(final)

    digest = content_hash({"schema_version": SCHEMA_VERSION, "pairs": [p.id for p in pairs], "weights": [p.weight for p in pairs]})
    try:
        dataset_id = ledger.add_dataset(
            name=name, version=version, content_hash=digest,
            path=str(final / "pairs.parquet"), rejects_path=str(final / "rejects.jsonl"),
            source_file=str(path.resolve()), source_hash=file_hash(path),
            n_read=n_read, n_accepted=len(pairs), n_rejected=n_rejected, n_duplicates=n_duplicates,
            meta={"schema_version": SCHEMA_VERSION, "format": fmt or path.suffix.lstrip("."), "slices": _slice_counts(pairs)},
        )
    except Exception:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return IngestResult(
        dataset_id=dataset_id, name=name, version=version, content_hash=digest,
        path=str(final / "pairs.parquet"), rejects_path=str(final / "rejects.jsonl"),
        n_read=n_read, n_accepted=len(pairs), n_rejected=n_rejected,
        n_duplicates=n_duplicates, problems=problems,
    )


def _slice_counts(pairs: list[Pair]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for pair in pairs:
        for key, value in pair.slices.items():
            counts.setdefault(key, {}).setdefault(value, 0)
            counts[key][value] += 1
    return counts


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # slices are free-form tags: stored as JSON text so rows need not share keys.
    table = pa.Table.from_pylist([{**row, "slices": json.dumps(row["slices"], sort_keys=True)} for row in rows])
    pq.write_table(table, path)


def load_pairs(dataset: dict[str, Any]):
    """A ledger dataset row -> a Hugging Face ``datasets.Dataset`` of pairs (``slices`` as JSON text)."""
    from datasets import Dataset

    path = Path(dataset["path"])
    if not path.is_file():
        raise PreflineError(f"dataset {dataset['name']}@{dataset['version']}: its file {path} is missing")
    return Dataset.from_parquet(str(path))
