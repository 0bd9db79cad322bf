"""Per-pair features of a dataset version, and the quality report built from them.

One pass over ``pairs.parquet``, a few thousand rows at a time (optionally on several
processes), measures each pair: word counts, the style markers of both responses (refusal,
hedging, citations: the detectors the eval scorers use too, from ``prefline.text``), trivial-negative flags, a
MinHash signature for duplicates and the prompt's overlap with frozen suites. The report
(:func:`data_report`) then aggregates those arrays: coverage, bias profile, informative
negatives, duplicates, contamination. Nothing is held per pair as a Python object.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefline.data import dedup, store
from prefline.data.contamination import SuiteIndex, contamination_summary, match_prompts, suite_index
from prefline.data.coverage import Detector, parse_slices, style_detectors
from prefline.text.refusal_rules import CUE_GATE

REPORT_VERSION = 1


@dataclass(frozen=True)
class Thresholds:
    """When a share is lopsided enough to teach a style rather than a decision, and what a trivial negative is."""

    chosen_longer_max: float = 0.75   # warn when the chosen response is longer in more than this share of pairs
    chosen_shorter_max: float = 0.75  # ... or shorter in more than this share (the data then teaches brevity)
    marker_gap: float = 0.30          # warn when the share of chosen and of rejected responses that refuse (hedge, cite) differ by more
    position_skew: float = 0.15       # warn when judges pick the first-shown response in a share further than this from 0.5
    min_pairs: int = 20               # per-source and per-slice warnings need this many pairs (or signals); overall ones do not
    off_topic_overlap: float = 0.05   # rejected shares under this share of the prompt's content words: off-topic...
    on_topic_overlap: float = 0.15    # ...when the chosen response shares at least this share (the prompt has words to share)
    copy_jaccard: float = 0.9         # word-set Jaccard of rejected and prompt at which rejected is a copy of the prompt
    near_identical_jaccard: float = 0.9  # word-set Jaccard of rejected and chosen at which they are near-identical


FLAGS = ("empty", "truncated", "off_topic", "copy_of_prompt", "near_identical")
STOPWORDS = ("the and for are but not you your with this that from have has had was were will would can could "
             "should what when where which who whom why how all any its into out about than then them they "
             "there their our ours his her him she use using please tell give make does did".split())
RATIO_BINS = np.linspace(-3, 3, 25)  # log2(chosen words / rejected words), clipped to +-3
# The style detectors read text clause by clause (about 1.5 ms per pair for all three): they run
# on a sample of about this many pairs, drawn by pair id (the same pairs in every version).
MARKER_SAMPLE = 5000
MARKER_SEED = 20251


# --- one batch ---------------------------------------------------------------------------


@dataclass
class ScanContext:
    thresholds: Thresholds
    perms: tuple[np.ndarray, np.ndarray]
    index: SuiteIndex | None
    stopwords: dedup.SmallSet
    sample_cut: int = 1 << 64  # pairs whose draw key is under this get the style detectors (see MARKER_SAMPLE)
    light: bool = False  # only lengths and style markers (what a version diff compares)
    detectors: dict[str, Detector] = field(default_factory=dict)


_CONTEXT: ScanContext | None = None


def _init_worker(context: ScanContext) -> None:
    global _CONTEXT
    context.detectors = style_detectors()
    _CONTEXT = context


def batch_features(batch: pa.RecordBatch, context: ScanContext | None = None) -> dict[str, Any]:
    """Everything the report needs from one batch of pairs, as numpy arrays."""
    ctx = context or _CONTEXT
    t = ctx.thresholds
    n = batch.num_rows
    prompt = store.message_text(batch.column("prompt"), "user")
    chosen = store.message_text(batch.column("chosen"))
    rejected = store.message_text(batch.column("rejected"))
    tp, tc, tr = dedup.tokenize(prompt), dedup.tokenize(chosen), dedup.tokenize(rejected)
    out: dict[str, Any] = {"n": n, "prompt_words": tp.counts, "chosen_words": tc.counts, "rejected_words": tr.counts}

    sampled = in_sample(batch.column("id"), ctx.sample_cut)
    rows = pa.array(np.flatnonzero(sampled), pa.int64())
    texts = (chosen.take(rows).to_pylist(), rejected.take(rows).to_pylist())
    markers = {}
    for name, detector in ctx.detectors.items():
        if detector is not None:
            markers[name] = tuple(_spread(detector(side), sampled) for side in texts)
    out["sampled"], out["markers"] = sampled, markers
    if ctx.light:
        return out

    def content(tokens: dedup.Tokens) -> np.ndarray:
        return (tokens.lengths >= 3) & ~ctx.stopwords(tokens.hashes)

    p_stems, c_stems, r_stems = (dedup.word_sets(tokens, content(tokens), stems=True) for tokens in (tp, tc, tr))
    p_content = dedup.set_sizes(p_stems, n)
    overlap_r = np.where(p_content > 0, dedup.intersection_sizes(p_stems, r_stems, n) / np.maximum(p_content, 1), 1.0)
    overlap_c = np.where(p_content > 0, dedup.intersection_sizes(p_stems, c_stems, n) / np.maximum(p_content, 1), 1.0)
    p_words, c_words, r_words = dedup.word_sets(tp), dedup.word_sets(tc), dedup.word_sets(tr)
    seq_p, seq_c, seq_r = dedup.sequence_hashes(tp), dedup.sequence_hashes(tc), dedup.sequence_hashes(tr)
    out["flags"] = {
        "empty": tr.counts == 0,
        "truncated": dedup.ends_mid_sentence(rejected) & ~dedup.ends_mid_sentence(chosen) & (tr.counts < tc.counts) & (tr.counts > 0),
        "off_topic": _off_topic((p_content >= 3) & (overlap_r < t.off_topic_overlap) & (overlap_c >= t.on_topic_overlap) & (tr.counts > 0),
                                chosen, rejected, ctx.detectors.get("refuses")),
        "copy_of_prompt": (tr.counts > 0) & (dedup.jaccard(p_words, r_words, n) >= t.copy_jaccard),
        "near_identical": (seq_c == seq_r) | (dedup.jaccard(c_words, r_words, n) >= t.near_identical_jaccard),
    }
    with np.errstate(over="ignore"):
        out["pair_keys"] = dedup.fmix64(seq_p * np.uint64(0x9E3779B97F4A7C15) ^ dedup.fmix64(seq_c ^ dedup.fmix64(seq_r)))
    # the example (prompt + chosen) as one shingle set: the union of the two texts' shingles
    dp, vp = dedup.shingles(tp)
    dc, vc = dedup.shingles(tc)
    docs = np.concatenate([dp, dc])
    order = np.argsort(docs, kind="stable")
    out["example_sigs"] = dedup.signatures(docs[order], np.concatenate([vp, vc])[order], n, ctx.perms)
    out["contamination"] = match_prompts(ctx.index, tp, ctx.perms) if ctx.index is not None else []
    return out


def in_sample(ids: pa.Array, cut: int) -> np.ndarray:
    """Whether each pair is in the marker sample: its id's draw key is under ``cut`` (out of 2**64)."""
    if cut >= 1 << 64:
        return np.ones(len(ids), dtype=bool)
    keys = dedup.fmix64(dedup.sequence_hashes(dedup.tokenize(ids)) ^ np.uint64(MARKER_SEED))
    return keys < np.uint64(cut)


def _spread(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    out = np.zeros(where.size, dtype=bool)
    out[where] = values
    return out


def _off_topic(candidates: np.ndarray, chosen: pa.Array, rejected: pa.Array, refuses: Detector | None) -> np.ndarray:
    """Candidates where neither response refuses: a pair about refusing teaches that decision even when
    one side shares no words with the prompt.

    The refusal classifier is only run on texts holding one of its cue strings (its own
    ``CUE_GATE``, when it has one): at about a millisecond a text, running it on every
    candidate of a large dataset would cost minutes.
    """
    if refuses is None or not candidates.any():
        return candidates
    gate = CUE_GATE  # the refusal detector's own cue gate (prefline.text.refusal_rules)
    out = candidates.copy()
    for side in (rejected, chosen):
        rows = np.flatnonzero(out)
        texts = side.take(pa.array(rows, pa.int64())).to_pylist()
        for row, text in zip(rows.tolist(), texts):
            if gate.search(text.lower().replace("’", "'")) and refuses.fn(text):
                out[row] = False
    return out


# --- the whole dataset -------------------------------------------------------------------


@dataclass
class PairFeatures:
    """The scan of a whole dataset: aligned per-pair arrays plus the distinct sources and slices."""

    n: int
    ids: pa.ChunkedArray
    sources: list[str]
    source_code: np.ndarray
    slices: list[dict[str, str]]
    slices_code: np.ndarray
    prompt_words: np.ndarray
    chosen_words: np.ndarray
    rejected_words: np.ndarray
    markers: dict[str, tuple[np.ndarray, np.ndarray]]
    sampled: np.ndarray
    detectors: dict[str, str | None]
    flags: dict[str, np.ndarray]
    pair_keys: np.ndarray
    example_sigs: np.ndarray
    contamination: list[tuple[int, int, float, float]]
    index: SuiteIndex | None
    seconds: float = 0.0


def scan(pairs, ledger=None, thresholds: Thresholds | None = None, workers: int | None = None, light: bool = False,
         marker_sample: int | None = MARKER_SAMPLE) -> PairFeatures:
    """Measure every pair of ``pairs`` (see ``store.pair_batches`` for the accepted forms).

    With a ``ledger``, prompts are also matched against its frozen suites. ``workers``
    processes share the batches (default: one under 20k pairs, else the CPUs available, at most
    4; 1 runs in-process).
    ``light`` measures only lengths and style markers. Style markers are detected on about
    ``marker_sample`` pairs (None or 0: all of them).
    """
    started = time.perf_counter()
    thresholds = thresholds or Thresholds()
    context = ScanContext(thresholds=thresholds, perms=dedup.permutations(),
                          index=suite_index(ledger) if ledger is not None and not light else None,
                          stopwords=dedup.SmallSet(dedup.tokenize(pa.array([" ".join(STOPWORDS)])).hashes), light=light)
    n = store.row_count(pairs)
    if marker_sample and marker_sample < n:
        context.sample_cut = int(marker_sample / n * (1 << 64))
    if workers is None:  # starting processes costs more than it saves on small datasets
        workers = 1 if n < 20_000 else min(4, len(os.sched_getaffinity(0)))

    meta = MetaCollector()
    batches = _with_meta(store.pair_batches(pairs, ["id", "prompt", "chosen", "rejected", "source", "slices"]), meta)
    if workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(context,))
        results = _bounded(pool, batches, 2 * workers)
    else:
        pool = None
        _init_worker(context)
        results = map(batch_features, batches)
    try:
        features = _collect(results, n, meta, light)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    features.detectors = {name: d.origin for name, d in style_detectors().items()}
    features.index = context.index
    features.seconds = time.perf_counter() - started
    return features


def _bounded(pool, batches, window: int):
    """Results in order, with at most ``window`` batches in flight (``Pool.imap`` would read the whole file ahead)."""
    from collections import deque

    pending: deque = deque()
    for batch in batches:
        pending.append(pool.apply_async(batch_features, (batch,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


class MetaCollector:
    """Ids, sources and slices, read in the main process as batches go past (workers get the texts)."""

    def __init__(self) -> None:
        self.ids: list[pa.Array] = []
        self.codes: dict[str, list[np.ndarray]] = {"source": [], "slices": []}
        self.values: dict[str, dict[str, int]] = {"source": {}, "slices": {}}

    def add(self, batch: pa.RecordBatch) -> None:
        self.ids.append(batch.column("id"))
        for column in ("source", "slices"):
            values = batch.column(column) if column in batch.schema.names else pa.nulls(batch.num_rows, pa.string())
            encoded = pc.dictionary_encode(pc.fill_null(values.cast(pa.string()), ""))
            known = self.values[column]
            mapping = np.array([known.setdefault(v, len(known)) for v in encoded.dictionary.to_pylist()], dtype=np.int32)
            self.codes[column].append(mapping[encoded.indices.to_numpy(zero_copy_only=False)] if len(mapping) else
                                      np.zeros(batch.num_rows, np.int32))


def _with_meta(batches, meta: MetaCollector):
    for batch in batches:
        meta.add(batch)
        yield batch


def _collect(results, n: int, meta: MetaCollector, light: bool = False) -> PairFeatures:
    words = {k: np.zeros(n, dtype=np.int32) for k in ("prompt_words", "chosen_words", "rejected_words")}
    flags = {k: np.zeros(n, dtype=bool) for k in FLAGS}
    markers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sampled = np.zeros(n, dtype=bool)
    keys = np.zeros(n, dtype=np.uint64)
    sigs = np.zeros((n, dedup.NUM_PERM), dtype=np.uint32) if not light else np.zeros((0, dedup.NUM_PERM), np.uint32)
    contamination = []
    at = 0
    for part in results:
        stop = at + part["n"]
        for k in words:
            words[k][at:stop] = part[k]
        for k in FLAGS if "flags" in part else ():
            flags[k][at:stop] = part["flags"][k]
        sampled[at:stop] = part["sampled"]
        for name, (c, r) in part["markers"].items():
            if name not in markers:
                markers[name] = (np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
            markers[name][0][at:stop], markers[name][1][at:stop] = c, r
        if "pair_keys" in part:
            keys[at:stop] = part["pair_keys"]
            sigs[at:stop] = part["example_sigs"]
            contamination += [(at + row, item, o, j) for row, item, o, j in part["contamination"]]
        at = stop
    sources = list(meta.values["source"])
    return PairFeatures(
        n=n, ids=pa.chunked_array(meta.ids, pa.string()), sources=sources,
        source_code=np.concatenate(meta.codes["source"]) if meta.codes["source"] else np.zeros(0, np.int32),
        slices=parse_slices(list(meta.values["slices"])),
        slices_code=np.concatenate(meta.codes["slices"]) if meta.codes["slices"] else np.zeros(0, np.int32),
        markers=markers, sampled=sampled, detectors={}, flags=flags, pair_keys=keys, example_sigs=sigs, contamination=contamination,
        index=None, **words)


# --- informative negatives -----------------------------------------------------------------


def negatives_summary(features: PairFeatures, close: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trivial-negative flags with examples, and how many pairs teach nothing.

    A pair teaches nothing when its rejected response is flagged (empty, truncated, off-topic,
    a copy of the prompt, identical or near-identical to the chosen one) or, when close calls
    were scored, when the reference model already prefers the chosen response by a wide margin.
    """
    flagged = np.zeros(features.n, dtype=bool)
    for values in features.flags.values():
        flagged |= values
    per_pair = sum(v.astype(np.int32) for v in features.flags.values())
    section: dict[str, Any] = {
        "flags": {name: int(values.sum()) for name, values in features.flags.items()},
        "flags_per_pair": {str(k): int((per_pair == k).sum()) for k in range(0, 3)} | {"3+": int((per_pair >= 3).sum())},
        "examples": {name: features.ids.take(pa.array(np.flatnonzero(values)[:dedup.MAX_LISTED])).to_pylist()
                     for name, values in features.flags.items() if values.any()},
        "trivial_pairs": int(flagged.sum()),
        "close_calls": close,
    }
    nothing = flagged.copy()
    if close is not None:
        nothing[close.pop("_separated_rows")] = True
    section["teach_nothing"] = int(nothing.sum())
    section["teach_nothing_share"] = round(float(nothing.mean()), 4) if features.n else 0.0
    return section


# --- the report ----------------------------------------------------------------------------


def data_report(dataset: dict[str, Any], ledger, targets=None, close_calls: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                thresholds: Thresholds | None = None, workers: int | None = None,
                marker_sample: int | None = MARKER_SAMPLE) -> dict[str, Any]:
    """The quality report of one dataset version, as JSON-ready data (see docs/data.md).

    ``close_calls``: a function that scores the version's pairs with a reference model
    (``prefline.evals.close_calls.scorer``); without it, the report has no close calls.
    """
    from prefline.data.coverage import bias_profile, coverage, position_bias
    from prefline.data.lineage import backfill, lineage

    thresholds = thresholds or Thresholds()
    backfill(ledger, dataset)  # an ingested version's link to its previous one, recorded once, for the report's lineage
    started = time.perf_counter()
    features = scan(dataset, ledger, thresholds, workers, marker_sample=marker_sample)
    timings = {"scan": round(features.seconds, 3)}
    close = None
    if close_calls is not None:
        mark = time.perf_counter()
        close = close_calls(dataset)
        timings["close_calls"] = round(time.perf_counter() - mark, 3)
    bias = bias_profile(features, thresholds, RATIO_BINS)
    bias["detectors"] = features.detectors
    bias["marker_sample"] = {"pairs": int(features.sampled.sum()), "target": marker_sample or None, "seed": MARKER_SEED}
    bias["position"] = position_bias(dataset.get("path"), thresholds)
    if bias["position"]:
        bias["warnings"] += bias["position"].pop("warnings")
    mark = time.perf_counter()
    duplicates = dedup.duplicates_summary(features.pair_keys, features.example_sigs, features.ids)
    timings["duplicates"] = round(time.perf_counter() - mark, 3)
    code_counts = np.bincount(features.slices_code, minlength=len(features.slices))
    report = {
        "report_version": REPORT_VERSION,
        "dataset": {key: dataset.get(key) for key in ("id", "name", "version", "content_hash", "path")} | {"pairs": features.n},
        "lineage": lineage(ledger, dataset),
        "thresholds": asdict(thresholds),
        "coverage": coverage(code_counts, features.slices, targets),
        "bias": bias,
        "negatives": negatives_summary(features, close),
        "duplicates": duplicates,
        "contamination": contamination_summary(features.index, features.contamination, features.ids),
    }
    timings["total"] = round(time.perf_counter() - started, 3)
    report["timings_s"] = timings
    return report
