"""The review queue: disputed pairs exported with every vote, decisions imported as a new signal
that makes a new dataset version."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import DATA, write_jsonl
from prefline.cli import app
from prefline.data.ingest import ingest
from prefline.data.review import export_review, import_review
from prefline.errors import PreflineError

runner = CliRunner()
PAIRWISE = DATA / "signals" / "pairwise.jsonl"


def pairs(result_or_row):
    path = result_or_row.path if hasattr(result_or_row, "path") else result_or_row["path"]
    return {row["prompt"][0]["content"]: row for row in pq.read_table(path).to_pylist()}


def test_export_lists_disputed_pairs_with_votes_and_rationales(tmp_path, ledger):
    ingest(PAIRWISE, "pw", ledger, signal="pairwise")
    summary = export_review("pw", tmp_path / "queue.jsonl", ledger)
    queue = [json.loads(line) for line in open(tmp_path / "queue.jsonl")]
    assert summary["n_items"] == len(queue) == 3
    by_prompt = {row["prompt"][0]["content"]: row for row in queue}
    # 1:1 splits (no pair) come first, then the 2:1 git question (disagreement 1/3)
    assert [row["disagreement"] for row in queue] == [0.5, 0.5, pytest.approx(1 / 3, abs=1e-6)]
    git = by_prompt["How do I undo the last git commit but keep my changes?"]
    assert git["dataset"] == "pw@1" and git["consensus"]["confidence"] == pytest.approx(2 / 3, abs=1e-6)
    assert sorted(v["rationale"] for v in git["votes"]) == ["B destroys the whole history.", "Correct and safe.", "Shorter."]
    assert {v["annotator"] for v in git["votes"]} == {"ann-1", "ann-2", "ann-3"}
    assert git["decision"] is None and git["response_a"][0]["role"] == "assistant"
    water = by_prompt["What is the boiling point of water at sea level?"]
    assert water["consensus"]["label"] is None and water["consensus"]["reason"] == "no consensus (a 1, b 1)"
    assert "Translate 'good morning' into French." not in by_prompt  # one vote: nothing to dispute
    assert export_review("pw", tmp_path / "none.jsonl", ledger, min_disagreement=0.9)["n_items"] == 2


def test_import_decisions_make_a_new_version(tmp_path, ledger):
    ingest(PAIRWISE, "pw", ledger, signal="pairwise")
    export_review("pw", tmp_path / "queue.jsonl", ledger)
    queue = [json.loads(line) for line in open(tmp_path / "queue.jsonl")]
    water = next(r for r in queue if r["prompt"][0]["content"].startswith("What is the boiling"))
    right = "a" if water["response_a"][0]["content"].startswith("100") else "b"
    water.update(decision=right, reviewer="expert-1", rationale="Standard pressure: 100 C.")
    git = next(r for r in queue if r["prompt"][0]["content"].startswith("How do I undo"))
    wrong = "b" if git["response_a"][0]["content"].startswith("Run") else "a"
    git.update(decision=wrong.upper(), reviewer="expert-2")  # an expert overrides the crowd
    write_jsonl(tmp_path / "decided.jsonl", queue)

    result = import_review(tmp_path / "decided.jsonl", "pw", ledger)
    assert (result.name, result.version, result.signal) == ("pw", 2, "review")
    assert (result.n_read, result.n_accepted, result.n_excluded, result.excluded) == (3, 2, 1, {"no-decision": 1})
    assert result.n_read == result.n_accepted + result.n_rejected + result.n_duplicates + result.n_excluded
    new = pairs(result)
    assert new["What is the boiling point of water at sea level?"]["chosen"][0]["content"].startswith("100")
    assert new["What is the boiling point of water at sea level?"]["weight"] == 1.0
    flipped = new["How do I undo the last git commit but keep my changes?"]
    assert flipped["chosen"][0]["content"] == "Delete the .git folder and start again."
    reviews = [s for s in json.loads(flipped["signals"]) if s["kind"] == "review"]
    assert reviews == [{"kind": "review", "rule": "expert_review", "source": "review:decided.jsonl", "annotator": "expert-2",
                        "label": "chosen", "confidence": 1.0, "rationale": None, "axes": {}, "lines": [3]}]
    row = ledger.get_dataset("pw@2")
    assert row["meta"]["base"] == "pw@1" and row["n_pairs"] == 3
    assert len(pairs(ledger.get_dataset("pw@1"))) == 2  # the reviewed version is new; the old one is unchanged

    again = import_review(tmp_path / "decided.jsonl", "pw", ledger, base="pw@2")
    assert again.n_duplicates == 2 and sum("duplicate of a signal of the base dataset" in p for p in again.problems) == 2


def test_csv_round_trip_and_bad_rows(tmp_path, ledger):
    ingest(PAIRWISE, "pw", ledger, signal="pairwise")
    export_review("pw", tmp_path / "queue.csv", ledger)
    with open(tmp_path / "queue.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["votes"].startswith("[") and rows[0]["decision"] == ""
    rows[0].update(decision="tie", reviewer="expert-1")   # a reviewed tie: the pair goes
    rows[1].update(decision="c")                          # not a choice
    rows[2].update(decision="a", response_b="an edited response")  # no longer matches its review_id
    with open(tmp_path / "decided.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = import_review(tmp_path / "decided.csv", "pw-reviewed", ledger)
    reasons = {p.split(": ", 1)[0].rsplit(":", 1)[1]: p for p in result.problems}
    assert "excluded: the consensus is a tie" in reasons["2"]
    assert "'decision' must be 'a', 'b' or 'tie', got 'c'" in reasons["3"]
    assert "'review_id' does not match the prompt and responses" in reasons["4"]
    assert (result.name, result.version, result.n_accepted) == ("pw-reviewed", 1, 0)


def test_review_errors(tmp_path, ledger):
    with pytest.raises(PreflineError, match="must end in .jsonl or .csv"):
        export_review("pw", tmp_path / "queue.txt", ledger)
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"dataset": "a@1", "prompt": "q", "response_a": "x", "response_b": "y"},
                                                   {"dataset": "b@1", "prompt": "q", "response_a": "x", "response_b": "y"}])
    with pytest.raises(PreflineError, match="several datasets"):
        import_review(mixed, "x", ledger)


def test_review_commands(tmp_path, ledger):
    ingest(PAIRWISE, "pw", ledger, signal="pairwise")
    out = tmp_path / "queue.jsonl"
    exported = runner.invoke(app, ["data", "review", "export", "pw", "--out", str(out)])
    assert exported.exit_code == 0 and "3 pair(s) of pw@1 to review" in exported.output
    queue = [json.loads(line) for line in open(out)]
    queue[0]["decision"] = "a"
    write_jsonl(out, queue)
    imported = runner.invoke(app, ["data", "review", "import", str(out), "--into", "pw", "--json"])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["version"] == 2
    text = runner.invoke(app, ["data", "review", "import", str(out), "--into", "pw", "--base", "pw@1"])
    assert "read 3 = accepted 1 + rejected 0 + duplicates 0 + excluded 2" in text.output
