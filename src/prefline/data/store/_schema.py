"""The Arrow schemas of a dataset version's files, and rows -> Arrow tables in those schemas.

``pairs.parquet`` holds one row per pair: TRL's conversational columns (``prompt``,
``chosen``, ``rejected`` as message lists) with the pair's ``id``, ``slices``, ``source``,
``weight`` and how consensus made it (``confidence``, ``consensus``, ``rule``, ``n_signals``,
``axes``, ``signals``, ``key``). ``signals.parquet`` holds every signal a version was built
from. ``slices``, ``axes`` and ``signals`` are JSON text, so rows need not share keys.
"""

from __future__ import annotations

import json
from typing import Any

from prefline.data.schema import Signal

MESSAGE_COLUMNS = ("prompt", "chosen", "rejected", "a", "b")
SIGNAL_TEXTS = ("prompt", "a", "b")  # a signal's messages: columns of signals.parquet, not part of its JSON text
JSON_COLUMNS = ("slices", "axes", "signals")


def schemas():
    """(pairs schema, signals schema): the columns of ``pairs.parquet`` and ``signals.parquet``."""
    import pyarrow as pa

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    pairs = pa.schema([("id", pa.string()), ("prompt", messages), ("chosen", messages), ("rejected", messages),
                       ("slices", pa.string()), ("source", pa.string()), ("weight", pa.float64()),
                       ("confidence", pa.float64()), ("consensus", pa.string()), ("rule", pa.string()),
                       ("n_signals", pa.int64()), ("axes", pa.string()), ("signals", pa.string()), ("key", pa.string())])
    signals = pa.schema([("key", pa.string()), ("label", pa.string()), ("kind", pa.string()), ("rule", pa.string()),
                         ("source", pa.string()), ("annotator", pa.string()), ("confidence", pa.float64()),
                         ("excluded", pa.string()), ("signal", pa.string()), ("prompt", messages), ("a", messages), ("b", messages)])
    return pairs, signals


def json_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A pair row with ``slices``, ``axes`` and ``signals`` as JSON text, as ``pairs.parquet`` stores them."""
    return {**row, **{name: json.dumps(row[name], sort_keys=True, ensure_ascii=False) for name in JSON_COLUMNS}}


def tables(rows: list[dict[str, Any]], signals: list[Signal] | None):
    """Pair rows (as ``consensus.pair_row`` makes them) and signals -> the Arrow tables of
    ``pairs.parquet`` and ``signals.parquet`` (None without signals)."""
    pairs_schema, signals_schema = schemas()
    return (_table([json_columns(row) for row in rows], pairs_schema),
            _table([_signal_columns(s) for s in signals], signals_schema) if signals is not None else None)


def _messages_column(values: list[list[dict[str, str]]]):
    """Message lists as an Arrow list-of-struct column, built from flat role and content arrays
    (converting the dicts one by one costs ten times as much)."""
    import pyarrow as pa

    roles, contents, offsets = [], [], [0]
    for messages in values:
        for message in messages:
            roles.append(message["role"])
            contents.append(message["content"])
        offsets.append(len(roles))
    items = pa.StructArray.from_arrays([pa.array(roles, pa.string()), pa.array(contents, pa.string())], names=["role", "content"])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items)


def _table(rows: list[dict[str, Any]], schema):
    import pyarrow as pa

    columns = {}
    for column in schema:
        values = [row[column.name] for row in rows]
        columns[column.name] = _messages_column(values) if column.name in MESSAGE_COLUMNS else pa.array(values, column.type)
    return pa.Table.from_pydict(columns, schema=schema)


def _signal_columns(signal: Signal) -> dict[str, Any]:
    """A signal's searchable fields and its messages as columns, and the rest of it as JSON text (``signal``)."""
    fields = signal.to_row()
    rest = {name: value for name, value in fields.items() if name not in SIGNAL_TEXTS}
    return {"key": signal.key, "label": signal.label, "kind": signal.kind, "rule": signal.rule, "source": signal.source,
            "annotator": signal.annotator, "confidence": signal.confidence,
            "excluded": signal.excluded["category"] if signal.excluded else None,
            "signal": json.dumps(rest, ensure_ascii=False, sort_keys=True), **{name: fields[name] for name in SIGNAL_TEXTS}}
