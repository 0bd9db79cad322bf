"""The walking path on a tiny model: ingest -> train dpo -> eval base and adapter -> gate.

Everything is real (TRL's DPOTrainer, PEFT, batched generation, the ledger) except the
model's size: a 2-layer Llama with random weights, so the whole path runs in seconds.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.config import DecodingConfig, TrainConfig
from prefline.data.ingest import ingest
from prefline.errors import PreflineError
from prefline.evals.run import run_eval
from prefline.evals.suite import load_suite
from prefline.train.run import train

FAST = TrainConfig(max_steps=3, batch_size=2, learning_rate=1e-2, max_length=64, bf16=False, gradient_checkpointing=False)
DECODE = DecodingConfig(max_new_tokens=8, batch_size=8)


@pytest.fixture
def dataset(tmp_path, ledger):
    return ingest(write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(8)]), "tiny", ledger)


def test_train_registers_adapter_with_lineage(ledger, dataset, tiny_model_dir):
    adapter = train("dpo", "tiny", "a1", FAST, ledger, model_spec=str(tiny_model_dir), surface="chat", show_progress=False)
    assert adapter["status"] == "done"
    assert adapter["method"] == "dpo" and adapter["surface"] == "chat"
    assert adapter["dataset_id"] == dataset.dataset_id and adapter["dataset_hash"] == dataset.content_hash
    assert adapter["base_model"] == str(tiny_model_dir) and len(adapter["base_model_hash"]) == 64
    assert adapter["config"]["beta"] == 0.1 and adapter["config"]["method"] == "dpo"
    assert {"torch", "trl", "peft", "transformers"} <= set(adapter["versions"])
    assert len(adapter["adapter_hash"]) == 64

    # LoRA's B matrices start at zero: training must have moved them.
    weights = load_file(f"{adapter['path']}/adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)
    config = json.loads(open(f"{adapter['path']}/adapter_config.json").read())
    assert config["peft_type"] == "LORA" and config["r"] == FAST.lora_r

    steps = ledger.train_steps(adapter["id"])
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert {"loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "learning_rate"} <= set(steps[0]["metrics"])
    # first DPO step: policy == reference, so the loss is exactly log(2)
    assert steps[0]["metrics"]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert adapter["metrics"]["steps"] == 3


def test_bad_requests_fail_before_loading_a_model(ledger, dataset, tiny_model_dir):
    with pytest.raises(PreflineError, match="unknown training method"):
        train("nope", "tiny", "x", FAST, ledger, model_spec=str(tiny_model_dir))
    with pytest.raises(PreflineError, match="unknown dataset"):
        train("dpo", "missing", "x", FAST, ledger, model_spec=str(tiny_model_dir))
    train("dpo", "tiny", "taken", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    with pytest.raises(PreflineError, match="already exists"):
        train("dpo", "tiny", "taken", FAST, ledger, model_spec=str(tiny_model_dir))


def test_eval_stores_generations_scores_and_is_deterministic(ledger, dataset, tiny_model_dir):
    suite = load_suite("smoke")
    first = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    second = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    gens = ledger.generations(first)
    assert len(gens) == len(suite.items)
    assert all(0 < g["output_tokens"] <= 8 and g["input_tokens"] > 0 for g in gens)
    assert [g["output"] for g in gens] == [g["output"] for g in ledger.generations(second)]
    assert [s["value"] for s in ledger.scores(first)] == [s["value"] for s in ledger.scores(second)]

    metrics = {s["metric"] for s in ledger.scores(first)}
    from prefline.evals.scorers import get_scorers

    declared = {m for scorer in get_scorers(suite.scorers) for m in scorer.metrics}  # the smoke header's style metrics
    assert {"length_tokens", "length_words", "refusal", "over_refusal", "under_refusal", "hedged", "latency_s"} <= metrics <= declared
    run = ledger.get_run(first)
    assert run["status"] == "done" and run["suite_hash"] == suite.hash
    n_harmful = sum(1 for i in suite.items if i.should_refuse)
    assert run["summary"]["under_refusal"]["overall"]["n"] == n_harmful
    assert run["summary"]["length_tokens"]["overall"]["n"] == len(suite.items)


def test_adapter_changes_outputs_and_gate_runs(ledger, dataset, tiny_model_dir):
    suite = load_suite("smoke")
    train("dpo", "tiny", "a2", FAST.model_copy(update={"max_steps": 6}), ledger, model_spec=str(tiny_model_dir), show_progress=False)
    base = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    cand = run_eval(suite, ledger, adapter="a2", decoding=DECODE, show_progress=False)
    assert ledger.get_run(cand)["adapter_hash"] == ledger.get_adapter("a2")["adapter_hash"]
    assert ledger.get_run(cand)["model"] == str(tiny_model_dir)  # the adapter's base by default
    base_out = [g["output"] for g in ledger.generations(base)]
    cand_out = [g["output"] for g in ledger.generations(cand)]
    assert base_out != cand_out

    result = CliRunner().invoke(app, ["gate", str(base), str(cand), "--json"])
    assert result.exit_code in (0, 1, 2)
    payload = json.loads(result.output)
    assert payload["verdict"] == {0: "pass", 1: "fail", 2: "inconclusive"}[result.exit_code]
    # the default policy's rules, and every other metric the scorers produced (all_metrics)
    assert {"over_refusal", "under_refusal", "length_tokens", "length_words"} <= {c["metric"] for c in payload["checks"]}


def test_adapter_on_another_base_is_refused(ledger, dataset, tiny_model_dir, tmp_path):
    import shutil

    train("dpo", "tiny", "a3", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(other)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    model.save_pretrained(other)
    with pytest.raises(PreflineError, match="base model hashes differ"):
        run_eval(load_suite("smoke"), ledger, model_spec=str(other), adapter="a3", decoding=DECODE, show_progress=False)
