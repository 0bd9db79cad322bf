"""Preference data: readers, the Pair schema, and versioned datasets in the ledger."""

from prefline.data.ingest import IngestResult, ingest
from prefline.data.store import load_pairs
from prefline.data.schema import Pair, RowError, pair_from_row

__all__ = ["IngestResult", "Pair", "RowError", "ingest", "load_pairs", "pair_from_row"]
