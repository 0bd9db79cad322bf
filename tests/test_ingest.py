"""Ingest: every record is accounted for, bad rows are kept with file, line and reason."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATA, pair, write_jsonl
from prefline.data.ingest import ingest
from prefline.data.store import load_pairs, load_signals
from prefline.data.schema import SCHEMA_VERSION, RowError, Signal, pair_from_row, pair_id
from prefline.data.signals import SIGNAL_KINDS
from prefline.errors import PreflineError
from prefline.hashing import content_hash


def test_conversational_and_plain_forms_normalize_to_messages():
    plain = pair_from_row({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."})
    conv = pair_from_row({"prompt": [{"role": "user", "content": "Hi?"}],
                          "chosen": [{"role": "assistant", "content": "Hello."}],
                          "rejected": [{"role": "assistant", "content": "Go away."}]})
    assert plain.prompt == [{"role": "user", "content": "Hi?"}]
    assert plain.chosen == [{"role": "assistant", "content": "Hello."}]
    assert plain.id == conv.id  # same content, same id
    assert plain.weight == 1.0


@pytest.mark.parametrize("row, reason", [
    ({"prompt": "p", "chosen": "c"}, "missing field(s): 'rejected'"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical"),
    ({"prompt": "  ", "chosen": "c", "rejected": "r"}, "'prompt' is an empty string"),
    ({"prompt": 5, "chosen": "c", "rejected": "r"}, "'prompt' must be a string or a list of messages, got int"),
    ({"prompt": [{"role": "robot", "content": "x"}], "chosen": "c", "rejected": "r"}, "'prompt[0]'.role must be one of"),
    ({"prompt": [{"role": "user", "content": 3}], "chosen": "c", "rejected": "r"}, "'prompt[0]'.content must be a string"),
    ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen": "c", "rejected": "r"}, "last message must be the user's"),
    ({"prompt": "p", "chosen": [{"role": "user", "content": "c"}], "rejected": "r"}, "'chosen' must start with an assistant message"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "slices": {"intent": 3}}, "'slices' must be an object of string tags"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "weight": 0}, "'weight' must be a number in (0, 1]"),
    ([1, 2], "a row must be a JSON object, got list"),
])
def test_bad_rows_name_the_field(row, reason):
    with pytest.raises(RowError) as info:
        pair_from_row(row)
    assert reason in str(info.value)


def test_lone_surrogate_escape_is_a_rejected_row(tmp_path, ledger):
    path = write_jsonl(tmp_path / "pairs.jsonl", ['{"prompt": "hi \\ud800", "chosen": "a", "rejected": "b"}',
                                                  '{"prompt": "smile \\ud83d\\ude00", "chosen": "a", "rejected": "b"}'])
    result = ingest(path, "surrogates", ledger)
    assert (result.n_read, result.n_accepted, result.n_rejected) == (2, 1, 1)  # a proper pair of escapes is one character
    reject = json.loads(open(result.rejects_path).readline())
    assert reject["line"] == 1 and "lone surrogate" in reject["reason"] and "\\ud800" in reject["raw"]


def test_counts_reconcile_and_rejects_are_kept(tmp_path, ledger):
    good = [pair(i) for i in range(5)]
    lines = [*good,
             "{not json",                                   # line 6
             json.dumps(good[0]),                           # line 7: duplicate of line 1
             json.dumps({"prompt": "p", "chosen": "c"}),    # line 8: missing field
             "",                                            # blank: not a record
             json.dumps({"prompt": "plain?", "chosen": "Yes.", "rejected": "No."})]  # line 10: valid plain form
    path = write_jsonl(tmp_path / "pairs.jsonl", lines)
    with open(path, "ab") as handle:
        handle.write(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')  # line 11: latin-1 byte

    result = ingest(path, "mix", ledger)
    assert (result.n_read, result.n_accepted, result.n_rejected, result.n_duplicates) == (10, 6, 3, 1)
    assert result.n_read == result.n_accepted + result.n_rejected + result.n_duplicates

    rejects = [json.loads(line) for line in open(result.rejects_path)]
    assert [(r["line"], r["kind"]) for r in rejects] == [(6, "rejected"), (7, "duplicate"), (8, "rejected"), (11, "rejected")]
    assert rejects[0]["reason"].startswith("not valid JSON")
    assert rejects[1]["reason"] == "duplicate of line 1"
    assert "not valid UTF-8" in rejects[3]["reason"]
    assert rejects[2]["raw"] == json.dumps({"prompt": "p", "chosen": "c"})  # the user's text, unchanged
    assert any(p.startswith(f"{path}:8: rejected: missing field") for p in result.problems)

    table = pq.read_table(result.path).to_pylist()
    assert len(table) == 6
    assert table[0]["prompt"] == good[0]["prompt"]
    assert json.loads(table[0]["slices"]) == {"intent": "factual"}
    assert table[0]["source"] == "pairs.jsonl"

    row = ledger.get_dataset("mix")
    assert (row["n_read"], row["n_accepted"], row["n_rejected"], row["n_duplicates"]) == (10, 6, 3, 1)
    assert row["meta"]["slices"]["intent"] == {"factual": 3, "coding": 2}
    assert len(load_pairs(row)) == 6


def test_versions_and_content_hash(tmp_path, ledger):
    path = write_jsonl(tmp_path / "a.jsonl", [pair(i) for i in range(3)])
    first = ingest(path, "d", ledger)
    again = ingest(path, "d", ledger)
    changed = ingest(write_jsonl(tmp_path / "b.jsonl", [pair(i) for i in range(4)]), "d", ledger)
    assert (first.version, again.version, changed.version) == (1, 2, 3)
    assert first.content_hash == again.content_hash != changed.content_hash
    assert first.path != again.path


def test_file_with_no_valid_rows_is_an_error(tmp_path, ledger):
    path = write_jsonl(tmp_path / "bad.jsonl", ["{oops", json.dumps({"prompt": "p"})])
    with pytest.raises(PreflineError, match=r"no valid preference pairs among 2 record\(s\); first problem: .*bad.jsonl:1"):
        ingest(path, "d", ledger)
    assert ledger.list_datasets() == []


def test_missing_file_and_bad_names(tmp_path, ledger):
    with pytest.raises(PreflineError, match="no such file"):
        ingest(tmp_path / "nope.jsonl", "d", ledger)
    with pytest.raises(PreflineError, match="dataset name '../x'"):
        ingest(tmp_path / "nope.jsonl", "../x", ledger)
    (tmp_path / "x.txt").write_text("{}")
    with pytest.raises(PreflineError, match="cannot tell the format"):
        ingest(tmp_path / "x.txt", "d", ledger)


def test_ingest_is_atomic_when_the_ledger_write_fails(tmp_path, ledger, monkeypatch, prefline_home):
    path = write_jsonl(tmp_path / "a.jsonl", [pair(i) for i in range(3)])

    def boom(**_):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ledger, "add_dataset", boom)
    with pytest.raises(RuntimeError):
        ingest(path, "d", ledger)
    assert list((prefline_home / "datasets" / "d").iterdir()) == []
    assert ledger.list_datasets() == []


# --- streaming ----------------------------------------------------------------------------------


def test_plain_pairs_are_written_chunk_by_chunk(tmp_path, ledger, monkeypatch):
    """A chunk is validated, de-duplicated and written before the next records are read."""
    ingest_mod = sys.modules["prefline.data.ingest"]  # the package exports a function of the same name
    monkeypatch.setattr(ingest_mod, "WRITE_BATCH", 2)
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(6)] + [pair(0)])  # line 7 repeats line 1
    read_so_far, at_write = [], []
    real_read, real_write = ingest_mod.reader_for(path), pq.ParquetWriter.write_table

    def counting_read(*args):
        for record in real_read(*args):
            read_so_far.append(record.line)
            yield record

    def noting_write(self, table, *args, **kwargs):
        at_write.append(len(read_so_far))
        return real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(ingest_mod, "reader_for", lambda *_: counting_read)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", noting_write)
    result = ingest(path, "d", ledger)
    assert at_write == [2, 4, 6]  # each chunk's pairs, written once its records are read (the last, a duplicate, has none)
    assert (result.n_read, result.n_accepted, result.n_duplicates) == (7, 6, 1)
    assert [json.loads(line)["reason"] for line in open(result.rejects_path)] == ["duplicate of line 1"]


def test_content_hash_is_that_of_the_ids_and_weights(tmp_path, ledger):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i, weight=0.25 * (1 + i % 4)) for i in range(5)])
    result = ingest(path, "d", ledger)
    table = pq.read_table(result.path)
    assert result.content_hash == content_hash({"schema_version": SCHEMA_VERSION, "pairs": table.column("id").to_pylist(),
                                                "weights": table.column("weight").to_pylist()})


def _version(result, ledger) -> dict:
    files = {"pairs": pq.read_table(result.path).to_pylist(),
             "signals": [s.to_row() for s in load_signals(ledger.get_dataset(f"{result.name}@{result.version}"))]}
    for name, file in (("rejects", result.rejects_path), ("audit", result.audit_path)):
        files[name] = [json.loads(line) for line in open(file)] if file else None
    counts = {k: v for k, v in result.as_dict().items() if k.startswith("n_") or k in ("content_hash", "excluded", "stats")}
    return {**files, **counts}


@pytest.mark.parametrize("file, kind", [("mixed", "pairs"), ("pairwise.jsonl", "pairwise"), ("judge.jsonl", "judge")])
def test_streamed_ingest_matches_the_assembled_one(tmp_path, ledger, monkeypatch, file, kind):
    """Without consensus, streaming gives exactly what assembling the whole file would (ties, excluded verdicts,
    bad rows and duplicates included), in this process or on worker processes."""
    if file == "mixed":
        path = write_jsonl(tmp_path / "mixed.jsonl", [pair(0), "{oops", pair(1), pair(0), json.dumps({"prompt": "p"}), pair(2)])
    else:
        path = DATA / "signals" / file
    streamed = _version(ingest(path, "s", ledger, signal=kind, consensus="none"), ledger)
    on_workers = _version(ingest(path, "w", ledger, signal=kind, consensus="none", workers=2), ledger) if kind == "judge" else streamed
    monkeypatch.setitem(SIGNAL_KINDS, kind, replace(SIGNAL_KINDS[kind], one_per_record=False))
    assembled = _version(ingest(path, "a", ledger, signal=kind, consensus="none"), ledger)
    assert streamed == assembled == on_workers
    assert streamed["n_read"] == streamed["n_accepted"] + streamed["n_rejected"] + streamed["n_duplicates"] + streamed["n_excluded"]


def test_signals_of_plain_pairs_are_their_pairs(tmp_path, ledger):
    """A plain-pair version stores no signals.parquet: its signals, read back from its pairs, are those
    the assembled path would store."""
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i, annotator=f"r{i}", rationale="why", weight=0.5) for i in range(3)])
    plain = ingest(path, "plain", ledger)
    assert plain.signals_path is None and not Path(plain.path).with_name("signals.parquet").exists()
    voted = ingest(path, "voted", ledger, consensus="majority")  # the same records, stored with signals.parquet
    assert [s.to_row() for s in load_signals(ledger.get_dataset("plain"))] == [s.to_row() for s in load_signals(ledger.get_dataset("voted"))]
    assert Path(voted.signals_path).is_file()


def test_signals_written_with_their_texts_inside_still_load(tmp_path, ledger):
    """Older versions keep a signal's messages in its JSON text rather than in columns of their own."""
    result = ingest(DATA / "signals" / "pairwise.jsonl", "d", ledger, signal="pairwise")
    row = ledger.get_dataset("d")
    signals = load_signals(row)
    folder = tmp_path / "old"
    folder.mkdir()
    pq.write_table(pa.table({"signal": [json.dumps(s.to_row()) for s in signals]}), folder / "signals.parquet")
    assert load_signals({**row, "path": str(folder / "pairs.parquet")}) == signals
    assert [s.key for s in signals] == pq.read_table(result.signals_path).column("key").to_pylist()


def test_signal_hashes_are_the_content_hashes_of_its_pair():
    """Signal builds its key and pair ids from canonical JSON it has already made: the same hashes as content_hash."""
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": 'Quote "this" \\ and\nthat: café, 東京, \u2028.'}]
    a, b = [{"role": "assistant", "content": "Yes.\t✓"}], [{"role": "assistant", "content": "No\u0001."}]
    signal = Signal(prompt=prompt, a=a, b=b, label="a", kind="pairs", rule="given")
    assert signal.key == content_hash({"prompt": prompt, "responses": sorted([content_hash(a), content_hash(b)])})
    assert signal.pair_ids == {"a": pair_id(prompt, signal.a, signal.b), "b": pair_id(prompt, signal.b, signal.a)}
