"""Words, MinHash signatures (checked against datasketch itself), exact and near duplicates,
and contamination against frozen suites in a temporary ledger, with `data decontaminate`."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.data import dedup
from prefline.data.contamination import contaminated_ids, decontaminate
from prefline.data.lineage import lineage
from prefline.data.ingest import ingest
from prefline.data.quality import data_report
from prefline.evals.suite import freeze_suite, load_suite, register_suite

runner = CliRunner()


def words(text: str) -> list[int]:
    tokens = dedup.tokenize(pa.array([text]))
    return tokens.hashes.tolist()


def test_words_ignore_case_punctuation_and_spacing():
    assert words("Hello, WORLD!  How are you?") == words("hello world how are you")
    assert words("“Quoted” — text…") == words("quoted text")
    assert words("Ça va? Très bien") == words("ça va très bien")
    assert words("") == [] and words("... !!") == []
    assert words("don't") == [dedup.word_hash("don"), dedup.word_hash("t")]
    tokens = dedup.tokenize(pa.array(["a bb", "", "ccc", None]))
    assert tokens.offsets.tolist() == [0, 2, 2, 3, 3]
    assert tokens.lengths.tolist() == [1, 2, 3]
    stems = dedup.tokenize(pa.array(["sorting sort sorted"])).stems
    assert len(set(stems.tolist())) == 1


def test_sequence_hashes_are_normalized_text():
    tokens = dedup.tokenize(pa.array(["The cat, sat.", "the CAT sat", "sat the cat", ""]))
    h = dedup.sequence_hashes(tokens)
    assert h[0] == h[1] and h[0] != h[2] and h[3] != h[0]


def test_signatures_equal_datasketch():
    texts = ["the quick brown fox jumps over the lazy dog", "a b", "", "one two three four five six seven"]
    tokens = dedup.tokenize(pa.array(texts))
    docs, values = dedup.shingles(tokens)
    sigs = dedup.signatures(docs, values, len(texts), dedup.permutations())
    for i in range(len(texts)):
        reference = MinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED, hashfunc=lambda v: v)
        reference.update_batch([int(v) for v in values[docs == i]])
        assert (reference.hashvalues == sigs[i]).all()
    assert docs.tolist().count(0) == 7 and docs.tolist().count(1) == 1 and 2 not in docs.tolist()


def test_jaccard_estimate_tracks_the_exact_value():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(500)]
    base = list(rng.choice(vocab, 200))
    other = base[:150] + list(rng.choice(vocab, 50))
    tokens = dedup.tokenize(pa.array([" ".join(base), " ".join(other)]))
    docs, values = dedup.shingles(tokens)
    sigs = dedup.signatures(docs, values, 2, dedup.permutations())
    a, b = set(values[docs == 0].tolist()), set(values[docs == 1].tolist())
    assert dedup.jaccard_estimate(sigs[0], sigs[1]) == pytest.approx(len(a & b) / len(a | b), abs=0.15)


def test_near_duplicates_groups():
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, 2**32, (200, dedup.NUM_PERM), dtype=np.uint64).astype(np.uint32)
    sigs[10] = sigs[3]
    sigs[150] = sigs[3]
    sigs[150, :5] = 7  # 59 of 64 equal: still near
    sigs[20] = sigs[4]
    sigs[20, :40] = 9  # 24 of 64: not near
    groups = [g.tolist() for g in dedup.near_duplicates(sigs)]
    assert groups == [[3, 10, 150]]


def test_exact_duplicates():
    is_repeat, groups = dedup.exact_duplicates(np.array([5, 3, 5, 1, 3, 5], dtype=np.uint64))
    assert is_repeat.tolist() == [False, False, True, False, True, True]
    assert sorted(g.tolist() for g in groups) == [[0, 2, 5], [1, 4]]


def pair(prompt: str, chosen: str, rejected: str = "No idea, sorry about that.") -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


LONG = ("Explain how the water cycle moves water between the oceans, the atmosphere and the land, "
        "and why evaporation and condensation matter for weather in coastal towns.")


def test_duplicates_in_the_report(tmp_path, ledger):
    rows = [
        pair("What is 2 + 2?", "It is 4."),
        pair("what is 2+2", "It is 4!"),                 # exact duplicate after normalization
        pair(LONG, "Water evaporates from the sea, condenses into clouds and falls as rain on land and sea. " * 3),
        pair(LONG + " Thanks!", "Water evaporates from the sea, condenses into clouds and falls as rain on land and sea. " * 3),
        pair("Name a prime number.", "Seven."),
    ]
    ingest(write_jsonl(tmp_path / "d.jsonl", rows), "d", ledger)
    report = data_report(ledger.get_dataset("d"), ledger)
    exact, near = report["duplicates"]["exact"], report["duplicates"]["near"]
    assert exact["groups"] == 1 and exact["redundant_pairs"] == 1 and exact["listed"][0]["size"] == 2
    assert near["redundant_pairs"] == 2 and near["groups"] == 2  # the exact pair, and the water-cycle pair
    assert sorted(g["size"] for g in near["listed"]) == [2, 2]


def make_suite(tmp_path, name: str, prompts: list[str], version: int = 1):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "suite.yaml").write_text(f"name: {name}\nversion: {version}\nitems: items.jsonl\n")
    write_jsonl(folder / "items.jsonl", [{"id": f"{name}-{i}", "messages": [{"role": "user", "content": p}]} for i, p in enumerate(prompts)])
    return load_suite(str(folder))


ITEMS = [
    "What is the boiling point of water at sea level in degrees Celsius and why does altitude change it?",
    "Write a haiku about autumn leaves falling on a quiet mountain path at dusk near an old temple.",
    "List three differences between a list and a tuple in Python, with a short example of each one.",
]


def contaminated_dataset(tmp_path, ledger) -> dict:
    freeze_suite(make_suite(tmp_path, "frozen", ITEMS), ledger)
    register_suite(make_suite(tmp_path, "draft", ["Tell me a joke about penguins wearing tiny hats in the snow today."]), ledger)
    rows = [
        pair(ITEMS[0], "100 degrees; lower pressure at altitude lowers it."),                              # verbatim
        pair(ITEMS[1].replace("dusk", "dawn"), "Leaves drift down / the path hushes / temple bells"),       # one word changed
        pair("Before my exam, please help: " + ITEMS[2] + " I need it for tomorrow morning, thanks a lot!",
             "Lists are mutable, tuples are not; ..."),                                                     # embedded
        pair("Tell me a joke about penguins wearing tiny hats in the snow today.", "Why did the penguin ..."),  # draft suite: not frozen
        pair("How do I boil an egg?", "Simmer it for nine minutes."),
    ]
    ingest(write_jsonl(tmp_path / "train.jsonl", rows), "train", ledger)
    return ledger.get_dataset("train")


def test_contamination_item_by_item(tmp_path, ledger):
    data = contaminated_dataset(tmp_path, ledger)
    report = data_report(data, ledger)
    con = report["contamination"]
    assert [s["suite"] for s in con["suites"]] == ["frozen"]
    assert con["contaminated_pairs"] == 3 and con["contaminated_items"] == 3
    items = {i["item_id"]: i for i in con["items"]}
    assert set(items) == {"frozen-0", "frozen-1", "frozen-2"}
    assert items["frozen-0"]["max_ngram_overlap"] == 1.0 and items["frozen-0"]["max_jaccard"] == 1.0
    assert 0.5 <= items["frozen-1"]["max_ngram_overlap"] < 1.0
    assert items["frozen-2"]["max_ngram_overlap"] == 1.0 and items["frozen-2"]["max_jaccard"] < 0.8
    found = contaminated_ids(data, ledger)
    assert len(found) == 3 and found == {pid for i in con["items"] for pid in i["pair_ids"]}
    # the same function takes the pairs in other forms
    import pyarrow.parquet as pq

    assert contaminated_ids(pq.read_table(data["path"]), ledger) == found
    assert contaminated_ids(data["path"], ledger) == found


def test_decontaminate_writes_a_new_version_with_lineage(tmp_path, ledger):
    data = contaminated_dataset(tmp_path, ledger)
    removed = contaminated_ids(data, ledger)
    result = runner.invoke(app, ["data", "decontaminate", "train", "--name", "train-clean", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["dataset"]["name"] == "train-clean" and out["dataset"]["pairs"] == 2 and out["rejects"] == 3
    assert out["parents"][0]["dataset"] == "train@1" and out["parents"][0]["relation"] == "decontaminate"
    assert out["major_change"] is True  # 3 of 5 pairs removed: 0.6 > 0.3
    clean = ledger.get_dataset("train-clean")
    assert clean.get("n_excluded") == 3 and clean["n_accepted"] == 2
    rejects = [json.loads(line) for line in open(clean["rejects_path"])]
    assert {r["id"] for r in rejects} == removed and all(r["kind"] == "contaminated" and "frozen@1:frozen-" in r["reason"] for r in rejects)
    assert contaminated_ids(clean, ledger) == set()
    info = lineage(ledger, clean)
    assert info["major_change"] is True and info["parents"][0]["removed"] == 3 and info["parents"][0]["params"]["removed"] == 3


def test_decontaminate_nothing_to_remove_is_a_minor_version(tmp_path, ledger):
    ingest(write_jsonl(tmp_path / "x.jsonl", [pair(f"Question {i} about boats?", f"Answer {i}.") for i in range(4)]), "x", ledger)
    result = decontaminate("x", "x", ledger)
    assert result["dataset"]["version"] == 2 and result["rejects"] == 0 and result["major_change"] is False
    assert [p["relation"] for p in result["parents"]] == ["decontaminate"]
