"""Readers: each turns one kind of input file into raw rows, one per record, with its location.

A reader never drops anything: a record it cannot parse comes out as a
:class:`RawRecord` with ``error`` set, so ingest can reject it with file and line.
Readers stream: they hold one record at a time, and a record longer than
``ReadOptions.max_row_bytes`` is skipped over (reported, never loaded whole).
Add a format by registering a function under a name in ``READERS``.

Containers: ``jsonl``, ``csv``, ``parquet``. Layouts read through a container:
``hh-rlhf`` (Anthropic's transcripts) and ``ultrafeedback`` (an instruction with
several rated completions). TRL's conversational and standard forms need no reader
of their own: they are what a ``jsonl``/``csv``/``parquet`` row of pairs already is.

(A little over 400 lines: one reader per format, each short, kept together with the registry
that names them so a new format is added in one place.)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefline.data.schema import RowError, hh_messages, require, split_shared_prefix
from prefline.errors import PreflineError
from prefline.registry import Registry

DEFAULT_MAX_ROW_BYTES = 4 * 1024 * 1024


@dataclass
class RawRecord:
    line: int
    raw: str
    row: Any = None
    error: str | None = None


@dataclass(frozen=True)
class ReadOptions:
    """How readers treat their input (``limits`` in an ingest rules file)."""

    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES  # a record larger than this is rejected unread


Reader = Callable[[Path, ReadOptions], Iterator[RawRecord]]
READERS: Registry[Reader] = Registry("reader")
# The signal kind a layout implies when --signal is not given.
DEFAULT_SIGNAL: dict[str, str] = {"ultrafeedback": "ratings"}
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_RAW_KEPT = 2000  # characters of an oversized record kept in the rejects file
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark, written first by some spreadsheet exports
MAX_DEPTH = 64  # deepest nesting of lists and objects a record may have


def reader(name: str) -> Callable[[Reader], Reader]:
    """Register a reader of one file format or layout under ``name`` (``--format NAME``)."""
    return READERS.decorator(name)


def _oversized(number: int, size: int, head: bytes, options: ReadOptions) -> RawRecord:
    return RawRecord(number, head[:_RAW_KEPT].decode("utf-8", errors="replace") + " ...",
                     error=f"row is {size} bytes, over the limit of {options.max_row_bytes} (limits.max_row_bytes)")


def _lines(handle, options: ReadOptions) -> Iterator[tuple[int, bytes | None, int, bytes]]:
    """(line number, bytes or None when oversized, size, head) for each line, reading at most the limit at once."""
    number = 0
    while True:
        data = handle.readline(options.max_row_bytes + 1)
        if not data:
            return
        number += 1
        if number == 1 and data.startswith(_BOM):  # a byte-order mark opens the file, not its first record
            data = data[len(_BOM):]
        if len(data) > options.max_row_bytes and not data.endswith(b"\n"):
            size, head = len(data), data[:_RAW_KEPT]
            while data and not data.endswith(b"\n"):  # skip the rest of the line without keeping it
                data = handle.readline(1 << 20)
                size += len(data)
            yield number, None, size, head
            continue
        yield number, data, len(data), data


@reader("jsonl")
def read_jsonl(path: Path, options: ReadOptions = ReadOptions()) -> Iterator[RawRecord]:
    """One JSON object per line; blank lines are skipped (they hold no record)."""
    with open(path, "rb") as handle:
        for number, data, size, head in _lines(handle, options):
            if data is None:
                yield _oversized(number, size, head, options)
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(number, data.decode("utf-8", errors="replace"), error=f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRecord(number, text.rstrip("\n"), error=json_error(exc, text))
                continue
            except RecursionError:
                yield RawRecord(number, _head(text), error=f"nested deeper than {MAX_DEPTH} levels")
                continue
            problem = _too_deep(text, row) or _lone_surrogate(text, row)
            yield RawRecord(number, text.rstrip("\n"), error=problem) if problem else RawRecord(number, text.rstrip("\n"), row=row)


def jsonl_texts(path: Path, options: ReadOptions = ReadOptions()) -> Iterator[RawRecord]:
    """The lines of a JSONL file as :func:`read_jsonl` numbers them, with their text and without parsing it:
    finding the text of some valid records again costs a tenth of reading the file (the text of a line
    that fails to decode or is oversized differs from read_jsonl's; it was rejected on the first read)."""
    with open(path, "rb") as handle:
        for number, data, _, _ in _lines(handle, options):
            if data is not None and data.strip():
                yield RawRecord(number, data.decode("utf-8", errors="replace").rstrip("\n"))


def json_error(exc: json.JSONDecodeError, text: str) -> str:
    """A JSON error, placed where it is: a line cut short is "ends before its closing '}'", not an error at column 1."""
    body = text.rstrip()
    if exc.pos >= len(body):
        closers = {"{": "}", "[": "]"}
        opened = body.lstrip()[:1]
        if opened in closers:
            return f"not valid JSON: the line ends before its closing {closers[opened]!r} (cut short?)"
        return "not valid JSON: the line ends in the middle of a value (cut short?)"
    return f"not valid JSON ({exc.msg} at column {exc.colno})"


def _head(text: str) -> str:
    return text[:_RAW_KEPT] + (" ..." if len(text) > _RAW_KEPT else "")


def depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def _too_deep(text: str, row: Any) -> str | None:
    """Rows nested deeper than MAX_DEPTH are rejected (later steps recurse through them)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # cannot nest that deep: skip the walk for almost every row
        return None
    return f"nested deeper than {MAX_DEPTH} levels" if depth(row) > MAX_DEPTH else None


def _lone_surrogate(text: str, row: Any) -> str | None:
    """JSON may escape half of a UTF-16 surrogate pair (``"\\ud800"``): valid JSON, but no text."""
    if "\\ud" not in text.lower():  # only an escape can produce one: skip the check for almost every row
        return None
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid text: a lone surrogate escape (\\u{ord(exc.object[exc.start]):04x}) that no character matches"
    return None


# --- CSV -----------------------------------------------------------------------------------

# Cells of these columns may hold a JSON list of messages instead of plain text.
MESSAGE_COLUMNS = {"prompt", "chosen", "rejected", "response_a", "response_b", "response", "text"}
# Cells of these columns (and of any column under "ratings.") are numbers.
NUMBER_COLUMNS = {"weight", "confidence", "rating", "score"}


def _cell(column: str, value: str) -> Any:
    if column in MESSAGE_COLUMNS and value.lstrip().startswith("[{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        except RecursionError:
            raise RowError(f"column {column!r} is nested deeper than {MAX_DEPTH} levels") from None
        return parsed if isinstance(parsed, list) else value
    if column in NUMBER_COLUMNS or column.startswith("ratings."):
        try:
            number = float(value)
        except ValueError:
            return value  # left as text: the validator names the field and the bad value
        return int(number) if number.is_integer() and "." not in value else number
    return value


def csv_row(header: list[str], cells: list[str]) -> dict[str, Any]:
    """Cells -> a row like a JSONL one: ``slices.intent`` columns nest, empty optional cells are absent."""
    row: dict[str, Any] = {}
    for column, value in zip(header, cells):
        head, dot, rest = column.partition(".")
        if dot:
            if value != "":
                row.setdefault(head, {})[rest] = _cell(column, value)
        elif value != "" or column in MESSAGE_COLUMNS:
            row[column] = _cell(column, value)
    return row


class _LineFeed:
    """Feeds decoded lines to ``csv.reader`` and keeps the ones of the current record, for its raw text."""

    def __init__(self, handle, options: ReadOptions):
        self.lines = _lines(handle, options)
        self.number = 0
        self.buffer: list[str] = []
        self.problem: str | None = None
        self.options = options

    def __iter__(self):
        return self

    def __next__(self) -> str:
        number, data, size, head = next(self.lines)
        self.number = number
        if data is None:
            self.problem = self.problem or _oversized(number, size, head, self.options).error
            data = b"\n"  # a blank line keeps the CSV parser in step
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problem = self.problem or f"not valid UTF-8 ({exc.reason} at byte {exc.start} of line {number})"
            text = data.decode("utf-8", errors="replace")
        self.buffer.append(text)
        return text

    def take(self) -> tuple[str, str | None]:
        raw, problem = "".join(self.buffer).rstrip("\r\n"), self.problem
        self.buffer, self.problem = [], None
        return raw, problem


@reader("csv")
def read_csv(path: Path, options: ReadOptions = ReadOptions()) -> Iterator[RawRecord]:
    """A header row, then one record per row (quoted cells may span lines); ``line`` is where a record starts."""
    csv.field_size_limit(max(options.max_row_bytes, 131072))
    with open(path, "rb") as handle:
        feed = _LineFeed(handle, options)
        rows = csv.reader(feed, strict=True)
        try:
            header = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise PreflineError(f"{path}:1: cannot read the CSV header ({exc})") from exc
        _, problem = feed.take()
        if problem:
            raise PreflineError(f"{path}:1: cannot read the CSV header ({problem})")
        header = [h.strip().removeprefix("\ufeff") for h in header]
        if len(set(header)) != len(header):
            raise PreflineError(f"{path}:1: the CSV header repeats a column name: {', '.join(header)}")
        start = feed.number + 1
        while True:
            try:
                cells = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                raw, _ = feed.take()
                yield RawRecord(start, raw, error=f"not valid CSV ({exc}); the file may be cut short")
                return
            raw, problem = feed.take()
            line, start = start, feed.number + 1
            if not cells and problem is None:
                continue  # a blank line holds no record
            if problem:
                yield RawRecord(line, raw, error=problem)
            elif len(cells) != len(header):
                which = "short" if len(cells) < len(header) else "long"
                yield RawRecord(line, raw, error=f"row has {len(cells)} cells but the header has {len(header)} (a {which} or cut row)")
            else:
                try:
                    row = csv_row(header, cells)
                except RowError as exc:
                    yield RawRecord(line, raw[:_RAW_KEPT], error=str(exc))
                    continue
                problem = _too_deep(raw, row)
                yield RawRecord(line, raw, error=problem) if problem else RawRecord(line, raw, row=row)


# --- Parquet ---------------------------------------------------------------------------------


@reader("parquet")
def read_parquet(path: Path, options: ReadOptions = ReadOptions()) -> Iterator[RawRecord]:
    """One record per table row, read in batches; ``line`` is the row number (1-based)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise PreflineError(f"{path}: not a readable Parquet file ({exc})") from exc
    number = 0
    for batch in table.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            number += 1
            raw = json.dumps(row, ensure_ascii=False, default=str)
            if len(raw.encode("utf-8")) > options.max_row_bytes:
                yield _oversized(number, len(raw.encode("utf-8")), raw.encode("utf-8"), options)
                continue
            # a missing value is a null cell, and a struct column (slices, axes) has every row's keys: drop the nulls
            yield RawRecord(number, raw, row={k: ({ik: iv for ik, iv in v.items() if iv is not None} if isinstance(v, dict) else v)
                                              for k, v in row.items() if v is not None})


# --- layouts ---------------------------------------------------------------------------------


def _container(path: Path) -> Reader:
    return READERS[_EXTENSIONS.get(path.suffix.lower(), "jsonl")]


def _convert(path: Path, options: ReadOptions, convert: Callable[[Any], Any]) -> Iterator[RawRecord]:
    for record in _container(path)(path, options):
        if record.error is None:
            try:
                record.row = convert(record.row)
            except RowError as exc:
                record.row, record.error = None, str(exc)
        yield record


def hh_row(row: Any) -> dict[str, Any]:
    """An HH-RLHF row (``chosen``/``rejected`` transcripts sharing their opening) -> a pair row."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    require(row, ("chosen", "rejected"))
    prompt, chosen, rejected = split_shared_prefix(hh_messages(row["chosen"], "chosen"), hh_messages(row["rejected"], "rejected"))
    if len(chosen) != 1 or len(rejected) != 1:
        raise RowError("'chosen' and 'rejected' differ before their final reply: not a single preference")
    extra = {k: v for k, v in row.items() if k not in ("chosen", "rejected")}
    return {**extra, "prompt": prompt, "chosen": chosen, "rejected": rejected}


@reader("hh-rlhf")
def read_hh_rlhf(path: Path, options: ReadOptions = ReadOptions()) -> Iterator[RawRecord]:
    """Anthropic HH-RLHF: ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}``."""
    return _convert(path, options, hh_row)


ULTRAFEEDBACK_ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


def ultrafeedback_row(row: Any) -> dict[str, Any]:
    """An UltraFeedback row -> a ratings row: one response per completion, its aspect ratings as one rater's."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    require(row, ("instruction", "completions"))
    if not isinstance(row["instruction"], str) or not row["instruction"].strip():
        raise RowError(f"'instruction' must be a non-empty string, got {row['instruction']!r:.80}")
    completions = row["completions"]
    if not isinstance(completions, list):
        raise RowError(f"'completions' must be a list, got {type(completions).__name__}")
    responses = []
    for index, completion in enumerate(completions):
        where = f"'completions[{index}]'"
        if not isinstance(completion, dict) or "response" not in completion:
            raise RowError(f"{where} must be an object with 'response' and 'annotations'")
        if not isinstance(completion["response"], str) or not completion["response"].strip():
            # named as the file names it: the ratings rows made from it call this responses[i].text
            raise RowError(f"{where}.response must be a non-empty string, got {completion['response']!r:.80}")
        if completion.get("model") is not None and not isinstance(completion["model"], str):
            raise RowError(f"{where}.model must be a string, got {type(completion['model']).__name__}")
        annotations = completion.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise RowError(f"{where}.annotations must be an object of aspects")
        ratings: dict[str, Any] = {}
        for aspect, value in annotations.items():
            rating = value.get("Rating") if isinstance(value, dict) else value
            if rating in (None, "N/A", ""):
                continue  # UltraFeedback marks an aspect it could not rate with "N/A"
            try:
                ratings[aspect] = float(rating)
            except (TypeError, ValueError):
                raise RowError(f"{where}.annotations.{aspect}.Rating must be a number or 'N/A', got {rating!r}") from None
        rationale = "; ".join(f"{a}: {v['Rationale']}" for a, v in annotations.items() if isinstance(v, dict) and v.get("Rationale"))
        responses.append({"id": completion.get("model") or f"completion-{index}", "text": completion["response"],
                          "ratings": [{"annotator": "ultrafeedback", **ratings}] if ratings else [], "rationale": rationale or None})
    source = row.get("source")
    if source not in (None, "") and not isinstance(source, str):
        raise RowError(f"'source' must be a string (the collection the instruction came from), got {type(source).__name__}")
    # fields this layout does not use are kept: they travel to the ratings kind, which keeps unknown fields
    out: dict[str, Any] = {k: v for k, v in row.items() if k not in ("instruction", "completions", "source")}
    out.update({"prompt": row["instruction"], "responses": responses})
    if source:
        out["slices"] = {"origin": source}  # the collection the instruction was drawn from
    return out


@reader("ultrafeedback")
def read_ultrafeedback(path: Path, options: ReadOptions = ReadOptions()) -> Iterator[RawRecord]:
    """UltraFeedback: ``{"instruction", "completions": [{"model", "response", "annotations": {aspect: {"Rating", "Rationale"}}}]}``."""
    return _convert(path, options, ultrafeedback_row)


def reader_for(path: Path, fmt: str | None = None) -> Reader:
    """The reader named by ``fmt``, or the one matching the file's extension."""
    name = fmt or _EXTENSIONS.get(path.suffix.lower())
    if name is None:
        raise PreflineError(f"{path}: cannot tell the format from the extension {path.suffix!r}; pass --format ({', '.join(READERS)})")
    if name not in READERS:
        raise PreflineError(f"unknown format {name!r}; known formats: {', '.join(READERS)}")
    return READERS[name]
