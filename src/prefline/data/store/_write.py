"""Writing a dataset version: the one writer used by ingest, review import, mix, split and decontaminate.

A version is written in a temporary folder (``.ingest-PID-*.partial``) beside the versions and
renamed into place before the ledger row is added; leaving the writer without committing (an
error, Ctrl-C, SIGTERM) removes it, so an interrupted write leaves no version behind. A process
killed outright (SIGKILL) cannot clean up: the next write removes temporary folders whose process
is gone, and ``prefline doctor`` reports them. Version numbers are allocated under a lock file per
dataset name, and a number another ledger client recorded first is skipped, so concurrent writers
into one name each get their own version and never touch each other's folders.

The content hash and the slice counts are computed here, as pairs are written, for every kind of
version alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefline.data.schema import SCHEMA_VERSION
from prefline.data.store._schema import schemas
from prefline.errors import PreflineError
from prefline.home import home_dir
from prefline.ledger import Ledger, VersionTaken

NAME_MAX = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ROW_GROUP = 1000  # rows per Parquet row group of a version written from one table


def check_name(name: str, what: str = "dataset") -> str:
    """A name that is safe as a folder name: the whole string matches (a trailing newline does not slip through)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise PreflineError(f"{what} name {name!r} must start with a letter or digit and use only letters, digits, '.', '_' or '-'")
    if len(name) > NAME_MAX:
        raise PreflineError(f"{what} name is {len(name)} characters long; the limit is {NAME_MAX}")
    return name


class PairsDigest:
    """A version's content hash, ``content_hash({"schema_version", "pairs": ids, "weights": weights})``,
    fed as pairs are written: ids go straight into the hash (the canonical JSON lists them first),
    weights wait in an array of doubles."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256(b'{"pairs":[')
        self.weights = array("d")

    def add(self, ids: list[str], weights: list[float]) -> None:
        separator = "," if self.weights else ""
        self.hash.update((separator + ",".join(json.dumps(i, ensure_ascii=False) for i in ids)).encode("utf-8"))
        self.weights.extend(weights)

    def hexdigest(self) -> str:
        tail = f'],"schema_version":{SCHEMA_VERSION},"weights":[' + ",".join(map(json.dumps, self.weights)) + "]}"
        self.hash.update(tail.encode("utf-8"))
        return self.hash.hexdigest()


@dataclass(frozen=True)
class StoredVersion:
    """A version once committed: its ledger id, number, content hash and folder."""

    dataset_id: int
    name: str
    version: int
    content_hash: str
    folder: Path

    @property
    def path(self) -> str:
        return str(self.folder / "pairs.parquet")

    @property
    def rejects_path(self) -> str:
        return str(self.folder / "rejects.jsonl")


class VersionWriter:
    """A dataset version being written: pairs, signals and rejects go to their files a batch at a time,
    in a temporary folder beside the versions. :meth:`commit` renames it to ``vN`` and adds the ledger
    row; leaving the ``with`` block without committing (an error, an interrupt) removes it.

    Without ``keep_signals`` (plain pairs, no consensus, or a version derived from others) there is
    no signals.parquet: each pair is its one signal, and ``load_signals`` reads it back from
    pairs.parquet. ``origin`` names where the records came from, in problems and errors.
    """

    def __init__(self, name: str, origin: Path | str, keep_signals: bool = True) -> None:
        self.name, self.path, self.keep_signals = name, origin, keep_signals
        self.n_read = self.n_accepted = self.n_pairs = 0
        self.counts: Counter = Counter()      # rejected / duplicate / excluded
        self.excluded: Counter = Counter()    # exclusion category -> records
        self.problems: list[str] = []
        self.slices: dict[str, dict[str, int]] = {}
        self.digest = PairsDigest()
        self.committed = False
        self.pairs_file = self.signals_file = None

    def __enter__(self) -> "VersionWriter":
        import pyarrow.parquet as pq

        root = home_dir("datasets", self.name)
        self.problems.extend(f"removed {folder}: the temporary folder of an ingest that was killed" for folder in remove_stale_partials())
        self.folder = Path(tempfile.mkdtemp(prefix=f".ingest-{os.getpid()}-", suffix=".partial", dir=root))
        _, signals = schemas()
        self.signals_file = pq.ParquetWriter(self.folder / "signals.parquet", signals) if self.keep_signals else None
        self.rejects_file = open(self.folder / "rejects.jsonl", "w", encoding="utf-8")
        return self

    def __exit__(self, *exc_info) -> None:
        self._close()
        if not self.committed:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _close(self) -> None:
        for handle in (self.pairs_file, self.signals_file, self.rejects_file):
            if handle is not None:
                handle.close()

    def write(self, pairs, signals=None, row_group_size: int | None = None) -> None:
        """A batch of pairs and one of signals (``pyarrow`` tables, as ``tables`` makes them; no signals without ``keep_signals``).

        The pairs file takes the columns of the first batch written (a derived version keeps its parents' columns).
        """
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if self.pairs_file is None:
            self.pairs_file = pq.ParquetWriter(self.folder / "pairs.parquet", pairs.schema)
        if pairs.num_rows:
            self.pairs_file.write_table(pairs, row_group_size=row_group_size)
            weights = pairs.column("weight").to_pylist() if "weight" in pairs.column_names else [1.0] * pairs.num_rows
            self.digest.add(pairs.column("id").to_pylist(), weights)
            if "slices" in pairs.column_names:
                for item in pc.value_counts(pc.fill_null(pairs.column("slices"), "{}")).to_pylist():  # a few distinct tag sets
                    for key, value in (json.loads(item["values"] or "{}") or {}).items():
                        per_key = self.slices.setdefault(key, {})
                        per_key[value] = per_key.get(value, 0) + item["counts"]
            self.n_pairs += pairs.num_rows
        if self.keep_signals and signals is not None and signals.num_rows:
            self.signals_file.write_table(signals)

    def reject(self, fate, raw: str | None) -> None:
        """A record not accepted (a ``Fate``): to rejects.jsonl (in line order), counted, and named in ``problems``."""
        self.rejects_file.write(json.dumps({"line": fate.line, "kind": fate.kind, "category": fate.category, "reason": fate.reason,
                                            "raw": raw}, ensure_ascii=False) + "\n")
        self.counts[fate.kind] += 1
        if fate.kind == "excluded":
            self.excluded[fate.category] += 1
        self.problems.append(f"{self.path}:{fate.line}: {fate.kind}: {fate.reason}")

    def removed(self, row: dict[str, Any]) -> None:
        """A pair a derived version leaves out, as given (with its ``kind`` and ``reason``), to rejects.jsonl."""
        self.rejects_file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.counts["duplicate" if row.get("kind") == "duplicate" else "excluded"] += 1

    def add_file(self, name: str, rows) -> str:
        """Another JSONL file in the version's folder (a judge's audit); returns its name."""
        with open(self.folder / name, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return name

    def require_pairs(self) -> None:
        """A one-line error naming the first problem when nothing written made a pair."""
        if not self.n_pairs:
            detail = f"; first problem: {self.problems[0]}" if self.problems else ""
            raise PreflineError(f"{self.path}: no valid preference pairs among {self.n_read} record(s){detail}")

    def commit(self, ledger: Ledger, row: Callable[[Path], dict[str, Any]]) -> StoredVersion:
        """Close the files, rename the folder to the next version and record it in the ledger.

        ``row(final_folder)`` gives the ledger row's other columns (counts, ``meta``, source);
        the name, version, content hash and paths are the writer's.
        """
        self.require_pairs()
        self._close()
        digest = self.digest.hexdigest()
        with version_lock(self.name):
            for _ in range(100):
                version = ledger.next_dataset_version(self.name)
                final = self.folder.with_name(f"v{version}")
                aside = move_orphan_aside(final)
                if aside is not None:
                    self.problems.append(f"moved {final} aside to {aside}: it had no ledger row (left by an interrupted ingest)")
                self.folder.rename(final)
                try:
                    dataset_id = ledger.add_dataset(name=self.name, version=version, content_hash=digest,
                                                    path=str(final / "pairs.parquet"), rejects_path=str(final / "rejects.jsonl"),
                                                    **row(final))
                except VersionTaken:  # another ledger client (another machine) took the number: try the next
                    final.rename(self.folder)
                    continue
                except BaseException:
                    final.rename(self.folder)  # the with block removes it
                    raise
                break
            else:
                raise PreflineError(f"dataset {self.name}: could not allocate a version number after 100 tries")
        self.committed = True
        return StoredVersion(dataset_id, self.name, version, digest, final)


# --- folders ---------------------------------------------------------------------------------------

_PARTIAL = re.compile(r"^\.ingest-(\d+)-.*\.partial$")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def partial_folders() -> list[tuple[Path, int | None]]:
    """Temporary folders of writes in progress or killed: (folder, the writing process id, None if unknown)."""
    root = home_dir("datasets")
    found = []
    for folder in sorted(root.glob("*/.ingest-*.partial")):
        match = _PARTIAL.match(folder.name)
        found.append((folder, int(match.group(1)) if match else None))
    return found


@contextmanager
def version_lock(name: str) -> Iterator[None]:
    """Held while a dataset version's number is chosen, its folder renamed into place and its ledger row added."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(home_dir("locks") / f"dataset-{name}.lock"), timeout=300)
    try:
        with lock:
            yield
    except Timeout:
        raise PreflineError(f"dataset {name}: another process held its version lock for 5 minutes ({lock.lock_file})") from None


def move_orphan_aside(final: Path) -> Path | None:
    """A version folder the ledger does not list (its writer was killed between rename and insert) is
    renamed ``.orphan-vN-...`` rather than deleted or overwritten; ``prefline doctor`` lists it."""
    if not final.exists():
        return None
    aside = final.with_name(f".orphan-{final.name}-{os.getpid()}-{int(time.time())}")
    final.rename(aside)
    return aside


def remove_stale_partials() -> list[Path]:
    """Remove the temporary folders whose writing process is gone (killed outright); return them."""
    removed = []
    for folder, pid in partial_folders():
        if pid is not None and pid != os.getpid() and not process_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
