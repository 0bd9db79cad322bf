"""Preference data: readers, the Pair schema, and versioned datasets in the ledger."""

# The signal kinds of this package: pairwise and judge live in ``signals``; ratings and events gather
# several records per signal, and review reads back the review queue, so each has a module of its own
# that registers its kind when imported. Importing any ``prefline.data`` module registers them all.
from prefline.data import events, ratings, review  # noqa: F401  (registers their signal kinds)
from prefline.data.ingest import IngestResult, ingest
from prefline.data.schema import Pair, RowError, pair_from_row
from prefline.data.store import load_pairs

__all__ = ["IngestResult", "Pair", "RowError", "ingest", "load_pairs", "pair_from_row"]
