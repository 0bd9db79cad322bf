"""The newcomer's path: holding out pairs, discovering scorers, names instead of ids, a one-screen
`runs show`, the next command after each step, and re-ingests that say what they did."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.data.split import heldout_groups, split
from prefline.errors import PreflineError

runner = CliRunner()


def _pairs(n_prompts: int = 20) -> list[dict]:
    """Two pairs per prompt; slices alternate over four intent/surface combinations."""
    rows = []
    for i in range(n_prompts):
        slices = {"intent": "coding" if i % 2 else "factual", "surface": "voice" if i % 4 < 2 else "chat"}
        for j in range(2):
            rows.append({**pair(i), "chosen": [{"role": "assistant", "content": f"Answer {i}.{j}: xs[::-1]"}], "slices": slices})
    return rows


def test_heldout_groups_by_largest_remainder():
    # strata of 5, 3 and 2 groups at 30%: exact 1.5, 0.9, 0.6 -> floors 1, 0, 0; total round(3.0) = 3,
    # so the two largest remainders (0.9 of b, 0.6 of c) get one more each
    strata = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    keys = [9, 1, 5, 3, 7, 2, 8, 4, 6, 0]
    held = heldout_groups(strata, __import__("numpy").array(keys, dtype="uint64"), 0.3)
    assert held.tolist() == [False, True, False, False, False, True, False, False, False, True]


def test_split_by_prompt_stratified_with_lineage(tmp_path, ledger):
    runner.invoke(app, ["data", "ingest", str(write_jsonl(tmp_path / "p.jsonl", _pairs())), "--name", "mine"])
    result = split("mine", 0.2, ledger, seed=1)
    assert result["prompts"] == 20 and result["heldout_prompts"] == 4
    train, held = result["train"]["dataset"], result["heldout"]["dataset"]
    assert (train["name"], held["name"]) == ("mine-train", "mine-heldout")
    assert train["pairs"] + held["pairs"] == 40 and held["pairs"] == 8  # both pairs of each held-out prompt

    from prefline.data.store import pairs_table

    def prompts_and_slices(name):
        table = pairs_table(ledger.get_dataset(name))
        return ([json.dumps(p) for p in table.column("prompt").to_pylist()], [json.loads(s) for s in table.column("slices").to_pylist()])

    train_prompts, _ = prompts_and_slices("mine-train")
    held_prompts, held_slices = prompts_and_slices("mine-heldout")
    assert not set(train_prompts) & set(held_prompts)  # no prompt on both sides
    combos = {(s["intent"], s["surface"]) for s in held_slices}
    assert len(combos) == 4  # 5 prompts per combination, 20% each: one prompt of every combination
    from prefline.data.lineage import lineage

    parents = lineage(ledger, ledger.get_dataset("mine-heldout"))["parents"]
    assert parents[0]["dataset"] == "mine@1" and parents[0]["relation"] == "split"
    assert parents[0]["params"]["side"] == "heldout" and parents[0]["params"]["heldout"] == 0.2
    again = split("mine", 0.2, ledger, seed=1, train_name="t2", heldout_name="h2")
    assert again["heldout"]["dataset"]["content_hash"] == held["content_hash"]  # the seed fixes the split


def test_split_cli_and_bad_input(tmp_path, ledger):
    runner.invoke(app, ["data", "ingest", str(write_jsonl(tmp_path / "p.jsonl", _pairs(10))), "--name", "mine"])
    result = runner.invoke(app, ["data", "split", "mine", "--heldout", "0.2"])
    assert result.exit_code == 0, result.output
    assert "2 of 10 prompts held out" in result.stdout and "mine-heldout@1" in result.stdout
    assert "next: prefline train dpo --data mine-train" in result.stderr
    bad = runner.invoke(app, ["data", "split", "mine", "--heldout", "1.5"])
    assert bad.exit_code == 2 and "--heldout 1.5" in bad.output
    with pytest.raises(PreflineError, match="one side empty"):
        split("mine", 0.01, ledger)
    as_json = runner.invoke(app, ["data", "split", "mine", "--heldout", "0.3", "--train-name", "a", "--heldout-name", "b", "--json"])
    assert json.loads(as_json.stdout)["heldout"]["dataset"]["name"] == "b"


def test_scorers_list_and_show():
    result = runner.invoke(app, ["scorers", "list", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["refusal"]["reads"] == ["should_refuse"] and rows["refusal"]["metrics"]["over_refusal"] == "lower"
    assert rows["instructions"]["reads"] == ["constraints"]
    assert rows["abstention"]["reads"] == ["reference", "answerable"]
    assert rows["citations"]["section"] == "evidence" and rows["length"]["section"] == "style" and rows["length"]["reads"] == []
    shown = runner.invoke(app, ["scorers", "show", "error_modes"])
    assert shown.exit_code == 0 and "reads item fields: reference, required_points, sources" in shown.stdout
    unknown = runner.invoke(app, ["scorers", "show", "nope"])
    assert unknown.exit_code == 2 and "unknown scorer" in unknown.output


def test_reingest_says_what_it_did(tmp_path, ledger):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(4)])
    first = runner.invoke(app, ["data", "ingest", str(path), "--name", "mine"])
    assert "note:" not in first.stderr and "next: prefline data report mine" in first.stderr
    second = runner.invoke(app, ["data", "ingest", str(path), "--name", "mine"])
    assert second.exit_code == 0
    assert "mine@1 already holds exactly these pairs" in second.stderr
    assert "this ingest created mine@2, which `--data mine` now picks (`--data mine@1` for the previous one)" in second.stderr
    as_json = runner.invoke(app, ["data", "ingest", str(path), "--name", "mine", "--json"])
    assert json.loads(as_json.stdout)["version"] == 3  # notes go to stderr; stdout stays JSON


def test_names_and_one_screen_runs_show(tmp_path, ledger, tiny_model_dir):
    from prefline.config import DecodingConfig, TrainConfig
    from prefline.evals.run import run_eval
    from prefline.evals.suite import load_suite
    from prefline.train.run import train

    runner.invoke(app, ["data", "ingest", str(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(6)])), "--name", "mine"])
    train("dpo", "mine", "first", TrainConfig(max_steps=1, batch_size=2, max_length=64, bf16=False, gradient_checkpointing=False),
          ledger, model_spec=str(tiny_model_dir), show_progress=False)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.yaml").write_text("name: own\nversion: 3\nitems: items.jsonl\n")
    write_jsonl(suite / "items.jsonl", [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Question {i}?"}],
                                         "slices": {"intent": "factual" if i % 2 else "howto"}} for i in range(4)])
    run = run_eval(load_suite(str(suite)), ledger, adapter="first", decoding=DecodingConfig(max_new_tokens=4), show_progress=False)

    listed = runner.invoke(app, ["runs", "list"])
    assert "own v3" in listed.stdout and "first" in listed.stdout
    adapters = runner.invoke(app, ["adapters", "show", "first"])
    assert "dataset mine@1" in adapters.stdout and "dataset id" not in adapters.stdout
    shown = runner.invoke(app, ["runs", "show", str(run)])
    assert shown.exit_code == 0
    assert "suite own v3" in shown.stdout and "+ adapter first" in shown.stdout
    assert "overall (90% bootstrap interval)" not in shown.stdout  # the metric table is printed once, by layer
    assert "2 slices over intent: --slices prints each metric per slice" in shown.stdout
    assert "intent=howto" not in shown.stdout and len(shown.stdout.splitlines()) < 30
    assert f"next: prefline runs show {run} --items" in shown.stderr
    slices = runner.invoke(app, ["runs", "show", str(run), "--slices"])
    assert "intent=howto" in slices.stdout
    items = runner.invoke(app, ["runs", "show", str(run), "--items"])
    assert "Question 3?" in items.stdout


def test_eval_without_suite_says_which_it_uses(monkeypatch):
    from prefline.evals import run as run_module

    def stop(*args, **kwargs):
        raise PreflineError("stopped before generating")

    monkeypatch.setattr(run_module, "run_evals", stop)
    result = runner.invoke(app, ["eval"])
    assert result.exit_code == 2
    assert "no --suite given: evaluating on the shipped `smoke` suite v1 (32 items)" in result.stderr


def test_tutorial_example_files_give_the_figures_the_tutorial_shows(ledger):
    """docs/tutorial.md walks examples/tutorial: its pairs ingest whole (40 of 40), hash as shown,
    split 4 of 20 prompts out, and its suite validates with 24 items and the hash shown."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "examples" / "tutorial"
    tutorial = (Path(__file__).resolve().parents[1] / "docs" / "tutorial.md").read_text(encoding="utf-8")
    ingested = runner.invoke(app, ["data", "ingest", str(root / "pairs.jsonl"), "--name", "mine"])
    assert ingested.exit_code == 0, ingested.output
    assert "read 40 = accepted 40 + rejected 0" in ingested.output
    first_line = next(line for line in ingested.output.splitlines() if line.startswith("dataset mine@1"))
    assert first_line.split("hash ")[1].rstrip(")") in tutorial
    done = runner.invoke(app, ["data", "split", "mine", "--heldout", "0.2"])
    assert done.exit_code == 0 and "4 of 20 prompts held out" in done.output
    checked = runner.invoke(app, ["suite", "validate", str(root / "my-suite")])
    assert checked.exit_code == 0 and "24 items valid" in checked.output
    assert checked.output.split("hash ")[1][:12] in tutorial
