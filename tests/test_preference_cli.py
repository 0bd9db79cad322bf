"""The preference layer from the command line, on the tiny model: pair accuracy and judged win rates."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.config import DecodingConfig, TrainConfig
from prefline.data.ingest import ingest
from prefline.evals.run import run_eval
from prefline.evals.suite import load_suite
from prefline.train.run import train

FAST = TrainConfig(max_steps=4, batch_size=2, learning_rate=2e-2, max_length=64, bf16=False, gradient_checkpointing=False)
runner = CliRunner()


@pytest.fixture
def trained(ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "train.jsonl", [pair(i) for i in range(8)]), "train", ledger)
    ingest(write_jsonl(tmp_path / "held.jsonl", [pair(i) for i in range(100, 106)]), "held", ledger)
    train("dpo", "train", "pol", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    train("reward", "train", "rm", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    return tiny_model_dir


def test_pair_accuracy_for_policy_and_reward_model(ledger, trained):
    result = runner.invoke(app, ["preference", "accuracy", "--data", "held", "--adapter", "pol", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["kind"] == "pair_accuracy" and payload["warning"] is None
    overall = payload["slices"]["overall"]
    assert overall["n"] == 6 and 0 <= overall["accuracy"] <= 1 and overall["ci"][0] <= overall["accuracy"] <= overall["ci"][1]
    assert payload["slices"]["intent=coding"]["n"] == 3

    rm = json.loads(runner.invoke(app, ["preference", "accuracy", "--data", "held", "--adapter", "rm", "--json"]).output)
    assert rm["kind"] == "reward_accuracy"
    stored = ledger.preference_evals()
    assert [e["kind"] for e in stored] == ["pair_accuracy", "reward_accuracy"]
    assert len(stored[1]["items"]) == 6 and {"reward_chosen", "reward_rejected", "correct"} <= set(stored[1]["items"][0])

    on_train = runner.invoke(app, ["preference", "accuracy", "--data", "train", "--adapter", "pol"])
    assert on_train.exit_code == 0 and "training accuracy, not held-out" in on_train.output


def test_win_rate_with_reward_and_llm_judges(ledger, trained):
    suite = load_suite("smoke")
    decode = DecodingConfig(max_new_tokens=6, batch_size=16)
    base = run_eval(suite, ledger, model_spec=str(trained), decoding=decode, show_progress=False)
    cand = run_eval(suite, ledger, adapter="pol", decoding=decode, show_progress=False)

    by_reward = runner.invoke(app, ["preference", "winrate", str(base), str(cand), "--judge", "reward:rm", "--json"])
    assert by_reward.exit_code == 0, by_reward.output
    payload = json.loads(by_reward.output)
    overall = payload["slices"]["overall"]
    assert overall["n"] == 32 and overall["flip_rate"] == 0.0  # a reward model scores each answer alone: no position effect
    assert "length_controlled" in overall
    assert payload["judge"]["adapter"] == "rm"

    by_llm = runner.invoke(app, ["preference", "winrate", str(base), str(cand), "--judge", "llm", "--model", str(trained)])
    assert by_llm.exit_code == 0, by_llm.output
    assert "flip rate" in by_llm.output
    assert [e["kind"] for e in ledger.preference_evals()] == ["win_rate", "win_rate"]

    wrong = runner.invoke(app, ["preference", "winrate", str(base), str(cand), "--judge", "reward:pol"])
    assert wrong.exit_code == 2 and "not as a reward model" in wrong.output
