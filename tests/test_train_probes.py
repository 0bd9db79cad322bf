"""Drift probes: the trajectory (step -> mean length, refusal rate) goes to the ledger, generation runs
on the model being trained and leaves it in train mode, and a crossed drift limit stops training."""

from __future__ import annotations

import pytest
import torch

from conftest import pair, write_jsonl
from prefline.config import TrainConfig, parse
from prefline.evals.suite import shipped_suites
from prefline.data.ingest import ingest
from prefline.errors import PreflineError
from prefline.models import load_model, load_tokenizer, resolve_model
from prefline.train.probes import drift, generate, probe_items, probe_suite_name
from prefline.train.run import train

FAST = dict(batch_size=4, max_length=64, bf16=False, gradient_checkpointing=False, probe_items=4, probe_max_new_tokens=8)


@pytest.fixture(scope="module")
def terse_model_dir(tmp_path_factory):
    """A tiny Llama (small init, untied head) whose greedy first token on every probe prompt is EOS,
    by a margin of 0.5 logits: its step-0 probe responses are all empty. Its lm_head row for EOS is set
    along the mean last hidden state of the probe prompts (their cosine to the mean is above 0.99)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from prefline.models import embedded_gguf_path

    folder = tmp_path_factory.mktemp("terse-model")
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, initializer_range=0.02)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(i.chat(), tokenize=False, add_generation_prompt=True)
             for i in probe_items(TrainConfig(probe_items=4))]
    with torch.no_grad():
        hidden = model.model(**tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)).last_hidden_state[:, -1]
        best = model.lm_head(hidden).max(dim=1).values
        direction = hidden.mean(0) / hidden.mean(0).dot(hidden.mean(0))
        model.lm_head.weight[tokenizer.eos_token_id] = direction * ((best + 0.5) / (hidden @ direction)).max()
    model.save_pretrained(folder)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(folder)
    return folder


def test_drift_limits():
    """Length is relative to the step-0 mean (floored at 1 token); refusal is an absolute rise."""
    config = TrainConfig(probe_every=1, max_length_increase=0.3, max_refusal_increase=0.1)
    base = {"length_tokens": 40.0, "refusal": 0.25}
    assert drift(base, {"length_tokens": 51.6, "refusal": 0.34}, config) is None  # +29%, +0.09: within
    assert "+32%" in drift(base, {"length_tokens": 52.8, "refusal": 0.25}, config)  # 52.8 / 40 = 1.32
    assert "+0.15" in drift(base, {"length_tokens": 40.0, "refusal": 0.40}, config)
    assert "+500%" in drift({"length_tokens": 0.0, "refusal": 0.0}, {"length_tokens": 6.0, "refusal": 0.0}, config)
    assert drift(base, {"length_tokens": 400.0, "refusal": 1.0}, TrainConfig(probe_every=1)) is None  # no limits set
    with pytest.raises(PreflineError, match="max_length_increase is a drift limit read from the probes, but probe_every is 0"):
        parse({"max_length_increase": 0.3}, TrainConfig, "train.yaml")
    assert probe_suite_name(TrainConfig()) == ("probe" if "probe" in shipped_suites() else "smoke")
    assert probe_suite_name(TrainConfig(probe_suite="smoke")) == "smoke"


def test_generate_uses_the_model_as_it_is_and_restores_train_mode(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    ref = resolve_model(str(tiny_model_dir))
    tokenizer = load_tokenizer(ref, padding_side="left")
    model = get_peft_model(load_model(ref), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    chats = [item.chat() for item in probe_items(TrainConfig(probe_items=3))]
    before = generate(model, tokenizer, chats, 6)
    assert model.training and len(before) == 3 and all(g.output_tokens == 6 for g in before)
    with torch.no_grad():  # move the adapter: the probe must see it
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)
    after = generate(model, tokenizer, chats, 6)
    assert [g.output for g in after] != [g.output for g in before]
    with model.disable_adapter():
        assert [g.output for g in generate(model, tokenizer, chats, 6)] == [g.output for g in before]


def test_a_crossed_length_limit_stops_training(ledger, terse_model_dir, tmp_path):
    """Step 0: every probe response is empty (0 tokens). SFT on the pairs' answers outbids EOS within
    2 steps, the responses grow to several tokens, past max_length_increase 0.3 of the floored 1-token
    baseline: training stops at the first probe after step 0 instead of running its 10 steps."""
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(8)]), "d", ledger)
    config = TrainConfig(max_steps=10, learning_rate=5e-2, probe_every=2, max_length_increase=0.3, **FAST)
    adapter = train("sft", "d", "a", config, ledger, model_spec=str(terse_model_dir), show_progress=False)
    assert adapter["status"] == "done"
    taken = ledger.probes(adapter["id"])
    assert [p.step for p in taken] == [0, 2]
    assert taken[0].metrics == {"n": 4, "length_tokens": 0.0, "refusal": 0.0}
    assert taken[1].metrics["length_tokens"] > 1.3 and len(taken[1].outputs) == 4
    stopped = adapter["metrics"]["stopped_early"]
    assert stopped["step"] == 2 and "over max_length_increase 30%" in stopped["reason"]
    assert adapter["metrics"]["steps"] == 2 and [s["step"] for s in ledger.train_steps(adapter["id"])] == [1, 2]
    assert adapter["metrics"]["warnings"][-1]["code"] == "drift-limit"


def test_probes_within_limits_record_the_trajectory(ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(8)]), "d", ledger)
    config = TrainConfig(max_steps=4, learning_rate=1e-2, probe_every=2, max_refusal_increase=0.5, **FAST)
    adapter = train("dpo", "d", "a", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    taken = ledger.probes(adapter["id"])
    assert [p.step for p in taken] == [0, 2, 4] and "stopped_early" not in adapter["metrics"]
    assert all(p.metrics["n"] == 4 and 0 <= p.metrics["refusal"] <= 1 for p in taken)
