"""Empty responses and tie consensus: an empty response is valid data (flagged, not rejected),
agreement counts every vote, including those on items whose consensus is a tie, and a unanimous
tie is a consensus that nobody disputes, so it is not queued for review."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.data.agreement import agreement_report
from prefline.data.ingest import ingest
from prefline.data.store import load_signals
from prefline.data.quality import data_report
from prefline.data.review import export_review
from prefline.data.schema import RowError, Signal, prompt_messages, reply_messages

runner = CliRunner()
ANNOTATORS = ("ann-1", "ann-2", "ann-3")
# (prompt, response_a, response_b, the three annotators' choices)
ITEMS = [
    ("Name a primary colour.", "Red.", "Blue.", ("tie", "tie", "tie")),                      # unanimous tie
    ("Is 7 a prime number?", "Yes, 7 is prime.", "Yes: its only divisors are 1 and 7.", ("tie", "tie", "a")),  # 2:1 tie
    ("Summarise the plot of Hamlet in one line.", "A prince avenges his father's murder and most of the court dies.", "",
     ("a", "a", "a")),                                                                       # empty response, judged
    ("What is 12 x 12?", "144.", "124.", ("a", "a", "b")),                                   # 2:1
    ("Translate 'thank you' into Spanish.", "Gracias.", "Merci.", ("a", "a", "a")),         # unanimous
]
LABELS = ("a", "b", "tie")


def write_votes(path) -> None:
    write_jsonl(path, [{"prompt": prompt, "response_a": a, "response_b": b, "choice": choice, "annotator": annotator}
                       for prompt, a, b, choices in ITEMS for annotator, choice in zip(ANNOTATORS, choices)])


def test_an_empty_response_is_valid_but_an_empty_prompt_is_not():
    assert reply_messages("", "response_b") == [{"role": "assistant", "content": ""}]
    assert reply_messages([{"role": "assistant", "content": ""}], "rejected")[0]["content"] == ""
    with pytest.raises(RowError, match="'prompt' is an empty string"):
        prompt_messages("  ")


def test_empty_response_is_ingested_and_flagged_as_a_trivial_negative(tmp_path, ledger):
    write_votes(tmp_path / "votes.jsonl")
    result = ingest(tmp_path / "votes.jsonl", "votes", ledger, signal="pairwise", consensus="majority")
    assert result.n_rejected == 0 and result.n_read == 15
    assert result.n_pairs == 3  # the empty-response item, 12 x 12 and the translation; the two ties make none
    report = data_report(ledger.get_dataset("votes"), ledger)
    assert report["negatives"]["flags"]["empty"] == 1


def test_agreement_counts_every_vote_including_tie_consensus_items(tmp_path, ledger):
    write_votes(tmp_path / "votes.jsonl")
    ingest(tmp_path / "votes.jsonl", "votes", ledger, signal="pairwise", consensus="majority")
    overall = agreement_report(load_signals(ledger.get_dataset("votes")))["overall"]
    assert (overall["n_items"], overall["n_votes"], overall["n_annotators"]) == (5, 15, 3)
    # The five items x three annotators from the table above, each item's labels as stored: a
    # signal orders its two responses by content hash, so "a" and "b" may swap.
    def stored(prompt, a, b, choice):
        return Signal(prompt=prompt_messages(prompt), a=reply_messages(a, "a"), b=reply_messages(b, "b"), label=choice, kind="pairwise", rule="human_choice").label

    data = np.array([[LABELS.index(stored(p, a, b, choices[i])) for p, a, b, choices in ITEMS] for i in range(3)], dtype=float)
    assert overall["alpha"] == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"), abs=1e-6)
    # matching pairs: 3 + 1 + 3 + 1 + 3 = 11 of 15
    assert overall["percent_agreement"] == pytest.approx(11 / 15, abs=1e-6)


def test_unanimous_tie_is_not_queued_for_review(tmp_path, ledger):
    write_votes(tmp_path / "votes.jsonl")
    ingest(tmp_path / "votes.jsonl", "votes", ledger, signal="pairwise", consensus="majority")
    summary = export_review("votes", tmp_path / "queue.jsonl", ledger)
    queue = {json.loads(line)["prompt"][0]["content"]: json.loads(line) for line in open(tmp_path / "queue.jsonl")}
    assert summary["n_items"] == 2
    assert set(queue) == {"Is 7 a prime number?", "What is 12 x 12?"}  # the 2:1 splits, the tie one included
    prime = queue["Is 7 a prime number?"]
    assert prime["consensus"]["label"] is None and prime["consensus"]["reason"].startswith("the consensus is a tie (")
    assert prime["disagreement"] == pytest.approx(1 / 3, abs=1e-6)


def test_cli_agreement_and_review_on_ties(tmp_path, ledger):
    write_votes(tmp_path / "votes.jsonl")
    assert runner.invoke(app, ["data", "ingest", str(tmp_path / "votes.jsonl"), "--name", "votes", "--signal", "pairwise"]).exit_code == 0
    out = runner.invoke(app, ["data", "agreement", "votes", "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["overall"]["n_votes"] == 15
    out = runner.invoke(app, ["data", "review", "export", "votes", "--out", str(tmp_path / "q.jsonl")])
    assert out.exit_code == 0, out.output
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 2
