"""Consensus out of core: the signals of a file of any size grouped by pair and combined in bounded memory.

Combining signals (``majority``, ``dawid-skene``) needs every signal about a pair at once. Holding
the file's signals as Python objects costs about 6 KB each (6.4 GB for a million), so ingest does it
in two passes instead, with the same outcomes as assembling the file in memory
(:func:`prefline.data.ingest.assemble`):

1. **Read.** Records become signals in chunks (on worker processes for a kind whose records stand
   alone, in this process for one that gathers several records, such as ratings). Each chunk's
   signals are de-duplicated against every earlier one by a 16-byte digest, written to
   ``signals.parquet`` at once, and kept only as a compact Arrow table of what consensus needs
   (key, label, annotator, kind, rule, confidence and the signal's JSON text, without its
   messages). The messages of the first signal of each pair (its *head*, the only one whose texts
   a stored pair uses) go to a spool file, in the order the pairs first appear.
2. **Group.** The keys are numbered by first appearance (Arrow's ``unique``, which keeps that
   order) and a stable sort of the numbers puts each pair's signals together, in file order. The
   groups are then combined a block at a time beside the heads streamed back from the spool, and
   their pairs written in the order the in-memory path writes them (by first appearance; with
   ``dawid-skene``, groups settled by an expert review first). Dawid-Skene's EM runs over the whole
   dataset at once, as integer arrays (pair, annotator, label), not objects.

What stays in memory per signal is its digest, its row of the Arrow table and, per record, a byte.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefline.data import consensus as consensus_mod
from prefline.data.ingest import WRITE_BATCH, StreamJob, _answered, _digest, _identity, keep_extra, read_chunk
from prefline.data.store import tables
from prefline.data.schema import Signal
from prefline.data.signals import SIGNAL_KINDS, Fate, KindContext, extra_fields
from prefline.data.sources import RawRecord

_CONSENSUS_COLUMNS = ("key", "label", "kind", "rule", "annotator", "confidence", "signal")
HEADS_FILE = ".heads.parquet"  # the spool of head messages, inside the version's temporary folder


@dataclass
class Parsed:
    """A chunk of records as signals and fates, before de-duplication (which needs every earlier chunk)."""

    n_read: int
    valid: list[int]                     # lines that could be read
    fates: list[Fate]                    # records read but turned down by the kind (rejected, or excluded outright)
    signals: Any                         # pyarrow.Table in the schema of signals.parquet, one row per signal
    lines: list[list[int]]               # per signal: the records it came from
    digests: list[bytes]                 # per signal: the digest of its identity
    excluded: list[dict[str, str] | None]
    pair_ids: list[tuple[str, str]]      # per signal: the id of its pair when a, and when b, is chosen
    stats: Counter = field(default_factory=Counter)
    audit: list[dict[str, Any]] = field(default_factory=list)
    unknown: Counter = field(default_factory=Counter)


def _parsed(n_read: int, valid: list[int], fates: list[Fate], signals: list[Signal], method: str, ctx: KindContext | None) -> Parsed:
    _, table = tables([], signals)
    found = (ctx.stats, ctx.audit, ctx.unknown) if ctx is not None else (Counter(), [], Counter())
    return Parsed(n_read, valid, fates, table, [s.lines for s in signals], [_digest(_identity(s, method)) for s in signals],
                  [s.excluded for s in signals], [(s.pair_ids["a"], s.pair_ids["b"]) for s in signals], *found)


def answer_records(records: list[RawRecord], job: StreamJob) -> Parsed:
    """A chunk of a kind whose records stand alone -> its signals and fates (run on worker processes)."""
    ctx = KindContext(source=job.source, rules=job.rules)
    fates, signals = [], []
    for _, item in read_chunk(records, job, ctx):
        (fates if isinstance(item, Fate) else signals).append(item)
    valid = [record.line for record in records if record.error is None]
    return _parsed(len(records), valid, fates, signals, job.method, ctx)


def parse_in_process(records: Iterable[RawRecord], kind: str, ctx: KindContext, method: str) -> Iterator[Parsed]:
    """A kind that gathers several records per signal, run over the whole file here, its signals cut into chunks.

    The kind updates ``ctx`` itself (its stats and audit), so the chunks carry none.
    """
    spec = SIGNAL_KINDS[kind]
    extras: dict[int, dict[str, Any]] = {}
    state = {"n_read": 0, "valid": [], "fates": []}

    def valid() -> Iterator[RawRecord]:
        for record in records:
            state["n_read"] += 1
            if record.error is not None:
                state["fates"].append(Fate(record.line, "rejected", "unreadable", record.error, record.raw))
                continue
            extra = extra_fields(record.row, spec.fields)
            if extra:
                extras[record.line] = extra
                ctx.unknown.update(extra.keys())
            state["valid"].append(record.line)
            yield record

    def cut() -> Parsed:
        parsed = _parsed(state["n_read"], state["valid"], state["fates"], batch, method, None)
        state.update(n_read=0, valid=[], fates=[])
        return parsed

    batch: list[Signal] = []
    for item in spec.read(valid(), ctx):
        if isinstance(item, Fate):
            state["fates"].append(item)
            continue
        keep_extra(item, [extras[line] for line in item.lines if line in extras])
        batch.append(item)
        if len(batch) >= WRITE_BATCH:
            yield cut()
            batch = []
    yield cut()


class _Lines:
    """One bit of state per record line (valid, accepted), in a byte array that grows with the file."""

    def __init__(self) -> None:
        self.bytes = bytearray()

    def set(self, line: int) -> None:
        if line >= len(self.bytes):
            self.bytes.extend(bytes(max(line + 1 - len(self.bytes), len(self.bytes))))
        self.bytes[line] = 1

    def __contains__(self, line: int) -> bool:
        return line < len(self.bytes) and self.bytes[line] == 1

    def count(self) -> int:
        return self.bytes.count(1)

    def lines(self) -> Iterator[int]:
        import numpy as np

        yield from np.flatnonzero(np.frombuffer(self.bytes, dtype=np.uint8)).tolist()


class _View:
    """A signal as consensus and ``pair_row`` read it, rebuilt from its stored JSON (the head also gets its messages)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)
        self.prompt = self.a = self.b = None
        self.pair_ids: dict[str, str] = {}


class Grouper:
    """Pass 1 (:meth:`add` each chunk) and pass 2 (:meth:`finish`) of out-of-core consensus, writing into ``out``."""

    def __init__(self, out, method: str, ctx: KindContext, unused_reason: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.out, self.method, self.ctx, self.unused_reason = out, method, ctx, unused_reason
        self.n_read = 0
        self.first_line: dict[bytes, int] = {}
        self.heads_seen: set[str] = set()
        self.fates: dict[int, Fate] = {}
        # Reasons decided from signals, for a record without another outcome: a duplicate first,
        # then a signal its kind excluded, then a group without consensus (the in-memory order).
        self.late: tuple[dict[int, Fate], dict[int, Fate], dict[int, Fate]] = ({}, {}, {})
        self.valid, self.accepted = _Lines(), _Lines()
        self.consensus: list = []   # pyarrow tables of _CONSENSUS_COLUMNS, non-excluded signals in file order
        messages = tables([], [])[1].schema
        self.heads_schema = pa.schema([messages.field("prompt"), messages.field("a"), messages.field("b"),
                                       ("id_a", pa.string()), ("id_b", pa.string())])
        self.heads_path = Path(out.folder) / HEADS_FILE
        self.heads = pq.ParquetWriter(self.heads_path, self.heads_schema)
        self.empty_pairs = tables([], None)[0]

    # --- pass 1 ---

    def add(self, parsed: Parsed, raws: dict[int, str] | None = None) -> None:
        import pyarrow as pa

        self.n_read += parsed.n_read
        for line in parsed.valid:
            self.valid.set(line)
        for fate in parsed.fates:
            if raws is not None and fate.raw in (None, ""):
                fate.raw = raws.get(fate.line)
            self.fates.setdefault(fate.line, fate)
        duplicate, excluded, _ = self.late
        keys = parsed.signals.column("key").to_pylist()
        keep, live, head_rows = [], [], []
        for index, (digest, lines) in enumerate(zip(parsed.digests, parsed.lines)):
            first = self.first_line.get(digest)
            if first is not None:
                for line in lines:
                    duplicate.setdefault(line, Fate(line, "duplicate", "duplicate", f"duplicate of line {first}"))
                keep.append(False)
                continue
            self.first_line[digest] = min(lines)
            keep.append(True)
            why = parsed.excluded[index]
            if why:
                for line in lines:
                    excluded.setdefault(line, Fate(line, "excluded", why["category"], why["reason"]))
                live.append(False)
                continue
            live.append(True)
            if keys[index] not in self.heads_seen:
                self.heads_seen.add(keys[index])
                head_rows.append(index)
        kept = parsed.signals.filter(pa.array(keep, pa.bool_()))
        self.out.write(self.empty_pairs, kept)
        self.consensus.append(kept.filter(pa.array(live, pa.bool_())).select(list(_CONSENSUS_COLUMNS)))
        if head_rows:
            heads = parsed.signals.take(pa.array(head_rows, pa.int64()))
            self.heads.write_table(pa.Table.from_arrays(
                [heads.column("prompt"), heads.column("a"), heads.column("b"),
                 pa.array([parsed.pair_ids[i][0] for i in head_rows], pa.string()),
                 pa.array([parsed.pair_ids[i][1] for i in head_rows], pa.string())], schema=self.heads_schema))
        self.ctx.stats.update(parsed.stats)
        self.ctx.audit.extend(parsed.audit)
        self.ctx.unknown.update(parsed.unknown)

    # --- pass 2 ---

    def finish(self, reread: Callable[[], Iterable[RawRecord]]) -> None:
        """Group, combine and write the pairs; then every record not accepted, in line order, to the rejects."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self.heads.close()
        table = pa.concat_tables(self.consensus).combine_chunks() if self.consensus else None
        self.consensus = []
        if table is not None and table.num_rows:
            keys = table.column("key")
            codes = pc.index_in(keys, value_set=pc.unique(keys)).to_numpy()  # group number = order of first appearance
            n_groups = int(codes.max()) + 1
            order = np.argsort(codes, kind="stable")
            starts = np.searchsorted(codes[order], np.arange(n_groups + 1))
            reviewed = np.zeros(n_groups, dtype=bool)
            reviewed[codes[pc.equal(table.column("kind"), "review").to_numpy(zero_copy_only=False)]] = True
            posterior = self._dawid_skene(table, codes, order, reviewed) if self.method == "dawid-skene" else None
            # dawid-skene stores the groups an expert review settled first, as the in-memory path does
            phases = [np.flatnonzero(reviewed), np.flatnonzero(~reviewed)] if posterior is not None else [np.arange(n_groups)]
            for phase in phases:
                if len(phase):
                    self._combine(phase, table, order, starts, posterior, pq.ParquetFile(self.heads_path))
        self.heads_path.unlink(missing_ok=True)
        self._account(reread)

    def _dawid_skene(self, table, codes, order, reviewed) -> Callable[[int], dict[str, float]]:
        """Dawid-Skene over the votes of every group no review settled -> group number -> posterior."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        # the votes in the in-memory order (pair by pair in first appearance, each pair's in file order),
        # so that the EM adds them up in the same order and gives the same posteriors to the last bit
        picked = order[~reviewed[codes[order]]]
        if not len(picked):
            return lambda group: {}
        groups, task = np.unique(codes[picked], return_inverse=True)
        take = pa.array(picked)
        annotator = table.column("annotator").take(take)
        workers = pc.if_else(pc.fill_null(pc.not_equal(annotator, ""), False), annotator,
                             pc.binary_join_element_wise(table.column("kind").take(take), table.column("rule").take(take), ":"))
        worker = pc.index_in(workers, value_set=pc.unique(workers)).to_numpy()
        votes = table.column("label").take(take)
        labels = sorted(pc.unique(votes).to_pylist())
        label = pc.index_in(votes, value_set=pa.array(labels, pa.string())).to_numpy()
        probas = consensus_mod.dawid_skene_em(task, worker, label, len(groups), int(worker.max()) + 1, len(labels))
        row_of = {int(group): row for row, group in enumerate(groups)}
        return lambda group: dict(zip(labels, probas[row_of[group]].tolist()))

    def _combine(self, phase, table, order, starts, posterior, heads_file) -> None:
        """The groups numbered in ``phase`` (ascending), combined a block at a time beside their heads.

        A pair's messages are its head's, taken as Arrow columns (``chosen`` is ``a`` or ``b`` by its
        label): they never become Python objects here.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        _, _, no_consensus = self.late
        first = 0
        for heads in heads_file.iter_batches(batch_size=WRITE_BATCH):
            offset, first = first, first + heads.num_rows
            block = phase[np.searchsorted(phase, offset):np.searchsorted(phase, first)]
            if not len(block):
                continue
            picked = np.concatenate([order[starts[g]:starts[g + 1]] for g in block])
            texts = table.column("signal").take(pa.array(picked)).to_pylist()
            ids = list(zip(heads.column("id_a").to_pylist(), heads.column("id_b").to_pylist()))
            made, heads_of, chose_a = [], [], []
            at = 0
            for group in block.tolist():
                size = int(starts[group + 1] - starts[group])
                views = [_View(json.loads(text)) for text in texts[at:at + size]]
                at += size
                views[0].prompt = views[0].a = views[0].b = []  # the head's messages join as columns below
                views[0].pair_ids = dict(zip("ab", ids[group - offset]))
                key = views[0].key
                if posterior is None:
                    (outcome,) = consensus_mod.majority({key: views}).values()
                else:
                    outcome = consensus_mod.reviewed(key, views) or consensus_mod.dawid_skene_outcome(key, views, posterior(group))
                if outcome.label is None:
                    for view in views:
                        for line in view.lines:
                            no_consensus.setdefault(line, Fate(line, "excluded", outcome.category, outcome.reason))
                    continue
                made.append(consensus_mod.pair_row(outcome))
                heads_of.append(group - offset)
                chose_a.append(outcome.label == "a")
                for view in views:
                    for line in view.lines:
                        self.accepted.set(line)
            if made:
                pairs = tables(made, None)[0]
                mine = heads.take(pa.array(heads_of, pa.int64()))
                chose_a = pa.array(chose_a, pa.bool_())
                for name, column in (("prompt", mine.column("prompt")), ("chosen", pc.if_else(chose_a, mine.column("a"), mine.column("b"))),
                                     ("rejected", pc.if_else(chose_a, mine.column("b"), mine.column("a")))):
                    pairs = pairs.set_column(pairs.schema.get_field_index(name), pairs.schema.field(name), column)
                self.out.write(pairs)

    def _account(self, reread: Callable[[], Iterable[RawRecord]]) -> None:
        """Every record's one outcome: accepted, or its fate (written to the rejects, in line order, with its text)."""
        fates = self.fates
        for line in self.valid.lines():
            if line not in fates and line not in self.accepted:
                fates[line] = next((late[line] for late in self.late if line in late), None) or \
                    Fate(line, "excluded", "unused", self.unused_reason)
        for line in [line for line in fates if line in self.accepted]:
            del fates[line]  # a record that feeds a stored pair is accepted, whatever else it fed
        n_accepted = self.accepted.count()
        assert self.n_read == n_accepted + len(fates), "every record has exactly one outcome"
        missing = {line for line, fate in fates.items() if fate.raw is None}
        raws: dict[int, str] = {}
        if missing:
            for record in reread():  # a second streaming pass instead of keeping every record's text
                if record.line in missing:
                    raws[record.line] = record.raw
        for line in sorted(fates):
            fate = fates[line]
            self.out.reject(fate, fate.raw if fate.raw is not None else raws.get(line))
        self.out.n_read, self.out.n_accepted = self.n_read, n_accepted


def group(read: Callable[[], Iterable[RawRecord]], kind: str, ctx: KindContext, method: str, out, workers: int = 1,
          reread: Callable[[], Iterable[RawRecord]] | None = None) -> None:
    """Ingest's combining path: the records ``read()`` yields, grouped by pair, combined by ``method`` and written to ``out``.

    ``reread()`` yields the records again, for the text of those not accepted (default: ``read()``).
    """
    spec = SIGNAL_KINDS[kind]
    grouper = Grouper(out, method, ctx, spec.unused_reason)
    if spec.one_per_record:
        from contextlib import closing

        job = StreamJob(kind, ctx.source, ctx.rules, method, answer=answer_records)
        answered = _answered(read(), job, workers)
        with closing(answered):
            for chunk, parsed in answered:
                grouper.add(parsed, {record.line: record.raw for record in chunk} if parsed.fates else None)
    else:
        for parsed in parse_in_process(read(), kind, ctx, method):
            grouper.add(parsed)
    grouper.finish(reread or read)
