"""Consensus out of core: grouping signals by pair on disk gives exactly what assembling the file in memory gives."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from conftest import DATA, write_jsonl
from prefline.data import grouping
from prefline.data.ingest import assemble, ingest, write_assembly
from test_ingest import _version

ANNOTATORS = [f"r{i}" for i in range(7)]


def _pairwise_rows(n_pairs: int, seed: int) -> list[str]:
    """Several annotators per pair (some of them unreliable), in shuffled order, with every kind of odd record:
    unreadable lines, invalid rows, exact repeats, split votes, ties, axes, slices, weights and unknown fields."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_pairs):
        prompt = f"Question {p % (n_pairs // 2 + 1)}: how do I do thing {p}?"
        a, b = f"Answer A to {p}.", f"Answer B to {p}, longer {'x' * (p % 7)}."
        truth = rng.choice("ab")
        for annotator in rng.sample(ANNOTATORS, rng.randint(1, 4)):
            choice = truth if rng.random() < (0.5 if annotator == "r6" else 0.85) else rng.choice(["a", "b", "tie"])
            row = {"prompt": prompt, "response_a": a, "response_b": b, "choice": choice, "annotator": annotator,
                   "slices": {"intent": rng.choice(["howto", "factual"])}}
            if rng.random() < 0.3:
                row["axes"] = {"tone": rng.choice(["a", "b", "tie"])}
            if rng.random() < 0.2:
                row["weight"] = rng.choice([0.5, 0.8])
            if rng.random() < 0.1:
                row["rationale"] = "because"
            if rng.random() < 0.05:
                row["batch_id"] = f"batch-{p}"  # a field the kind does not use: kept under 'extra'
            if rng.random() < 0.5:  # the same pair shown the other way round: one key
                row["response_a"], row["response_b"] = b, a
                row["choice"] = {"a": "b", "b": "a", "tie": "tie"}[choice]
            rows.append(json.dumps(row))
    rng.shuffle(rows)
    for at in sorted(rng.sample(range(len(rows)), 6)):
        rows.insert(at, rng.choice(["{not json", json.dumps({"prompt": "p", "response_a": "x"}),
                                    json.dumps({"prompt": "p", "response_a": "x", "response_b": "x", "choice": "a"})]))
    rows.extend(rng.sample(rows, 5))  # exact repeats of earlier records
    return rows


def _in_memory(read, kind, ctx, method, out, workers=1, reread=None):
    write_assembly(out, assemble(read(), kind, ctx, method), read)


@pytest.fixture
def in_memory(monkeypatch):
    def run(*args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(grouping, "group", _in_memory)
            return ingest(*args, **kwargs)

    return run


@pytest.mark.parametrize("method", ["majority", "dawid-skene"])
def test_grouped_ingest_of_a_generated_file_matches_the_in_memory_one(tmp_path, ledger, in_memory, monkeypatch, method):
    """Pairwise votes: the same pairs in the same order, the same signals, rejects, counts and content hash,
    in this process and on worker processes, with groups that span many chunks."""
    monkeypatch.setattr(grouping, "WRITE_BATCH", 7)  # chunks, pair blocks and head batches of 7: groups span them
    monkeypatch.setattr(sys.modules["prefline.data.ingest"], "WRITE_BATCH", 7)
    path = write_jsonl(tmp_path / "votes.jsonl", _pairwise_rows(120, seed=1))
    expected = _version(in_memory(path, "memory", ledger, signal="pairwise", consensus=method), ledger)
    grouped = _version(ingest(path, "grouped", ledger, signal="pairwise", consensus=method), ledger)
    on_workers = _version(ingest(path, "workers", ledger, signal="pairwise", consensus=method, workers=2), ledger)
    assert grouped == expected
    assert on_workers == expected
    counts = {kind: sum(r["kind"] == kind for r in expected["rejects"]) for kind in ("rejected", "duplicate", "excluded")}
    assert min(counts.values()) > 0 and expected["n_pairs"] > 50  # every outcome occurs
    assert any(row["n_signals"] >= 3 for row in expected["pairs"])


@pytest.mark.parametrize("file, kind, method", [
    ("pairwise.jsonl", "pairwise", "majority"), ("judge.jsonl", "judge", "majority"), ("judge.jsonl", "judge", "dawid-skene"),
    ("ratings.jsonl", "ratings", "majority"), ("ratings_long.csv", "ratings", "majority"),
    ("ratings.jsonl", "ratings", "dawid-skene"), ("events.jsonl", "events", "majority"), ("pairwise.csv", "pairwise", "dawid-skene"),
])
def test_grouped_ingest_of_the_sample_files_matches_the_in_memory_one(tmp_path, ledger, in_memory, file, kind, method):
    path = DATA / "signals" / file
    expected = _version(in_memory(path, "memory", ledger, signal=kind, consensus=method), ledger)
    assert _version(ingest(path, "grouped", ledger, signal=kind, consensus=method), ledger) == expected


def test_the_spool_of_pair_messages_is_gone_after_ingest(tmp_path, ledger):
    path = write_jsonl(tmp_path / "votes.jsonl", _pairwise_rows(10, seed=2))
    result = ingest(path, "d", ledger, signal="pairwise", consensus="majority")
    assert sorted(p.name for p in Path(result.path).parent.iterdir()) == ["pairs.parquet", "rejects.jsonl", "signals.parquet"]
