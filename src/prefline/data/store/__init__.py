"""Dataset versions on disk: the one writer (ingest, review import, mix, split and decontaminate all
write through :class:`VersionWriter`) and the one reader, with the Arrow schemas of their files.

The train and evals stages read versions through this package, never through ``data.ingest``.
"""

from prefline.data.store._read import (
    BATCH_ROWS, load_pairs, load_signals, message_text, pair_batches, pairs_table, require_files, row_count,
)
from prefline.data.store._schema import JSON_COLUMNS, MESSAGE_COLUMNS, SIGNAL_TEXTS, json_text, schemas, tables
from prefline.data.store._write import (
    NAME_MAX, ROW_GROUP, PairsDigest, StoredVersion, VersionWriter, check_name, move_orphan_aside, partial_folders, process_alive,
    remove_stale_partials, version_lock,
)

__all__ = [
    "BATCH_ROWS", "JSON_COLUMNS", "MESSAGE_COLUMNS", "NAME_MAX", "PairsDigest", "ROW_GROUP", "SIGNAL_TEXTS", "StoredVersion", "VersionWriter",
    "check_name", "json_text", "load_pairs", "load_signals", "message_text", "move_orphan_aside", "pair_batches",
    "pairs_table", "partial_folders", "process_alive", "remove_stale_partials", "require_files", "row_count", "schemas",
    "tables", "version_lock",
]
