"""Ingest: a file of preference signals -> a new, immutable dataset version in the ledger.

Every record read is accounted for, exactly once: ``read = accepted + rejected + duplicates +
excluded``. A record is *accepted* when it contributes to a stored pair, *rejected* when it is
invalid, a *duplicate* when it repeats an earlier record, and *excluded* when it is valid but
yields no pair (a position-inconsistent judge verdict, ratings that tie, an event no rule uses,
votes without a consensus...). Everything not accepted is written, with its line, kind,
category and reason, to ``rejects.jsonl`` beside the dataset's ``pairs.parquet``; every
signal goes to ``signals.parquet`` (the input of agreement statistics and the review queue).

The pipeline: reader (file format) -> signal kind (records -> signals) -> de-duplication ->
consensus (signals about one pair -> one label and a confidence, the pair's ``weight``) -> files.
The version folder is written under a temporary name and renamed into place before the
ledger row is added; any failure before that removes it, so an interrupted ingest leaves no
dataset version behind.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefline.data import consensus as consensus_mod
from prefline.data.schema import SCHEMA_VERSION, Signal, signal_from_row
from prefline.data.signals import SIGNAL_KINDS, Fate, IngestRules, KindContext, load_rules
from prefline.data.sources import DEFAULT_SIGNAL, RawRecord, reader_for
from prefline.errors import PreflineError
from prefline.hashing import content_hash, file_hash
from prefline.home import home_dir
from prefline.ledger import Ledger

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
WRITE_BATCH = 1000  # rows per Parquet write


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
    n_excluded: int = 0
    n_pairs: int = 0                                           # rows of pairs.parquet
    excluded: dict[str, int] = field(default_factory=dict)    # exclusion category -> records
    stats: dict[str, int] = field(default_factory=dict)       # the signal kind's own counts
    signal: str = "pairs"
    consensus: str = "none"
    signals_path: str = ""
    audit_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_name(name: str, what: str = "dataset") -> str:
    if not NAME_PATTERN.match(name):
        raise PreflineError(f"{what} name {name!r} must start with a letter or digit and use only letters, digits, '.', '_' or '-'")
    return name


# --- records -> signals -> outcomes ------------------------------------------------------------


@dataclass
class Assembly:
    """What a stream of records became: pair rows, all signals, and the fate of every record."""

    n_read: int
    rows: list[dict[str, Any]]
    signals: list[Signal]
    fates: dict[int, Fate]              # every record not accepted
    accepted: set[int]
    stats: Counter
    audit: list[dict[str, Any]]


def _identity(signal: Signal, method: str) -> tuple:
    """What makes two signals the same signal (the second one is a duplicate)."""
    if method == "none":
        return signal.key, signal.label  # plain pair files: the same pair, whatever its tags
    return (signal.key, signal.label, signal.kind, signal.rule, signal.source, signal.annotator, signal.rationale,
            signal.meta.get("session"), tuple(sorted(signal.axes.items())))


def assemble(records: Iterable[RawRecord], kind: str, ctx: KindContext, method: str,
             carried: list[Signal] = ()) -> Assembly:
    """Run the signal kind over the records, drop duplicates, combine by ``method``, decide every record's fate.

    ``carried`` signals (from an earlier dataset version) join the consensus but not the accounting.
    """
    spec = SIGNAL_KINDS[kind]
    fates: dict[int, Fate] = {}
    valid_lines: list[int] = []
    n_read = 0

    def valid() -> Iterator[RawRecord]:
        nonlocal n_read
        for record in records:
            n_read += 1
            if record.error is not None:
                fates[record.line] = Fate(record.line, "rejected", "unreadable", record.error, record.raw)
                continue
            valid_lines.append(record.line)
            yield record

    first_of: dict[tuple, str] = {_identity(s, method): "a signal of the base dataset" for s in carried}
    signals: list[Signal] = list(carried)
    late: dict[int, Fate] = {}  # reasons decided from signals, used when a record has no other outcome
    for item in spec.read(valid(), ctx):
        if isinstance(item, Fate):
            fates.setdefault(item.line, item)
            continue
        identity = _identity(item, method)
        if identity in first_of:
            for line in item.lines:
                late.setdefault(line, Fate(line, "duplicate", "duplicate", f"duplicate of {first_of[identity]}"))
            continue
        first_of[identity] = f"line {min(item.lines)}"
        signals.append(item)

    carried_ids = {id(s) for s in carried}
    groups: dict[str, list[Signal]] = {}
    for index, signal in enumerate(signals):
        if signal.excluded:
            for line in signal.lines if id(signal) not in carried_ids else []:
                late.setdefault(line, Fate(line, "excluded", signal.excluded["category"], signal.excluded["reason"]))
            continue
        groups.setdefault(signal.key if method != "none" else f"{signal.key}:{index}", []).append(signal)
    if method == "none":
        outcomes = {key: consensus_mod.single(key.split(":")[0], group[0]) for key, group in groups.items()}
    else:
        outcomes = consensus_mod.combine(groups, method)

    rows, accepted = [], set()
    for outcome in outcomes.values():
        new = [s for s in outcome.signals if id(s) not in carried_ids]
        if outcome.label is None:
            for signal in new:
                for line in signal.lines:
                    late.setdefault(line, Fate(line, "excluded", outcome.category, outcome.reason))
            continue
        rows.append(consensus_mod.pair_row(outcome))
        accepted.update(line for signal in new for line in signal.lines)

    for line in valid_lines:
        if line in fates or line in accepted:
            continue
        fates[line] = late.get(line) or Fate(line, "excluded", "unused", spec.unused_reason)
    for line in accepted & set(fates):
        del fates[line]  # a record that feeds a stored pair is accepted, whatever else it fed
    assert n_read == len(accepted) + len(fates), "every record has exactly one outcome"
    return Assembly(n_read, rows, signals, fates, accepted, ctx.stats, ctx.audit)


# --- ingest ------------------------------------------------------------------------------------


def ingest(path: str | Path, name: str, ledger: Ledger, fmt: str | None = None, source: str | None = None,
           signal: str | None = None, rules: str | Path | IngestRules | None = None, consensus: str | None = None) -> IngestResult:
    """Read, validate, combine and store ``path`` as the next version of ``name``.

    ``fmt``: the file format (default: from the extension); ``signal``: the signal kind (default:
    ``pairs``, or the one the format implies); ``rules``: an ingest rules file or object;
    ``consensus``: ``majority``, ``dawid-skene`` or ``none`` (default: ``none`` for pairs, else ``majority``).
    """
    path = Path(path)
    check_name(name)
    if not path.is_file():
        raise PreflineError(f"{path}: no such file")
    rules = rules if isinstance(rules, IngestRules) else load_rules(rules)
    read = reader_for(path, fmt)
    fmt_name = fmt or path.suffix.lstrip(".")
    kind = signal or DEFAULT_SIGNAL.get(fmt_name, "pairs")
    if kind not in SIGNAL_KINDS:
        raise PreflineError(f"unknown signal kind {kind!r}; known: {', '.join(SIGNAL_KINDS)}")
    method = consensus or ("none" if kind == "pairs" else "majority")
    if method not in consensus_mod.METHODS:
        raise PreflineError(f"unknown consensus method {method!r}; known: {', '.join(consensus_mod.METHODS)}")
    ctx = KindContext(source=source or path.name, rules=rules)
    built = assemble(read(path, rules.read_options()), kind, ctx, method)
    reread = lambda: read(path, rules.read_options())  # noqa: E731  (raw text of records decided late)
    return store(built, name, ledger, path, reread, kind=kind, method=method, rules=rules,
                 meta={"format": fmt_name}, source_file=str(path.resolve()), source_hash=file_hash(path))


def _rejects(built: Assembly, reread) -> list[dict[str, Any]]:
    missing = {line for line, fate in built.fates.items() if fate.raw is None}
    raws: dict[int, str] = {}
    if missing:
        for record in reread():  # a second streaming pass instead of keeping every record's text
            if record.line in missing:
                raws[record.line] = record.raw
    return [{"line": line, "kind": fate.kind, "category": fate.category, "reason": fate.reason,
             "raw": fate.raw if fate.raw is not None else raws.get(line)}
            for line, fate in sorted(built.fates.items())]


def store(built: Assembly, name: str, ledger: Ledger, path: Path, reread, *, kind: str, method: str, rules: IngestRules,
          meta: dict[str, Any], source_file: str, source_hash: str) -> IngestResult:
    """Write an assembled dataset as the next version of ``name`` (atomically) and record it in the ledger."""
    rejects = _rejects(built, reread)
    counts = Counter(r["kind"] for r in rejects)
    problems = [f"{path}:{r['line']}: {r['kind']}: {r['reason']}" for r in rejects]
    if not built.rows:
        detail = f"; first problem: {problems[0]}" if problems else ""
        raise PreflineError(f"{path}: no valid preference pairs among {built.n_read} record(s){detail}")
    excluded = dict(sorted(Counter(r["category"] for r in rejects if r["kind"] == "excluded").items()))

    version = ledger.next_dataset_version(name)
    final = home_dir("datasets", name) / f"v{version}"
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    audit_path = final / "audit.jsonl" if kind == "judge" else None
    try:
        _write_parquet([consensus_mod.json_columns(row) for row in built.rows], tmp / "pairs.parquet", "pairs")
        _write_parquet([_signal_columns(s) for s in built.signals], tmp / "signals.parquet", "signals")
        _write_jsonl(rejects, tmp / "rejects.jsonl")
        if audit_path is not None:
            _write_jsonl(built.audit, tmp / "audit.jsonl")
        if final.exists():  # left by a crash between rename and ledger insert
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    digest = content_hash({"schema_version": SCHEMA_VERSION, "pairs": [r["id"] for r in built.rows], "weights": [r["weight"] for r in built.rows]})
    stats = dict(sorted(built.stats.items()))
    try:
        dataset_id = ledger.add_dataset(
            name=name, version=version, content_hash=digest,
            path=str(final / "pairs.parquet"), rejects_path=str(final / "rejects.jsonl"),
            source_file=source_file, source_hash=source_hash,
            n_read=built.n_read, n_accepted=len(built.accepted), n_rejected=counts["rejected"],
            n_duplicates=counts["duplicate"], n_excluded=counts["excluded"], n_pairs=len(built.rows),
            meta={"schema_version": SCHEMA_VERSION, **meta, "signal": kind, "consensus": method,
                  "slices": _slice_counts(built.rows), "excluded": excluded, "stats": stats,
                  "rules": rules.model_dump(mode="json"), "signals_path": str(final / "signals.parquet"),
                  "audit_path": str(audit_path) if audit_path else None},
        )
    except Exception:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return IngestResult(
        dataset_id=dataset_id, name=name, version=version, content_hash=digest,
        path=str(final / "pairs.parquet"), rejects_path=str(final / "rejects.jsonl"),
        n_read=built.n_read, n_accepted=len(built.accepted), n_rejected=counts["rejected"],
        n_duplicates=counts["duplicate"], problems=problems, n_excluded=counts["excluded"], n_pairs=len(built.rows),
        excluded=excluded, stats=stats, signal=kind, consensus=method,
        signals_path=str(final / "signals.parquet"), audit_path=str(audit_path) if audit_path else None,
    )


def _slice_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        for key, value in row["slices"].items():
            counts.setdefault(key, {}).setdefault(value, 0)
            counts[key][value] += 1
    return counts


# --- files ---------------------------------------------------------------------------------------


def _schemas():
    import pyarrow as pa

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    pairs = pa.schema([("id", pa.string()), ("prompt", messages), ("chosen", messages), ("rejected", messages),
                       ("slices", pa.string()), ("source", pa.string()), ("weight", pa.float64()),
                       ("confidence", pa.float64()), ("consensus", pa.string()), ("rule", pa.string()),
                       ("n_signals", pa.int64()), ("axes", pa.string()), ("signals", pa.string()), ("key", pa.string())])
    signals = pa.schema([("key", pa.string()), ("label", pa.string()), ("kind", pa.string()), ("rule", pa.string()),
                         ("source", pa.string()), ("annotator", pa.string()), ("confidence", pa.float64()),
                         ("excluded", pa.string()), ("signal", pa.string())])
    return pairs, signals


def _signal_columns(signal: Signal) -> dict[str, Any]:
    """A signal's searchable fields as columns, and all of it as JSON text (``signal``)."""
    return {"key": signal.key, "label": signal.label, "kind": signal.kind, "rule": signal.rule, "source": signal.source,
            "annotator": signal.annotator, "confidence": signal.confidence,
            "excluded": signal.excluded["category"] if signal.excluded else None,
            "signal": json.dumps(signal.to_row(), ensure_ascii=False, sort_keys=True)}


def _write_parquet(rows: list[dict[str, Any]], path: Path, which: str) -> None:
    """Rows in batches of WRITE_BATCH, under a fixed schema (so every batch agrees on the types)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = dict(zip(("pairs", "signals"), _schemas()))[which]
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, max(len(rows), 1), WRITE_BATCH):
            writer.write_table(pa.Table.from_pylist(rows[start:start + WRITE_BATCH], schema=schema))


def _write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_pairs(dataset: dict[str, Any]):
    """A ledger dataset row -> a Hugging Face ``datasets.Dataset`` of pairs (``slices`` as JSON text)."""
    from datasets import Dataset

    path = Path(dataset["path"])
    if not path.is_file():
        raise PreflineError(f"dataset {dataset['name']}@{dataset['version']}: its file {path} is missing")
    return Dataset.from_parquet(str(path))


def load_signals(dataset: dict[str, Any]) -> list[Signal]:
    """Every signal a dataset version was built from (``signals.parquet`` beside its pairs)."""
    import pyarrow.parquet as pq

    path = Path(dataset["path"]).with_name("signals.parquet")
    if not path.is_file():
        raise PreflineError(f"dataset {dataset['name']}@{dataset['version']} has no signals file ({path}); "
                            "it was ingested before signals were stored: ingest its file again")
    return [signal_from_row(json.loads(text)) for text in pq.read_table(path, columns=["signal"]).column("signal").to_pylist()]
