"""The Arrow schemas of a dataset version's files, and pairs and signals -> Arrow tables in those schemas.

``pairs.parquet`` holds one row per pair, its columns the fields of :class:`prefline.data.schema.Pair`
in their order (the schema is built from that definition): TRL's conversational columns (``prompt``,
``chosen``, ``rejected`` as message lists) with the pair's ``id``, ``slices``, ``source``, ``weight``
and how consensus made it (``confidence``, ``consensus``, ``rule``, ``n_signals``, ``axes``,
``signals``, ``key``). ``signals.parquet`` holds every signal a version was built from. ``slices``,
``axes`` and ``signals`` are JSON text, so rows need not share keys.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import fields
from functools import cache
from typing import Any

from prefline.data.schema import Messages, Pair, Signal

SIGNAL_TEXTS = ("prompt", "a", "b")  # a signal's messages: columns of signals.parquet, not part of its JSON text
_PAIR_TYPES = typing.get_type_hints(Pair)
# the message columns of both files, and the Pair fields stored as JSON text (its other dicts and lists)
MESSAGE_COLUMNS = tuple(name for name, hint in _PAIR_TYPES.items() if hint == Messages) + ("a", "b")
JSON_COLUMNS = tuple(name for name, hint in _PAIR_TYPES.items() if hint != Messages and typing.get_origin(hint) in (dict, list))


def _messages_type():
    import pyarrow as pa

    return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def _column_type(hint: Any):
    """The Arrow type of a Pair field's type: Messages -> list of structs, another dict or list -> JSON text."""
    import pyarrow as pa

    if isinstance(hint, types.UnionType):  # X | None: every column is nullable anyway
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if hint == Messages:
        return _messages_type()
    if typing.get_origin(hint) in (dict, list):
        return pa.string()
    return {str: pa.string(), float: pa.float64(), int: pa.int64()}[hint]


@cache
def schemas():
    """(pairs schema, signals schema): the columns of ``pairs.parquet`` and ``signals.parquet``."""
    import pyarrow as pa

    pairs = pa.schema([(f.name, _column_type(_PAIR_TYPES[f.name])) for f in fields(Pair)])
    messages = _messages_type()
    signals = pa.schema([("key", pa.string()), ("label", pa.string()), ("kind", pa.string()), ("rule", pa.string()),
                         ("source", pa.string()), ("annotator", pa.string()), ("confidence", pa.float64()),
                         ("excluded", pa.string()), ("signal", pa.string()), ("prompt", messages), ("a", messages), ("b", messages)])
    return pairs, signals


def json_text(value: Any) -> str:
    """A JSON column's text, as ``pairs.parquet`` stores it."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def tables(pairs: list[Pair], signals: list[Signal] | None):
    """Pairs and signals -> the Arrow tables of ``pairs.parquet`` and ``signals.parquet`` (None without signals)."""
    pairs_schema, signals_schema = schemas()
    pair_columns = {name: [getattr(pair, name) for pair in pairs] for name in pairs_schema.names}
    for name in JSON_COLUMNS:
        pair_columns[name] = [json_text(value) for value in pair_columns[name]]
    signal_rows = [_signal_columns(s) for s in signals] if signals is not None else None
    return (_table(pair_columns, pairs_schema),
            _table({name: [row[name] for row in signal_rows] for name in signals_schema.names}, signals_schema)
            if signal_rows is not None else None)


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


def _table(columns: dict[str, list], schema):
    import pyarrow as pa

    messages = _messages_type()
    arrays = {column.name: _messages_column(columns[column.name]) if column.type == messages else pa.array(columns[column.name], column.type)
              for column in schema}
    return pa.Table.from_pydict(arrays, schema=schema)


def _signal_columns(signal: Signal) -> dict[str, Any]:
    """A signal's searchable fields and its messages as columns, and the rest of it as JSON text (``signal``)."""
    fields = signal.to_row()
    rest = {name: value for name, value in fields.items() if name not in SIGNAL_TEXTS}
    return {"key": signal.key, "label": signal.label, "kind": signal.kind, "rule": signal.rule, "source": signal.source,
            "annotator": signal.annotator, "confidence": signal.confidence,
            "excluded": signal.excluded["category"] if signal.excluded else None,
            "signal": json.dumps(rest, ensure_ascii=False, sort_keys=True), **{name: fields[name] for name in SIGNAL_TEXTS}}
