"""Contamination: training prompts that overlap the prompts of a frozen evaluation suite.

A pair trained on an evaluation item's prompt makes that item measure memory instead of
behaviour. Every *frozen* suite in the ledger is checked (frozen suites keep their items in
the ledger, so this needs no suite files), item by item, in two ways:

- **n-gram overlap**: the share of the item's word ``NGRAM``-grams (its whole text when it is
  shorter) that also occur in the training prompt; at least ``MIN_NGRAM_OVERLAP`` flags it.
- **near duplicate**: the estimated Jaccard similarity of the two texts' word 3-shingles
  (MinHash, as for duplicates within a dataset); at least ``NEAR_DUP_THRESHOLD`` flags it.

Texts are an item's last user message and a pair's last user message. Only prompts that
share at least one 3-shingle with some item are examined further; any flagged prompt does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from prefline.data import dedup, lineage, store

NGRAM = 8                   # words per n-gram for the overlap test
MIN_NGRAM_OVERLAP = 0.5     # share of an item's n-grams found in a training prompt that flags it
NEAR_DUP_THRESHOLD = dedup.NEAR_DUP_THRESHOLD
MAX_PAIRS_LISTED = 20


@dataclass
class Postings:
    """Which items hold each gram: ``values`` sorted (repeated once per item), ``items`` aligned; grams per item."""

    values: np.ndarray
    items: np.ndarray
    per_item: np.ndarray

    @classmethod
    def of(cls, docs: np.ndarray, values: np.ndarray, n_items: int) -> Postings:
        keys = dedup.sorted_unique((values.astype(np.uint64) << np.uint64(32)) | docs.astype(np.uint64))
        items = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
        return cls(values=(keys >> np.uint64(32)).astype(np.int64), items=items, per_item=np.bincount(items, minlength=n_items))

    def shared(self, docs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(doc, item, number of distinct grams they share) for every doc-item pair sharing one."""
        keys = dedup.sorted_unique((docs.astype(np.int64) << 32) | values.astype(np.int64))
        docs, values = keys >> 32, keys & 0xFFFFFFFF
        lo, hi = np.searchsorted(self.values, values, "left"), np.searchsorted(self.values, values, "right")
        counts = hi - lo
        if not counts.any():
            return (np.zeros(0, np.int64),) * 3
        at = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        pairs = np.sort((np.repeat(docs, counts) << 32) | self.items[at])
        firsts = np.flatnonzero(np.concatenate([[True], pairs[1:] != pairs[:-1]]))
        return pairs[firsts] >> 32, pairs[firsts] & 0xFFFFFFFF, np.diff(np.append(firsts, pairs.size))


@dataclass
class SuiteIndex:
    """The prompts of the frozen suites, prepared for matching against training prompts."""

    items: list[dict[str, Any]]     # suite, version, hash, item id, text
    shingles: Postings              # word 3-shingles
    ngrams: Postings                # word NGRAM-grams
    sigs: np.ndarray                # (items, NUM_PERM) MinHash signatures of the 3-shingles
    suites: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.items


def suite_index(ledger, perms=None) -> SuiteIndex:
    """Index the prompts of every frozen suite recorded in ``ledger``."""
    items: list[dict[str, Any]] = []
    suites = []
    for row in ledger.list_suites():
        if not row["frozen"]:
            continue
        full = ledger.get_suite(row["hash"])
        suites.append({"suite": row["name"], "version": row["version"], "hash": row["hash"], "items": len(full["items"])})
        for item in full["items"]:
            users = [m["content"] for m in item.get("messages", []) if m.get("role") == "user"]
            items.append({"suite": row["name"], "version": row["version"], "suite_hash": row["hash"],
                          "item_id": item["id"], "text": users[-1] if users else ""})
    return index_texts(items, suites, perms)


def index_texts(items: list[dict[str, Any]], suites: list[dict[str, Any]] | None = None, perms=None) -> SuiteIndex:
    perms = perms or dedup.permutations()
    tokens = dedup.tokenize(pa.array([i["text"] for i in items], pa.string()))
    docs, values = dedup.shingles(tokens)
    return SuiteIndex(items=items, shingles=Postings.of(docs, values, len(items)),
                      ngrams=Postings.of(*dedup.shingles(tokens, NGRAM), len(items)),
                      sigs=dedup.signatures(docs, values, len(items), perms), suites=suites or [])


# Both tests need a prompt to share at least half of an item's 3-shingles (an n-gram overlap of
# 1/2 covers at least half of them; a Jaccard similarity of 0.8, at least 80%): pairs sharing
# fewer are not looked at. The margin below 1/2 allows for repeated shingles.
CANDIDATE_SHARE = 0.4


def match_prompts(index: SuiteIndex, tokens: dedup.Tokens, perms) -> list[tuple[int, int, float, float]]:
    """(prompt row, item, n-gram overlap, estimated Jaccard) for every flagged prompt-item match."""
    if index.empty:
        return []
    docs, values = dedup.shingles(tokens)
    doc, item, count = index.shingles.shared(docs, values)
    close = count >= CANDIDATE_SHARE * index.shingles.per_item[item]
    doc, item = doc[close], item[close]
    if not doc.size:
        return []
    rows = dedup.sorted_unique(doc)
    keep = dedup.contains(rows, docs)
    sigs = dedup.signatures(docs[keep], values[keep], tokens.offsets.size - 1, perms)
    similarity = dedup.jaccard_estimate(sigs[doc], index.sigs[item])
    gram_docs, gram_values = dedup.shingles(tokens, NGRAM)
    wanted = dedup.contains(rows, gram_docs)
    g_doc, g_item, g_count = index.ngrams.shared(gram_docs[wanted], gram_values[wanted])
    overlap = dict(zip(zip(g_doc.tolist(), g_item.tolist()), (g_count / np.maximum(index.ngrams.per_item[g_item], 1)).tolist()))
    found = []
    for d, i, j in zip(doc.tolist(), item.tolist(), similarity.tolist()):
        o = overlap.get((d, i), 0.0)
        if o >= MIN_NGRAM_OVERLAP or j >= NEAR_DUP_THRESHOLD:
            found.append((d, i, round(o, 4), round(j, 4)))
    return found


def contamination_summary(index: SuiteIndex, matches: list[tuple[int, int, float, float]], ids) -> dict[str, Any]:
    """The report's section: the suites checked, and each contaminated item with its training pairs.

    ``matches`` holds (pair row, item, overlap, jaccard); ``ids`` maps pair rows to pair ids.
    """
    by_item: dict[int, list[tuple[int, float, float]]] = {}
    for row, item, overlap, jaccard in matches:
        by_item.setdefault(item, []).append((row, overlap, jaccard))
    listed = []
    for item, hits in sorted(by_item.items(), key=lambda kv: (index.items[kv[0]]["suite"], index.items[kv[0]]["item_id"])):
        meta = index.items[item]
        rows = sorted({r for r, _, _ in hits})
        listed.append({
            "suite": meta["suite"], "version": meta["version"], "item_id": meta["item_id"], "prompt": meta["text"][:300],
            "pairs": len(rows), "pair_ids": ids.take(pa.array(rows[:MAX_PAIRS_LISTED])).to_pylist(),
            "max_ngram_overlap": max(h[1] for h in hits), "max_jaccard": max(h[2] for h in hits),
        })
    return {
        "suites": index.suites, "ngram": NGRAM, "min_ngram_overlap": MIN_NGRAM_OVERLAP, "near_dup_threshold": NEAR_DUP_THRESHOLD,
        "contaminated_pairs": len({row for row, *_ in matches}), "contaminated_items": len(listed), "items": listed,
    }


def scan(pairs, index: SuiteIndex, perms=None) -> tuple[list[tuple[int, int, float, float]], pa.ChunkedArray]:
    """Every flagged (pair row, item, overlap, jaccard) in ``pairs``, and the pair ids by row."""
    perms = perms or dedup.permutations()
    matches: list[tuple[int, int, float, float]] = []
    ids = []
    offset = 0
    for batch in store.pair_batches(pairs, ["id", "prompt"]):
        ids.append(batch.column("id"))
        if not index.empty:
            tokens = dedup.tokenize(store.message_text(batch.column("prompt"), "user"))
            matches += [(offset + r, item, o, j) for r, item, o, j in match_prompts(index, tokens, perms)]
        offset += batch.num_rows
    return matches, pa.chunked_array(ids, pa.string())


def contaminated_ids(pairs, ledger) -> set[str]:
    """The ids of the pairs whose prompt overlaps an item of a frozen suite in ``ledger``.

    ``pairs`` is anything ``prefline.data.store.pair_batches`` reads: a dataset row, a
    ``pairs.parquet`` path, a ``pyarrow.Table``, a ``datasets.Dataset`` or a list of rows.
    """
    matches, ids = scan(pairs, suite_index(ledger))
    rows = sorted({row for row, *_ in matches})
    return set(ids.take(pa.array(rows, pa.int64())).to_pylist()) if rows else set()


def decontaminate(dataset: str, name: str, ledger, major_share: float | None = None) -> dict[str, Any]:
    """Write a new version of ``name``: ``dataset`` without its contaminated pairs, recorded as lineage.

    Each removed pair is kept in the version's ``rejects.jsonl`` with the suite items it matched.
    """
    import pyarrow.compute as pc

    parent = ledger.get_dataset(dataset)
    index = suite_index(ledger)
    matches, ids = scan(parent, index)
    removed_rows = sorted({row for row, *_ in matches})
    removed = ids.take(pa.array(removed_rows, pa.int64())).to_pylist() if removed_rows else []
    reasons: dict[str, list[str]] = {}
    for row, item, overlap, jaccard in matches:
        meta = index.items[item]
        reasons.setdefault(ids[row].as_py(), []).append(
            f"{meta['suite']}@{meta['version']}:{meta['item_id']} (n-gram overlap {overlap:.2f}, jaccard {jaccard:.2f})")
    table = store.pairs_table(parent)
    if removed:
        table = table.filter(pc.invert(pc.is_in(table.column("id"), pa.array(removed, pa.string()))))
    rejects = [{"id": pair_id, "kind": "contaminated", "reason": "; ".join(reasons[pair_id])} for pair_id in removed]
    params = {"suites": index.suites, "removed": len(removed), "ngram": NGRAM, "min_ngram_overlap": MIN_NGRAM_OVERLAP,
              "near_dup_threshold": NEAR_DUP_THRESHOLD}
    return lineage.write_version(table, name, ledger, parents=[(parent, "decontaminate", params)], rejects=rejects,
                              major_share=major_share)
