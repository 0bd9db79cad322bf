"""Mixtures (weights per dataset and slice, seeded draw, lineage) and version diffs
(added/removed counts, per-source and per-slice counts, bias change, the major-change flag)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.data.diff import MAJOR_CHANGE_SHARE, diff_versions
from prefline.data.lineage import backfill, lineage, parents
from prefline.data.ingest import ingest
from prefline.data.mix import mix, parse_slice_weight, parse_source
from prefline.errors import PreflineError

runner = CliRunner()


def row(tag: str, i: int, intent: str = "factual", source: str = "raters", rejected: str | None = None) -> dict:
    return {"prompt": f"{tag} question number {i}?", "chosen": f"A careful answer to {tag} {i}.",
            "rejected": rejected or f"Wrong {tag} {i}.", "slices": {"intent": intent}, "source": source}


def store(tmp_path, ledger, name: str, rows: list[dict]) -> dict:
    ingest(write_jsonl(tmp_path / f"{name}-{len(rows)}-{rows[0]['prompt'][:5]}.jsonl", rows), name, ledger)
    return ledger.get_dataset(name)


def ids_of(dataset: dict) -> list[str]:
    return pq.read_table(dataset["path"], columns=["id"]).column("id").to_pylist()


@pytest.fixture
def two(tmp_path, ledger):
    a = store(tmp_path, ledger, "a", [row("alpha", i, "coding" if i < 4 else "factual", "raters") for i in range(10)])
    b = store(tmp_path, ledger, "b", [row("beta", i, "factual", "judge") for i in range(10)])
    return a, b


def test_mix_weights_and_lineage(two, ledger):
    a, b = two
    result = mix("m", [("a", 0.5), ("b", 1.0)], ledger, seed=7)
    assert result["dataset"]["pairs"] == 15  # round(0.5 * 10) + 10
    mixed = set(ids_of(ledger.get_dataset("m")))
    assert set(ids_of(b)) <= mixed and len(mixed & set(ids_of(a))) == 5
    links = parents(ledger, result["dataset"]["id"])
    assert [(p.parent_name, p.relation, p.params["weight"], p.params["pairs_kept"]) for p in links] == \
        [("a", "mix", 0.5, 5), ("b", "mix", 1.0, 10)]
    assert all(p.params["seed"] == 7 for p in links)
    assert links[0].is_primary and not links[1].is_primary
    # a new mixture is a major change from its first source: 10 of 15 pairs are new to it
    assert result["major_change"] is True and result["diff"]["added"] == 10 and result["diff"]["removed"] == 5


def test_mix_is_deterministic_and_seeded(two, ledger):
    first = mix("m1", [("a", 0.5)], ledger, seed=1)
    again = mix("m2", [("a", 0.5)], ledger, seed=1)
    other = mix("m3", [("a", 0.5)], ledger, seed=2)
    picked = [set(ids_of(ledger.get_dataset(r["dataset"]["name"]))) for r in (first, again, other)]
    assert picked[0] == picked[1] and picked[0] != picked[2]


def test_mix_by_slice(two, ledger):
    dropped = mix("no-coding", [("a", 1.0)], ledger, by_slice=[("intent", "coding", 0.0)])
    assert dropped["dataset"]["pairs"] == 6
    # a 0.5 rate doubled for coding: all 4 coding pairs, half of the 6 others
    boosted = mix("boost", [("a", 0.5)], ledger, by_slice=[("intent", "coding", 2.0)])
    table = pq.read_table(ledger.get_dataset("boost")["path"], columns=["slices"]).column("slices").to_pylist()
    assert boosted["dataset"]["pairs"] == 7 and sum('"coding"' in s for s in table) == 4
    assert boosted["parents"][0]["params"]["by_slice"] == [{"key": "intent", "value": "coding", "weight": 2.0}]


def test_mix_keeps_a_shared_pair_once(tmp_path, two, ledger):
    shared = store(tmp_path, ledger, "c", [row("alpha", 0, "coding"), row("gamma", 1)])
    result = mix("m", [("a", 1.0), ("c", 1.0)], ledger)
    assert result["dataset"]["pairs"] == 11 and result["rejects"] == 1
    rejects = [json.loads(line) for line in open(ledger.get_dataset("m")["rejects_path"])]
    assert rejects[0]["kind"] == "duplicate"
    assert ledger.get_dataset("m")["n_duplicates"] == 1 and shared["n_accepted"] == 2


@pytest.mark.parametrize("text, fragment", [("a", "expected DATASET:WEIGHT"), ("a:x", "is not a number"), ("a:1.5", "in (0, 1]"), ("a:0", "in (0, 1]")])
def test_bad_source_weights(text, fragment):
    with pytest.raises(PreflineError, match=fragment.replace("(", r"\(").replace("]", r"\]")):
        parse_source(text)


def test_slice_weight_parsing():
    assert parse_slice_weight("surface=voice:2") == ("surface", "voice", 2.0)
    assert parse_source("helpful@2:0.25") == ("helpful@2", 0.25)
    with pytest.raises(PreflineError, match="KEY=VALUE:WEIGHT"):
        parse_slice_weight("voice:2")
    with pytest.raises(PreflineError, match=">= 0"):
        parse_slice_weight("a=b:-1")


def test_diff_counts_and_major_change(tmp_path, ledger):
    """v1: 10 pairs. v2: 8 of them + 3 new -> added 3, removed 2, changed (3 + 2) / 13 = 0.3846 > 0.3: major.
    v3: v2 minus one pair -> changed 1 / 11 = 0.0909: minor."""
    v1 = store(tmp_path, ledger, "d", [row("delta", i, "coding" if i < 5 else "factual") for i in range(10)])
    rows2 = [row("delta", i, "coding" if i < 5 else "factual") for i in range(2, 10)] + \
            [row("new", i, "creative", "judge", rejected="I can't help with that.") for i in range(3)]
    v2 = store(tmp_path, ledger, "d", rows2)
    change = diff_versions(v1, v2)
    assert (change["added"], change["removed"], change["kept"]) == (3, 2, 8)
    assert change["changed_share"] == round(5 / 13, 4) and change["major_change"] is True
    assert change["major_share"] == MAJOR_CHANGE_SHARE
    assert change["by_source"] == {"judge": {"old": 0, "new": 3, "change": 3}, "raters": {"old": 10, "new": 8, "change": -2}}
    assert change["by_slice"]["intent=coding"] == {"old": 5, "new": 3, "change": -2}
    assert change["by_slice"]["intent=creative"] == {"old": 0, "new": 3, "change": 3}
    assert change["bias"]["rejected_refuses"] == {"old": 0.0, "new": round(3 / 11, 4), "change": round(3 / 11, 4)}
    assert len(change["added_ids"]) == 3 and len(change["removed_ids"]) == 2
    assert diff_versions(v1, v2, major_share=0.5)["major_change"] is False

    # reading never writes: an ingested refresh has no parents until it is backfilled, once
    assert lineage(ledger, v2) == {"parents": [], "major_change": None} and parents(ledger, v2["id"]) == []
    assert backfill(ledger, v2) is True and backfill(ledger, v2) is False
    info = lineage(ledger, v2)
    assert info["major_change"] is True and info["parents"][0]["relation"] == "refresh"
    assert info["parents"][0]["dataset"] == "d@1" and (info["parents"][0]["added"], info["parents"][0]["removed"]) == (3, 2)
    assert len(parents(ledger, v2["id"])) == 1 and lineage(ledger, v2) == info  # recorded once
    assert backfill(ledger, v1) is False and lineage(ledger, v1) == {"parents": [], "major_change": None}

    v3 = store(tmp_path, ledger, "d", rows2[1:])
    backfill(ledger, v3)
    assert lineage(ledger, v3)["major_change"] is False
    assert parents(ledger, v3["id"])[0].changed_share == round(1 / 11, 4)


def test_cli_mix_and_diff_json(two, ledger):
    result = runner.invoke(app, ["data", "mix", "--name", "m", "--from", "a:0.5", "--from", "b:1", "--by-slice", "intent=coding:0",
                                 "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["dataset"]["pairs"] == 13  # round(0.5 * 6) factual from a + 10 from b
    assert [p["dataset"] for p in out["parents"]] == ["a@1", "b@1"]
    diff = runner.invoke(app, ["data", "diff", "a", "m", "--json"])
    assert diff.exit_code == 0, diff.output
    change = json.loads(diff.output)
    assert (change["added"], change["removed"], change["kept"]) == (10, 7, 3)
    alone = json.loads(runner.invoke(app, ["data", "diff", "m", "--json"]).output)
    assert alone["old"]["name"] == "a" and alone["new"]["name"] == "m"
    text = runner.invoke(app, ["data", "diff", "a", "m"])
    assert text.exit_code == 0 and "MAJOR change" in text.output and "per slice" in text.output
    assert runner.invoke(app, ["data", "mix", "--name", "z", "--from", "a:2"]).exit_code == 2
    orphan = runner.invoke(app, ["data", "diff", "a"])
    assert orphan.exit_code == 2 and "has no parent" in orphan.output
    report = json.loads(runner.invoke(app, ["data", "report", "m", "--json"]).output)
    assert [p["dataset"] for p in report["lineage"]["parents"]] == ["a@1", "b@1"] and report["lineage"]["major_change"] is True


def test_mix_balance_length_per_slice(tmp_path, ledger):
    """factual: 6 chosen-longer + 2 chosen-shorter -> 2 + 2 kept; coding: 1 longer + 3 shorter -> all 4 kept;
    the 4 cut pairs are in rejects.jsonl, excluded, so read = accepted + excluded."""
    long, short = "A much longer answer that goes on and on with several more words.", "Short."
    rows = ([row("fl", i, "factual", rejected=short) | {"chosen": long} for i in range(6)]
            + [row("fs", i, "factual", rejected=long) | {"chosen": short} for i in range(2)]
            + [row("cl", 0, "coding", rejected=short) | {"chosen": long}]
            + [row("cs", i, "coding", rejected=long) | {"chosen": short} for i in range(3)])
    store(tmp_path, ledger, "biased", rows)
    result = mix("balanced", [("biased", 1.0)], ledger, balance_length=True)
    assert result["dataset"]["pairs"] == 8 and result["rejects"] == 4
    table = pq.read_table(ledger.get_dataset("balanced")["path"])
    kept = [(json.loads(s)["intent"], c[0]["content"] == long) for s, c in zip(table.column("slices").to_pylist(), table.column("chosen").to_pylist())]
    assert sorted(kept) == sorted([("factual", True)] * 2 + [("factual", False)] * 2 + [("coding", True)] + [("coding", False)] * 3)
    cut = [json.loads(line) for line in open(ledger.get_dataset("balanced")["rejects_path"])]
    assert len(cut) == 4 and all(r["kind"] == "excluded" and r["category"] == "length-balance" for r in cut)
    assert parents(ledger, result["dataset"]["id"])[0].params["balance_length"] is True
    again = mix("balanced", [("biased", 1.0)], ledger, balance_length=True)
    assert ids_of(ledger.get_dataset("balanced@2")) == ids_of(ledger.get_dataset("balanced@1"))  # the cut is seeded, not random
    assert again["dataset"]["content_hash"] == result["dataset"]["content_hash"]
