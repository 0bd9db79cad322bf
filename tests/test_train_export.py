"""Exporting adapters: a merged full model gives the same logits as base + adapter, and transformers
loads it with no prefline code; without --merge the PEFT folder is copied as is."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.config import TrainConfig
from prefline.data.ingest import ingest
from prefline.models import resolve_model
from prefline.train.run import train

FAST = TrainConfig(max_steps=2, batch_size=2, learning_rate=5e-2, max_length=64, bf16=False, gradient_checkpointing=False)


@pytest.fixture
def adapter(ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(4)]), "d", ledger)
    return train("dpo", "d", "a", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)


def test_merged_export_matches_base_plus_adapter(adapter, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    result = CliRunner().invoke(app, ["adapters", "export", "a", "--merge", "--out", str(out)])
    assert result.exit_code == 0, result.output

    tokenizer = AutoTokenizer.from_pretrained(out)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "How do I reverse a list?"}], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()  # plain transformers
    assert not any("lora" in name for name, _ in merged.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, adapter["path"]).eval()
    with torch.no_grad():
        expected, got = peft(**ids).logits, merged(**ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()(**ids).logits
    assert (expected - plain).abs().max() > 1e-3  # the adapter changes the output ...
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # ... and the merged model reproduces it

    marker = json.loads((out / "prefline-model.json").read_text())
    assert marker["adapter_hash"] == adapter["adapter_hash"] and marker["base_model_hash"] == adapter["base_model_hash"]
    assert resolve_model(str(out)).hash == marker["hash"]  # usable as --model


def test_plain_export_copies_the_peft_folder(adapter, tmp_path):
    out = tmp_path / "copy"
    result = CliRunner().invoke(app, ["adapters", "export", "a", "--out", str(out)])
    assert result.exit_code == 0, result.output
    copied = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(copied)
    from pathlib import Path

    assert copied["adapter_model.safetensors"] == (Path(adapter["path"]) / "adapter_model.safetensors").read_bytes()
    again = CliRunner().invoke(app, ["adapters", "export", "a", "--out", str(out)])
    assert again.exit_code == 2 and "already exists and is not an empty folder" in again.output
