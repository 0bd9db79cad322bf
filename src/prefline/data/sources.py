"""Readers: each turns one kind of input file into raw rows, one per record, with its location.

A reader never drops anything: a record it cannot parse comes out as a
:class:`RawRecord` with ``error`` set, so ingest can reject it with file and line.
Add a format by registering a function under a name in ``READERS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefline.errors import PreflineError


@dataclass
class RawRecord:
    line: int
    raw: str
    row: Any = None
    error: str | None = None


Reader = Callable[[Path], Iterator[RawRecord]]
READERS: dict[str, Reader] = {}


def reader(name: str) -> Callable[[Reader], Reader]:
    def register(fn: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"reader {name!r} is already registered")
        READERS[name] = fn
        return fn

    return register


@reader("jsonl")
def read_jsonl(path: Path) -> Iterator[RawRecord]:
    """One JSON object per line; blank lines are skipped (they hold no record)."""
    with open(path, "rb") as handle:
        for number, data in enumerate(handle, start=1):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(number, data.decode("utf-8", errors="replace"), error=f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not text.strip():
                continue
            try:
                yield RawRecord(number, text.rstrip("\n"), row=json.loads(text))
            except json.JSONDecodeError as exc:
                yield RawRecord(number, text.rstrip("\n"), error=f"not valid JSON ({exc.msg} at column {exc.colno})")


def reader_for(path: Path, fmt: str | None = None) -> Reader:
    """The reader named by ``fmt``, or the one matching the file's extension."""
    name = fmt or {".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
    if name is None:
        raise PreflineError(f"{path}: cannot tell the format from the extension {path.suffix!r}; pass --format ({', '.join(READERS)})")
    if name not in READERS:
        raise PreflineError(f"unknown format {name!r}; known formats: {', '.join(READERS)}")
    return READERS[name]
