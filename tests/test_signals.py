"""Readers and signal kinds: every file format and every kind of signal on small files written for
these tests (tests/data/signals/), bad rows reported with file, line and reason, exact accounting,
and an ingest that fails half-way leaving nothing behind."""

from __future__ import annotations

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATA, pair, write_jsonl
from prefline.data.ingest import ingest
from prefline.data.schema import RowError, Signal, pair_from_row
from prefline.data.signals import IngestRules, load_rules
from prefline.data.sources import READERS, ReadOptions, read_csv, read_jsonl
from prefline.errors import PreflineError

SIGNALS = DATA / "signals"


def rows(result):
    return pq.read_table(result.path).to_pylist()


def rejects(result):
    return [json.loads(line) for line in open(result.rejects_path)]


def reconciles(result):
    assert result.n_read == result.n_accepted + result.n_rejected + result.n_duplicates + result.n_excluded
    assert len(rejects(result)) == result.n_rejected + result.n_duplicates + result.n_excluded
    assert sum(result.excluded.values()) == result.n_excluded


def by_chosen(result):
    return {row["chosen"][-1]["content"]: row for row in rows(result)}


# --- file formats ------------------------------------------------------------------------------


def test_trl_conversational_multi_turn_and_implicit_prompt(ledger):
    result = ingest(SIGNALS / "trl_conversational.jsonl", "conv", ledger)
    reconciles(result)
    pairs = by_chosen(result)
    assert [m["role"] for m in pairs["Madrid."]["prompt"]] == ["system", "user", "assistant", "user"]  # multi-turn kept
    implicit = pairs["Blue."]
    assert implicit["prompt"] == [{"role": "user", "content": "What colour is the sky on a clear day?"}]
    assert implicit["rejected"] == [{"role": "assistant", "content": "Green."}]
    assert rejects(result)[0]["line"] == 3 and "share no opening messages" in rejects(result)[0]["reason"]


def test_trl_standard_plain_strings_need_their_prompt(ledger):
    result = ingest(SIGNALS / "trl_standard.jsonl", "std", ledger)
    pairs = by_chosen(result)
    assert pairs[" Paris."]["prompt"] == [{"role": "user", "content": "The capital of France is"}]
    # two plain strings do not say where a prompt would end: no prompt is guessed from their shared opening
    assert (result.n_accepted, result.n_rejected) == (1, 2)
    reasons = {r["line"]: r["reason"] for r in rejects(result)}
    assert reasons[2].startswith("missing field(s): 'prompt' (found: 'chosen', 'rejected')")


def test_hh_rlhf_transcripts_split_into_prompt_and_final_replies(ledger):
    result = ingest(SIGNALS / "hh_rlhf.jsonl", "hh", ledger, fmt="hh-rlhf")
    reconciles(result)
    first = rows(result)[0]
    assert [m["role"] for m in first["prompt"]] == ["user", "assistant", "user"]
    assert first["prompt"][-1]["content"] == "And how often?"
    assert first["chosen"] == [{"role": "assistant", "content": "Three times a week, with a rest day between runs, is a good start."}]
    assert first["rejected"][0]["content"].startswith("Every day")
    reasons = {r["line"]: r["reason"] for r in rejects(result)}
    assert "share no opening" in reasons[3] and "not an HH-RLHF transcript" in reasons[4]


def test_hh_transcripts_are_recognised_in_a_plain_pair_file(ledger, tmp_path):
    text = (SIGNALS / "hh_rlhf.jsonl").read_text().splitlines()[1]
    pair_ = pair_from_row(json.loads(text))
    assert pair_.prompt == [{"role": "user", "content": "What does a thermostat do?"}]
    assert pair_.chosen[0]["content"].startswith("It switches")


def test_ultrafeedback_completions_become_rating_pairs(ledger):
    result = ingest(SIGNALS / "ultrafeedback.jsonl", "uf", ledger, fmt="ultrafeedback")
    reconciles(result)
    assert result.signal == "ratings"  # the layout implies the kind
    # three completions scored by the mean of their aspects (5, 2, 4; "N/A" skipped): three gaps >= 1
    assert result.n_pairs == 3 and result.stats["ratings.pairs"] == 3
    assert result.stats["ratings.ties"] == 1  # the second instruction's two completions tie
    assert result.excluded == {"ratings-no-pair": 1}
    row = by_chosen(result)["Collect rainwater for the garden and turn the tap off while brushing teeth."]
    assert row["rejected"][0]["content"] == "Drink less water."
    assert json.loads(row["slices"]) == {"origin": "authored"}
    assert json.loads(row["axes"])["helpfulness"] == "chosen"


def test_csv_reader_nests_dotted_columns_and_reports_short_rows(ledger):
    result = ingest(SIGNALS / "pairwise.csv", "pwcsv", ledger, signal="pairwise")
    reconciles(result)
    spider = by_chosen(result)["Eight."]
    assert json.loads(spider["slices"]) == {"intent": "factual"}
    assert spider["n_signals"] == 2 and spider["weight"] == 1.0
    assert json.loads(spider["axes"]) == {"correctness": "chosen", "tone": "tie"}  # an empty cell casts no axis vote
    (bad,) = rejects(result)
    assert bad["line"] == 5 and bad["reason"] == "row has 4 cells but the header has 9 (a short or cut row)"
    assert bad["raw"].startswith('"Write a one-line greeting')


def test_csv_quoted_cell_across_lines_keeps_record_start_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('prompt,chosen,rejected\n"Two\nlines?",Yes.,No.\nq,a,b\n')
    records = list(read_csv(path))
    assert [(r.line, r.error) for r in records] == [(2, None), (4, None)]
    assert records[0].row == {"prompt": "Two\nlines?", "chosen": "Yes.", "rejected": "No."}


def test_csv_cut_inside_a_quote_is_reported(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text('prompt,chosen,rejected\nq,a,b\nq2,"unfinished answer')
    records = list(read_csv(path))
    assert records[0].error is None
    assert records[1].line == 3 and "cut short" in records[1].error


def test_parquet_reader(ledger, tmp_path):
    path = tmp_path / "pairs.parquet"
    table = [pair(0), pair(1), pair(2, slices={"intent": "factual", "risk": "low"}), pair(3, rejected=pair(3)["chosen"])]
    pq.write_table(pa.Table.from_pylist(table), path)  # message lists as list<struct>, slices as a struct (risk null in most rows)
    result = ingest(path, "pq", ledger)
    reconciles(result)
    assert (result.n_read, result.n_accepted, result.n_rejected) == (4, 3, 1)
    assert rejects(result)[0]["line"] == 4 and "identical" in rejects(result)[0]["reason"]
    assert rows(result)[0]["prompt"] == pair(0)["prompt"]
    assert [json.loads(r["slices"]) for r in rows(result)] == [{"intent": "factual"}, {"intent": "coding"}, {"intent": "factual", "risk": "low"}]


def test_parquet_reader_rejects_unreadable_file(ledger, tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(PreflineError, match="not a readable Parquet file"):
        ingest(path, "x", ledger)


def test_every_format_is_registered():
    assert {"jsonl", "csv", "parquet", "hh-rlhf", "ultrafeedback"} <= set(READERS)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("row, reason", [
    ({"prompt": "p", "response_a": "x", "choice": "a"}, "missing field(s): 'response_b'"),
    ({"prompt": "p", "response_a": "x", "response_b": 7, "choice": "a"}, "'response_b' must be a string or a list of messages, got int"),
    ({"prompt": "", "response_a": "x", "response_b": "y", "choice": "a"}, "'prompt' is an empty string"),
    ({"prompt": "p", "response_a": "same", "response_b": "same", "choice": "a"}, "identical"),
    ({"prompt": "p", "response_a": "x", "response_b": "y", "choice": 1}, "'choice' must be 'a', 'b' or 'tie', got 1"),
    ({"prompt": "p", "response_a": "x", "response_b": "y", "choice": "a", "annotator": ["x"]}, "'annotator' must be a string"),
    ({"prompt": "p", "response_a": "x", "response_b": "y", "choice": "a", "axes": {"tone": "c"}}, "'axes.tone' must be"),
    ({"prompt": "p", "response_a": "x", "response_b": "y", "choice": "a", "slices": {"intent": "poetry"}}, "slice intent='poetry' is not in the vocabulary"),
])
def test_pairwise_bad_rows_are_rejected_with_line_and_reason(ledger, tmp_path, row, reason):
    good = {"prompt": "q", "response_a": "x", "response_b": "y", "choice": "a", "slices": {"intent": "coding"}}
    path = write_jsonl(tmp_path / "pw.jsonl", [good, row])
    rules = IngestRules(slices={"intent": ["coding", "factual"]})
    result = ingest(path, "pw", ledger, signal="pairwise", rules=rules)
    reconciles(result)
    (bad,) = rejects(result)
    assert bad["line"] == 2 and bad["kind"] == "rejected" and reason in bad["reason"], bad
    assert any(p.startswith(f"{path}:2: rejected:") for p in result.problems)


def test_unknown_slice_values_only_with_a_vocabulary(ledger, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(1), pair(2, slices={"intent": "poetry"})])
    assert ingest(path, "free", ledger).n_accepted == 2  # no vocabulary: tags are free
    rules = tmp_path / "rules.yaml"
    rules.write_text("slices:\n  intent: [coding, factual]\n")
    result = ingest(path, "strict", ledger, rules=rules)
    assert (result.n_accepted, result.n_rejected) == (1, 1)
    assert "slice intent='poetry' is not in the vocabulary for 'intent' (coding, factual)" in rejects(result)[0]["reason"]


def test_encoding_errors_in_jsonl_and_csv(ledger, tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_bytes(json.dumps(pair(1)).encode() + b"\n" + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    result = ingest(jsonl, "enc", ledger)
    assert rejects(result)[0]["line"] == 2 and "not valid UTF-8" in rejects(result)[0]["reason"]
    csv_path = tmp_path / "p.csv"
    csv_path.write_bytes(b"prompt,chosen,rejected\nq,a,b\ncaf\xe9,a,b\nq3,c,d\n")
    result = ingest(csv_path, "enc2", ledger)
    reconciles(result)
    assert (result.n_accepted, result.n_rejected) == (2, 1)
    assert rejects(result)[0]["line"] == 3 and "not valid UTF-8" in rejects(result)[0]["reason"]


def test_truncated_jsonl_last_line(ledger, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(1), pair(2)])
    with open(path, "a") as handle:
        handle.write(json.dumps(pair(3))[:40])  # cut mid-object, no newline
    result = ingest(path, "cut", ledger)
    reconciles(result)
    assert (result.n_read, result.n_accepted, result.n_rejected) == (3, 2, 1)
    assert rejects(result)[0]["line"] == 3 and rejects(result)[0]["reason"].startswith("not valid JSON")


def test_huge_rows_are_rejected_without_being_loaded(ledger, tmp_path):
    huge = pair(2, chosen=[{"role": "assistant", "content": "x" * 5000}])
    path = write_jsonl(tmp_path / "p.jsonl", [pair(1), huge, pair(3)])
    records = list(read_jsonl(path, ReadOptions(max_row_bytes=1000)))
    assert [r.line for r in records] == [1, 2, 3] and records[1].row is None
    assert records[1].error.startswith("row is 5") and "over the limit of 1000 (limits.max_row_bytes)" in records[1].error
    assert len(records[1].raw) < 2100  # only the head of the row is kept for the rejects file
    rules = tmp_path / "rules.yaml"
    rules.write_text("limits:\n  max_row_bytes: 1000\n")
    result = ingest(path, "huge", ledger, rules=rules)
    reconciles(result)
    assert (result.n_accepted, result.n_rejected) == (2, 1)
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("prompt,chosen,rejected\nq,a,b\nq2," + "y" * 3000 + ",c\nq3,a,b\n")
    result = ingest(csv_path, "hugecsv", ledger, rules=rules)
    assert (result.n_accepted, result.n_rejected) == (2, 1) and "over the limit" in rejects(result)[0]["reason"]


def test_rules_file_errors_name_the_field(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("ratings:\n  margin: 0\nevents:\n  rules:\n    - name: x\n      preferred: [accept]\n      over: [accept]\n      confidence: 2\njudge:\n  audit_fraction: 1.5\nbogus: 1\n")
    with pytest.raises(PreflineError) as info:
        load_rules(path)
    message = str(info.value)
    for fragment in ("rules.yaml", "ratings.margin", "events.rules.0.confidence", "judge.audit_fraction", "bogus: Extra inputs"):
        assert fragment in message, message
    path.write_text("events:\n  rules:\n    - name: x\n      preferred: [accept]\n      over: [accept]\n      confidence: 0.5\n")
    with pytest.raises(PreflineError, match="preferred and over share accept"):
        load_rules(path)
    path.write_text("events:\n  rules:\n    - name: x\n      preferred: [wave]\n      over: [abandon]\n      confidence: 0.5\n")
    with pytest.raises(PreflineError, match="events.rules.0.preferred.0"):
        load_rules(path)


def test_unknown_signal_kind_and_consensus(ledger, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(1)])
    with pytest.raises(PreflineError, match="unknown signal kind 'votes'"):
        ingest(path, "d", ledger, signal="votes")
    with pytest.raises(PreflineError, match="unknown consensus method 'loudest'"):
        ingest(path, "d", ledger, consensus="loudest")


# --- signal kinds --------------------------------------------------------------------------------


def test_signal_key_ignores_order_and_flips_the_label():
    prompt = [{"role": "user", "content": "q"}]
    x, y = [{"role": "assistant", "content": "x"}], [{"role": "assistant", "content": "y"}]
    one = Signal(prompt, x, y, "a", "pairwise", "human_choice", axes={"tone": "b"}, votes=[{"annotator": "r", "label": "a"}])
    two = Signal(prompt, y, x, "b", "pairwise", "human_choice", axes={"tone": "a"}, votes=[{"annotator": "r", "label": "b"}])
    assert one.key == two.key and (one.a, one.label, one.axes, one.votes) == (two.a, two.label, two.axes, two.votes)
    with pytest.raises(RowError, match="identical"):
        Signal(prompt, x, x, "a", "pairwise", "human_choice")


def test_pairwise_votes_ties_axes_and_rationales(ledger):
    result = ingest(SIGNALS / "pairwise.jsonl", "pw", ledger, signal="pairwise")
    reconciles(result)
    assert result.consensus == "majority"
    assert (result.n_read, result.n_accepted, result.n_rejected, result.n_duplicates, result.n_excluded) == (12, 4, 3, 1, 4)
    git = by_chosen(result)["Run `git reset --soft HEAD~1`: the commit is gone and its changes stay staged."]
    # three votes, the third with A and B swapped: 2 for, 1 against -> weight 2/3
    assert git["n_signals"] == 3 and git["weight"] == pytest.approx(2 / 3, abs=1e-6) == git["confidence"]
    votes = json.loads(git["signals"])
    assert sorted((v["annotator"], v["label"]) for v in votes) == [("ann-1", "chosen"), ("ann-2", "chosen"), ("ann-3", "rejected")]
    assert {v["rationale"] for v in votes} == {"B destroys the whole history.", "Correct and safe.", "Shorter."}
    assert json.loads(git["axes"]) == {"correctness": "chosen", "safety": "chosen"}
    assert git["rule"] == "human_choice" and git["source"] == "pairwise.jsonl"
    kinds = {(r["line"], r["kind"], r["category"]) for r in rejects(result)}
    assert (8, "duplicate", "duplicate") in kinds                 # the same annotator's same vote twice
    assert (4, "excluded", "no-consensus") in kinds and (6, "excluded", "no-consensus") in kinds  # 1:1 splits


def test_ratings_margin_ties_cap_and_votes(ledger, tmp_path):
    result = ingest(SIGNALS / "ratings.jsonl", "r", ledger, signal="ratings")
    reconciles(result)
    # hash-table prompt: scores 4.5, 1.5, 4.5 -> one tie, two pairs; colours: a tie; synonyms: one pair
    assert result.stats == {"ratings.candidates": 5, "ratings.ties": 2, "ratings.pairs": 3, "ratings.over_cap": 0}
    assert result.excluded == {"ratings-no-pair": 1}
    assert "must be a number, got 'five'" in {r["line"]: r["reason"] for r in rejects(result)}[3]
    signals = json.loads(by_chosen(result)["Joyful."]["signals"])
    assert signals[0]["rule"] == "rating_gap>=1"

    rules = tmp_path / "rules.yaml"
    rules.write_text("ratings:\n  scale: [1, 5]\n")
    scaled = ingest(SIGNALS / "ratings.jsonl", "r2", ledger, signal="ratings", rules=rules)
    reconciles(scaled)
    assert "= 9 is outside the rating scale [1, 5] (ratings.scale)" in {r["line"]: r["reason"] for r in rejects(scaled)}[4]

    row = {"prompt": "q", "responses": [{"text": "x", "rating": 5}, {"text": "y", "rating": 4}, {"text": "z", "rating": 1}]}
    margin = ingest(write_jsonl(tmp_path / "m.jsonl", [row]), "r3", ledger, signal="ratings",
                    rules=IngestRules.model_validate({"ratings": {"margin": 2}}))
    assert margin.stats == {"ratings.candidates": 3, "ratings.below_margin": 1, "ratings.pairs": 2, "ratings.over_cap": 0}
    assert {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows(margin)} == {("x", "z"), ("y", "z")}


def test_ratings_cap_keeps_the_largest_gaps(ledger, tmp_path):
    responses = [{"text": f"answer {i}", "rating": i} for i in range(1, 7)]  # 15 comparisons, all gaps >= 1
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "rank these", "responses": responses}])
    rules = IngestRules.model_validate({"ratings": {"max_pairs_per_prompt": 3}})
    result = ingest(path, "cap", ledger, signal="ratings", rules=rules)
    assert result.stats["ratings.candidates"] == 15 and result.stats["ratings.pairs"] == 3 and result.stats["ratings.over_cap"] == 12
    assert {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows(result)} == {
        ("answer 6", "answer 1"), ("answer 5", "answer 1"), ("answer 6", "answer 2")}


def test_ratings_per_annotator_votes_scale_the_confidence(ledger, tmp_path):
    row = {"prompt": "q", "responses": [
        {"text": "x", "ratings": [{"annotator": "r1", "overall": 5}, {"annotator": "r2", "overall": 3}, {"annotator": "r3", "overall": 4}]},
        {"text": "y", "ratings": [{"annotator": "r1", "overall": 1}, {"annotator": "r2", "overall": 3}, {"annotator": "r3", "overall": 2}]}]}
    result = ingest(write_jsonl(tmp_path / "r.jsonl", [row]), "votes", ledger, signal="ratings")
    (stored,) = rows(result)
    # means 4 vs 2; r1 and r3 agree, r2 rated both 3 (a tie vote): confidence 2/3
    assert stored["weight"] == pytest.approx(2 / 3, abs=1e-6)


def test_ratings_one_per_row_are_gathered_by_prompt(ledger):
    result = ingest(SIGNALS / "ratings_long.csv", "long", ledger, signal="ratings")
    reconciles(result)
    # p1: x=4.5, y=2, z=4 -> x>y, z>y (x vs z below the margin); p2: 56 and 54 both rated 5 by u1 -> a tie
    assert {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows(result)} == {
        ("Botanically yes: it develops from the flower and holds seeds.", "No, it is a vegetable."), ("Yes.", "No, it is a vegetable.")}
    kinds = {r["line"]: (r["kind"], r["reason"]) for r in rejects(result)}
    assert kinds[9][0] == "duplicate" and "duplicate of line 2" in kinds[9][1]
    assert kinds[10] == ("rejected", "'rating' must be a number, got 'lots'")
    assert kinds[7][0] == kinds[8][0] == "excluded"  # the tied p2 rows
    assert result.stats["ratings.ties"] == 1 and result.stats["ratings.below_margin"] == 1


def test_events_rules_make_named_pairs_with_confidences(ledger):
    result = ingest(SIGNALS / "events.jsonl", "ev", ledger, signal="events")
    reconciles(result)
    pairs = by_chosen(result)
    edit = pairs["SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id;"]
    assert (edit["rule"], edit["weight"]) == ("edit_over_draft", 0.9)
    assert edit["rejected"][0]["content"] == "SELECT customer_id, COUNT(*) FROM orders;"
    assert json.loads(edit["slices"]) == {"surface": "code"}
    retried = pairs["A crew of specialists plans to rob a casino vault. When one of them turns informant, the plan unravels in a single night."]
    assert (retried["rule"], retried["weight"]) == ("accepted_over_retried", 0.7)
    reask = pairs["No: together they release toxic chloramine gas. Use one product, rinse, and ventilate."]
    # the re-asked thread keeps the first wording as the prompt
    assert reask["prompt"][0]["content"] == "Is it safe to mix bleach and ammonia for cleaning?"
    reasons = {r["line"]: (r["kind"], r["category"], r["reason"]) for r in rejects(result)}
    assert reasons[16][1] == "edit-unchanged"
    assert reasons[17] == ("rejected", "invalid", "thumbs_up refers to response 'ghost', not shown earlier in session 's5'")
    assert reasons[18][0] == "rejected" and "'event' must be one of" in reasons[18][2]
    assert reasons[19][0] == "duplicate"
    assert reasons[14][1] == "unused" and "no rule" in reasons[14][2]  # an escalation with nothing to compare it to
    assert 9 not in reasons  # the thumbs-down backs the same pair as the re-ask


def test_events_rules_are_configurable(ledger, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("events:\n  edit_over_draft:\n    enabled: false\n  rules:\n"
                     "    - name: up_beats_down\n      preferred: [thumbs_up]\n      over: [thumbs_down]\n      confidence: 0.55\n")
    result = ingest(SIGNALS / "events.jsonl", "ev2", ledger, signal="events", rules=rules)
    reconciles(result)
    (only,) = rows(result)
    assert (only["rule"], only["weight"]) == ("up_beats_down", 0.55)
    assert result.stats == {"events.up_beats_down": 1}


def test_events_order_by_time_within_a_session(ledger, tmp_path):
    events = [
        {"session": 1, "time": 3, "event": "accept", "response_id": "b"},
        {"session": 1, "time": 2, "event": "response", "response_id": "b", "prompt": "q", "response": "good"},
        {"session": 1, "time": 1, "event": "regenerate", "response_id": "a"},
        {"session": 1, "time": 0, "event": "response", "response_id": "a", "prompt": "q", "response": "bad"},
    ]
    result = ingest(write_jsonl(tmp_path / "e.jsonl", events), "t", ledger, signal="events")
    (only,) = rows(result)
    assert (only["chosen"][0]["content"], only["rejected"][0]["content"]) == ("good", "bad")
    assert result.n_accepted == 4


def test_judge_both_orders_position_inconsistent_excluded_and_audit(ledger, tmp_path):
    result = ingest(SIGNALS / "judge.jsonl", "j", ledger, signal="judge")
    reconciles(result)
    assert result.excluded == {"position-inconsistent": 2} and result.stats["judge.position_inconsistent"] == 2
    km = by_chosen(result)["3000 metres."]
    assert km["n_signals"] == 2  # judge-n saw the responses the other way round: same pair
    assert {v["annotator"] for v in json.loads(km["signals"])} == {"judge-m", "judge-n"}
    reasons = {r["line"]: r["reason"] for r in rejects(result)}
    assert reasons[2].startswith("position-inconsistent: the judge chose 'a' with A shown first and 'b' with B shown first")
    assert reasons[6] == "'judge' is empty: name the judge model"
    assert result.audit_path and [json.loads(line) for line in open(result.audit_path)] == []  # 10% of 5: none drawn

    everything = IngestRules.model_validate({"judge": {"audit_fraction": 1.0, "exclude_position_inconsistent": False}})
    kept = ingest(SIGNALS / "judge.jsonl", "j2", ledger, signal="judge", rules=everything)
    reconciles(kept)
    audit = [json.loads(line) for line in open(kept.audit_path)]
    assert len(audit) == 5 and {a["line"] for a in audit} == {1, 2, 3, 4, 5}
    assert [a["position_consistent"] for a in audit] == [True, False, True, False, True]
    # kept as tie votes: the Pacific pair is now 1 a-vote vs 1 tie-vote -> no consensus
    assert kept.excluded == {"consensus-tie": 1, "no-consensus": 2}


def test_plain_pair_files_keep_todays_behaviour(ledger, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(1), pair(2), pair(1), pair(1, chosen=pair(1)["rejected"], rejected=pair(1)["chosen"])])
    result = ingest(path, "plain", ledger)
    assert (result.signal, result.consensus) == ("pairs", "none")
    assert (result.n_accepted, result.n_duplicates, result.n_excluded, result.n_pairs) == (3, 1, 0, 3)  # the reversed pair is its own pair
    combined = ingest(path, "combined", ledger, consensus="majority")
    reconciles(combined)
    # as votes: pair 1 twice (the same anonymous vote: a duplicate) and reversed once -> 1:1, no consensus
    assert (combined.n_pairs, combined.n_duplicates, combined.excluded) == (1, 1, {"no-consensus": 2})


# --- atomicity -----------------------------------------------------------------------------------


def test_ingest_interrupted_after_some_rows_leaves_no_version(ledger, tmp_path, monkeypatch, prefline_home):
    ingest_mod = sys.modules["prefline.data.ingest"]  # the package exports a function of the same name
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(7)])
    monkeypatch.setattr(ingest_mod, "WRITE_BATCH", 2)
    written = []
    real = pq.ParquetWriter.write_table

    def write_then_fail(self, table, *args, **kwargs):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(table.num_rows)
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ingest(path, "d", ledger)
    assert written == [2, 2]  # rows had been written when it failed
    assert list((prefline_home / "datasets" / "d").iterdir()) == []
    assert ledger.list_datasets() == []
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)
    again = ingest(path, "d", ledger)
    assert again.version == 1 and len(rows(again)) == 7


# --- command line and streaming ----------------------------------------------------------------


def test_ingest_command_with_signal_rules_and_consensus(tmp_path):
    from typer.testing import CliRunner

    from prefline.cli import app

    runner = CliRunner()
    rules = tmp_path / "rules.yaml"
    rules.write_text("judge:\n  audit_fraction: 1.0\n")
    result = runner.invoke(app, ["data", "ingest", str(SIGNALS / "judge.jsonl"), "--name", "j", "--signal", "judge",
                                 "--rules", str(rules), "--consensus", "dawid-skene"])
    assert result.exit_code == 0, result.output
    assert "read 6 = accepted 3 + rejected 1 + duplicates 0 + excluded 2" in result.output
    assert "excluded: position-inconsistent 2" in result.output
    assert "pairs 2 (judge signals, consensus dawid-skene)" in result.output and "audit:" in result.output
    payload = json.loads(runner.invoke(app, ["data", "ingest", str(SIGNALS / "judge.jsonl"), "--name", "j", "--signal", "judge", "--json"]).stdout)
    assert (payload["version"], payload["n_excluded"], payload["excluded"]) == (2, 2, {"position-inconsistent": 2})
    bad = runner.invoke(app, ["data", "ingest", str(SIGNALS / "judge.jsonl"), "--name", "j", "--rules", str(tmp_path / "nope.yaml")])
    assert bad.exit_code == 2 and "nope.yaml: no such file" in bad.output
    listing = json.loads(runner.invoke(app, ["data", "list", "--json"]).output)
    assert [(d["n_pairs"], d["n_excluded"]) for d in listing] == [(2, 2), (2, 2)]


def test_readers_stream_one_record_at_a_time(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(3)])
    for name in ("jsonl", "csv", "hh-rlhf"):
        records = READERS[name](path if name != "csv" else SIGNALS / "pairwise.csv", ReadOptions())
        assert iter(records) is records  # a generator: nothing is read before it is asked for
    records = read_jsonl(path)
    first = next(records)
    with open(path, "a") as handle:  # what is appended after the first record is still read
        handle.write(json.dumps(pair(9)) + "\n")
    assert first.line == 1 and [r.line for r in records] == [2, 3, 4]
