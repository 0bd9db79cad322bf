"""Ingest: every record is accounted for, bad rows are kept with file, line and reason."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from conftest import pair, write_jsonl
from prefline.data.ingest import ingest, load_pairs
from prefline.data.schema import RowError, pair_from_row
from prefline.errors import PreflineError


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
