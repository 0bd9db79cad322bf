"""Ingest: a file of preference signals -> a new, immutable dataset version in the ledger.

Every record read is accounted for, exactly once: ``read = accepted + rejected + duplicates +
excluded``. A record is *accepted* when it contributes to a stored pair, *rejected* when it is
invalid, a *duplicate* when it repeats an earlier record, and *excluded* when it is valid but
yields no pair (a position-inconsistent judge verdict, ratings that tie, an event no rule uses,
votes without a consensus...). Everything not accepted is written, with its line, kind,
category and reason, to ``rejects.jsonl`` beside the dataset's ``pairs.parquet``; every
signal goes to ``signals.parquet`` (the input of agreement statistics and the review queue),
except in a version of plain pairs, whose pairs are its signals.

The pipeline: reader (file format) -> signal kind (records -> signals) -> de-duplication ->
consensus (signals about one pair -> one label and a confidence, the pair's ``weight``) -> files.

Without consensus (``none``, the default for plain pair files) and with a kind whose records
stand alone, every signal is its own pair, so the file is streamed: records go through in chunks
of ``WRITE_BATCH``, each chunk validated, hashed, checked for duplicates against every earlier
record and written before the next is read (the checks of a large file's chunks run on worker
processes). What stays in memory per record is a 16-byte digest of its signal. Combining signals
(``majority``, ``dawid-skene``) needs all the signals about a pair together: they are grouped by
pair out of core (:mod:`prefline.data.grouping`), with the outcomes :func:`assemble` gives in
memory (which the review queue still uses, on the few signals of a review).

The version is written through ``data.store.VersionWriter`` (a temporary folder renamed into
place, a version number allocated under a lock), so an interrupted ingest leaves no version behind.

(Over 400 lines: the two paths above, assembled and streamed, must give the same outcomes record for
record, so they are kept side by side where a change to one is seen against the other; with the worker
pool and the accounting of every record they are one pipeline whose counts must add up. The grouping
for consensus, the readers and the version store live in their own modules.)
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from prefline.data import consensus as consensus_mod
from prefline.data.schema import SCHEMA_VERSION, Pair, Signal
from prefline.data.signals import SIGNAL_KINDS, Fate, IngestRules, KindContext, extra_fields, load_rules
from prefline.data.sources import DEFAULT_SIGNAL, RawRecord, jsonl_texts, read_jsonl, reader_for
from prefline.data.store import VersionWriter, check_name, tables
from prefline.errors import PreflineError
from prefline.hashing import file_hash
from prefline.ledger import Ledger
from prefline.paths import input_file

WRITE_BATCH = 1000  # rows per Parquet write, and records per chunk of a streamed ingest
PARALLEL_BYTES = 32 << 20  # a streamed file at least this large is answered by several processes


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
    signals_path: str | None = None                            # None: plain pairs, whose pairs are their signals
    audit_path: str | None = None
    unknown_fields: dict[str, int] = field(default_factory=dict)  # field the kind does not use -> records (kept as 'extra')

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- records -> signals -> outcomes ------------------------------------------------------------


@dataclass
class Assembly:
    """What a stream of records became: its pairs, all signals, and the fate of every record."""

    n_read: int
    pairs: list[Pair]
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
    extras: dict[int, dict[str, Any]] = {}  # line -> fields the kind does not use (only lines that have some)
    n_read = 0

    def valid() -> Iterator[RawRecord]:
        nonlocal n_read
        for record in records:
            n_read += 1
            if record.error is not None:
                fates[record.line] = Fate(record.line, "rejected", "unreadable", record.error, record.raw)
                continue
            extra = extra_fields(record.row, spec.fields)
            if extra:
                extras[record.line] = extra
                ctx.unknown.update(extra.keys())
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
        keep_extra(item, [extras[line] for line in item.lines if line in extras])
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

    pairs, accepted = [], set()
    for outcome in outcomes.values():
        new = [s for s in outcome.signals if id(s) not in carried_ids]
        if outcome.label is None:
            for signal in new:
                for line in signal.lines:
                    late.setdefault(line, Fate(line, "excluded", outcome.category, outcome.reason))
            continue
        pairs.append(consensus_mod.pair_row(outcome))
        accepted.update(line for signal in new for line in signal.lines)

    for line in valid_lines:
        if line in fates or line in accepted:
            continue
        fates[line] = late.get(line) or Fate(line, "excluded", "unused", spec.unused_reason)
    for line in accepted & set(fates):
        del fates[line]  # a record that feeds a stored pair is accepted, whatever else it fed
    assert n_read == len(accepted) + len(fates), "every record has exactly one outcome"
    return Assembly(n_read, pairs, signals, fates, accepted, ctx.stats, ctx.audit)


def keep_extra(signal: Signal, found: list[dict[str, Any]]) -> None:
    """Fields its records carried that the kind does not use, kept on the signal (first record's value wins)."""
    merged: dict[str, Any] = {}
    for extra in found:
        for key, value in extra.items():
            merged.setdefault(key, value)
    if merged:
        signal.meta["extra"] = merged


# --- streaming: one pair per signal ---------------------------------------------------------------


@dataclass(frozen=True)
class StreamJob:
    """What a chunk of records needs to become signals and pairs (sent once to each worker process)."""

    kind: str
    source: str
    rules: IngestRules
    method: str
    keep_signals: bool = True  # build the rows of signals.parquet
    answer: Callable[[list[RawRecord], "StreamJob"], Any] | None = None  # a chunk -> its answers; None: answer_chunk


@dataclass
class Answers:
    """A chunk of records, validated and hashed, before de-duplication (which needs every earlier chunk).

    ``outcomes`` has one ``(line, fate, digest)`` per record: a rejected record has a fate and no
    digest; a valid one has the digest of its signal's identity, and a fate only when its signal
    is excluded. ``signals`` has a row for each valid record (None when the job keeps no signals),
    ``pairs`` one for each valid record without a fate, both in record order.
    """

    outcomes: list[tuple[int, Fate | None, bytes | None]]
    pairs: Any     # pyarrow.Table
    signals: Any   # pyarrow.Table or None
    stats: Counter
    audit: list[dict[str, Any]]
    unknown: Counter = field(default_factory=Counter)  # fields the kind does not use -> records


def _digest(identity: tuple) -> bytes:
    """16 bytes standing for a signal's identity: all that streamed de-duplication keeps per record."""
    return hashlib.blake2b(repr(identity).encode("utf-8"), digest_size=16).digest()


def read_chunk(records: list[RawRecord], job: StreamJob, ctx: KindContext) -> Iterator[tuple[RawRecord, Signal | Fate]]:
    """Each record of a chunk of a kind whose records stand alone, with what the kind made of it: a signal
    (keeping the fields the kind does not use), or a fate (unreadable, or turned down by the kind)."""
    spec = SIGNAL_KINDS[job.kind]
    for record in records:
        if record.error is not None:
            yield record, Fate(record.line, "rejected", "unreadable", record.error)
            continue
        extra = extra_fields(record.row, spec.fields)
        ctx.unknown.update(extra.keys())
        for item in spec.read([record], ctx):
            if not isinstance(item, Fate):
                keep_extra(item, [extra])
            yield record, item


def answer_chunk(records: list[RawRecord], job: StreamJob) -> Answers:
    """Each record of a chunk -> its one signal (with its pair) or its fate; no state beyond the chunk."""
    ctx = KindContext(source=job.source, rules=job.rules)
    outcomes, made, signals = [], [], []
    for record, item in read_chunk(records, job, ctx):  # one item per record: the kind answers record by record
        if isinstance(item, Fate):
            outcomes.append((record.line, item, None))
            continue
        signals.append(item)
        outcome = None if item.excluded else consensus_mod.single(item.key, item)
        fate = None
        if outcome is not None and outcome.label is not None:
            made.append(consensus_mod.pair_row(outcome))
        else:  # excluded by its kind (a position-inconsistent verdict), or a tie, which makes no pair
            category, reason = (item.excluded["category"], item.excluded["reason"]) if item.excluded else (outcome.category, outcome.reason)
            fate = Fate(record.line, "excluded", category, reason)
        outcomes.append((record.line, fate, _digest(_identity(item, job.method))))
    pairs, signal_rows = tables(made, signals if job.keep_signals else None)
    return Answers(outcomes, pairs, signal_rows, ctx.stats, ctx.audit, ctx.unknown)


_JOB: StreamJob | None = None


def _init_worker(job: StreamJob) -> None:
    global _JOB
    _JOB = job
    import signal

    # The parent handles Ctrl-C and SIGTERM and stops the pool; a worker just ends, without a traceback.
    # It started with both blocked (see _answered), so one sent while it was starting is dropped here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _answer(records: list[RawRecord], job: StreamJob) -> Any:
    return (job.answer or answer_chunk)(records, job)


def _answer_in_worker(records: list[RawRecord]) -> Any:
    return _answer(records, _JOB)


def _chunks(records: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _answered(records: Iterable[RawRecord], job: StreamJob, workers: int) -> Iterator[tuple[list[RawRecord], Answers]]:
    """(chunk, its answers) in file order, answered in this process or by ``workers`` processes.

    Workers get the records without their raw text (only rejects need it, and the chunk keeps it
    here); at most two chunks per worker are in flight, so the file is never read far ahead.
    """
    chunks = _chunks(records, WRITE_BATCH)
    if workers <= 1:
        yield from ((chunk, _answer(chunk, job)) for chunk in chunks)
        return
    import multiprocessing
    import signal
    import threading

    # Hold Ctrl-C and SIGTERM until the pool is up (the workers inherit the mask and lift it once
    # they ignore both). A worker's errors come back with its answers, so its own standard error goes
    # to /dev/null: a worker torn down while still starting would otherwise print a traceback.
    # The mask covers this thread only: a signal can still reach one of pyarrow's threads, and Python
    # would then raise it here half-way through starting the pool. So while the pool starts, a signal
    # is only noted, and raised once the pool is whole (and torn down by the `with` below).
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    noted: list[int] = []
    main_thread = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    handlers = {sig: signal.signal(sig, lambda number, frame: noted.append(number))
                for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(job,))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if noted:
        with pool:
            signal.raise_signal(noted[0])
    with pool:
        pending: deque = deque()
        for chunk in chunks:
            bare = [RawRecord(r.line, "", r.row, r.error) for r in chunk]
            pending.append((chunk, pool.apply_async(_answer_in_worker, (bare,))))
            if len(pending) >= 2 * workers:
                done, answers = pending.popleft()
                yield done, answers.get()
        while pending:
            done, answers = pending.popleft()
            yield done, answers.get()


def stream(records: Iterable[RawRecord], job: StreamJob, out: VersionWriter, ctx: KindContext, workers: int = 1) -> None:
    """Store every record's signal as its own pair (no consensus), a chunk of WRITE_BATCH records at a time.

    The same outcomes as :func:`assemble` with ``method`` ``none``, without holding the file:
    a record's fate is known once its signal is, and a duplicate is found by the digest of its
    signal's identity, kept (with the line it came from) for every signal stored.
    """
    import pyarrow as pa

    first_line: dict[bytes, int] = {}
    # closing(): on Ctrl-C or SIGTERM the pool is torn down here, before the interpreter exits, so its
    # worker handler cannot start a replacement worker that is then left without its start-up data.
    answered = _answered(records, job, workers)
    with closing(answered):
        for chunk, answers in answered:
            keep_signals, keep_pairs = [], []
            for record, (line, fate, digest) in zip(chunk, answers.outcomes):
                out.n_read += 1
                if digest is None:
                    out.reject(fate, record.raw)
                    continue
                repeated = digest in first_line
                keep_signals.append(not repeated)
                if fate is None:
                    keep_pairs.append(not repeated)
                if repeated:
                    out.reject(Fate(line, "duplicate", "duplicate", f"duplicate of line {first_line[digest]}"), record.raw)
                    continue
                first_line[digest] = line
                if fate is not None:
                    out.reject(fate, record.raw)
                else:
                    out.n_accepted += 1
            kept = answers.signals.filter(pa.array(keep_signals, pa.bool_())) if answers.signals is not None else None
            out.write(answers.pairs.filter(pa.array(keep_pairs, pa.bool_())), kept)
            ctx.stats.update(answers.stats)
            ctx.audit.extend(answers.audit)
            ctx.unknown.update(answers.unknown)


# --- ingest ------------------------------------------------------------------------------------


def ingest(path: str | Path, name: str, ledger: Ledger, fmt: str | None = None, source: str | None = None,
           signal: str | None = None, rules: str | Path | IngestRules | None = None, consensus: str | None = None,
           workers: int | None = None) -> IngestResult:
    """Read, validate, combine and store ``path`` as the next version of ``name``.

    ``fmt``: the file format (default: from the extension); ``signal``: the signal kind (default:
    ``pairs``, or the one the format implies); ``rules``: an ingest rules file or object;
    ``consensus``: ``majority``, ``dawid-skene`` or ``none`` (default: ``none`` for pairs, else ``majority``).
    ``workers``: processes that validate and hash a streamed file's records (default: one for a
    file under PARALLEL_BYTES, else the CPUs available, at most 4; 1 runs in this process).
    """
    path = Path(path)
    check_name(name)
    input_file(path)
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
    if workers is None:  # starting processes costs more than it saves on small files
        workers = 1 if path.stat().st_size < PARALLEL_BYTES else min(4, len(os.sched_getaffinity(0)))
    plain = kind == "pairs" and method == "none"  # each pair is its one signal: pairs.parquet holds it all
    with VersionWriter(name, path, keep_signals=not plain) as out:
        if method == "none" and SIGNAL_KINDS[kind].one_per_record:
            stream(read(path, rules.read_options()), StreamJob(kind, ctx.source, rules, method, not plain), out, ctx, workers)
        elif method != "none":  # combining: signals grouped by pair out of core
            from prefline.data.grouping import group

            texts = jsonl_texts if read is read_jsonl else read  # the second pass needs only the texts of some records
            group(lambda: read(path, rules.read_options()), kind, ctx, method, out, workers, reread=lambda: texts(path, rules.read_options()))
        else:
            write_assembly(out, assemble(read(path, rules.read_options()), kind, ctx, method), lambda: read(path, rules.read_options()))
        return commit(out, ledger, ctx, kind=kind, method=method, rules=rules, meta={"format": fmt_name},
                          source_file=str(path.resolve()), source_hash=file_hash(path))


def _rejects(built: Assembly, reread) -> list[tuple[Fate, str | None]]:
    """Every record not accepted, in line order, with its raw text."""
    missing = {line for line, fate in built.fates.items() if fate.raw is None}
    raws: dict[int, str] = {}
    if missing:
        for record in reread():  # a second streaming pass instead of keeping every record's text
            if record.line in missing:
                raws[record.line] = record.raw
    return [(fate, fate.raw if fate.raw is not None else raws.get(line)) for line, fate in sorted(built.fates.items())]


def write_assembly(out: VersionWriter, built: Assembly, reread) -> None:
    """An assembled dataset (combined signals) into a version: its pairs, signals and every record not accepted."""
    for start in range(0, max(len(built.pairs), len(built.signals)), WRITE_BATCH):
        out.write(*tables(built.pairs[start:start + WRITE_BATCH], built.signals[start:start + WRITE_BATCH]))
    for fate, raw in _rejects(built, reread):
        out.reject(fate, raw)
    out.n_read, out.n_accepted = built.n_read, len(built.accepted)


def commit(out: VersionWriter, ledger: Ledger, ctx: KindContext, *, kind: str, method: str, rules: IngestRules,
           meta: dict[str, Any], source_file: str, source_hash: str) -> IngestResult:
    """Record what ``out`` holds as the next version of its name, with what ingest knows about it."""
    out.require_pairs()
    if kind == "judge":
        out.add_file("audit.jsonl", ctx.audit)
    excluded = dict(sorted(out.excluded.items()))
    stats = dict(sorted(ctx.stats.items()))
    unknown = dict(sorted(ctx.unknown.items()))
    if unknown:  # once per file, first: the fields were kept, but the user may have misspelled one
        out.problems.insert(0, f"{out.path}: field(s) the {kind} kind does not use, kept with each pair's signals under 'extra': "
                            + ", ".join(f"{name!r} ({n} record(s))" for name, n in unknown.items()))
    counts = {"n_read": out.n_read, "n_accepted": out.n_accepted, "n_rejected": out.counts["rejected"],
              "n_duplicates": out.counts["duplicate"], "n_excluded": out.counts["excluded"], "n_pairs": out.n_pairs}

    def paths(final: Path) -> tuple[str | None, str | None]:
        return (str(final / "signals.parquet") if out.keep_signals else None,
                str(final / "audit.jsonl") if kind == "judge" else None)

    def row(final: Path) -> dict[str, Any]:
        signals_path, audit_path = paths(final)
        return {"source_file": source_file, "source_hash": source_hash, **counts,
                "meta": {"schema_version": SCHEMA_VERSION, **meta, "signal": kind, "consensus": method,
                         "slices": out.slices, "excluded": excluded, "stats": stats,
                         "rules": rules.model_dump(mode="json"), "signals_path": signals_path,
                         "audit_path": audit_path, "unknown_fields": unknown}}

    stored = out.commit(ledger, row)
    signals_path, audit_path = paths(stored.folder)
    return IngestResult(
        dataset_id=stored.dataset_id, name=stored.name, version=stored.version, content_hash=stored.content_hash,
        path=stored.path, rejects_path=stored.rejects_path, problems=out.problems,
        excluded=excluded, stats=stats, signal=kind, consensus=method,
        signals_path=signals_path, audit_path=audit_path, unknown_fields=unknown, **counts,
    )
