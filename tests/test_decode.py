"""The greedy decoding loop whose finished rows leave the batch gives what greedy `generate` gives."""

from __future__ import annotations

import pytest

from prefline.config import DecodingConfig
from prefline.evals.backends import HFBackend
from prefline.evals.backends._decode import greedy_decode, plain_greedy, stop_token_ids
from prefline.models import load_model, load_tokenizer, resolve_model

PROMPTS = ["Name a colour.", "What is the capital of France? Answer in one word, please.", "hi",
           "Write a haiku about the sea and the wind over it.", "2+2?", "Tell me a long story about a cat."]
NEW = 24


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    ref = resolve_model(str(tiny_model_dir))
    return load_model(ref), load_tokenizer(ref, padding_side="left")


def _batch(tokenizer):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def _generate(model, tokenizer, enc, **extra) -> list[list[int]]:
    """Greedy `generate`, each row cut after its first stop token (what follows it is padding)."""
    import torch

    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=NEW, do_sample=False, pad_token_id=tokenizer.pad_token_id, **extra)
    stops = stop_token_ids(model)
    rows = []
    for ids in out[:, enc["input_ids"].shape[1]:].tolist():
        end = next((k for k, t in enumerate(ids) if t in stops), None)
        rows.append(ids if end is None else ids[:end + 1])
    return rows


def _early_stop_token(model, tokenizer, enc) -> int:
    """A token the tiny model emits in some rows and not others, early, so rows end at different steps."""
    model.generation_config.eos_token_id = None
    rows = _generate(model, tokenizer, enc)
    for candidate in (t for row in rows for t in row[1:NEW // 2]):
        ends = {row.index(candidate) if candidate in row else NEW for row in rows}
        if len(ends) >= 3 and NEW in ends:
            return candidate
    pytest.fail("no token of the tiny model's output ends rows at three different steps")


def test_greedy_decode_matches_generate_while_rows_leave_the_batch(tiny):
    model, tokenizer = tiny
    enc = _batch(tokenizer)
    saved = model.generation_config.eos_token_id
    try:
        model.generation_config.eos_token_id = _early_stop_token(model, tokenizer, enc)
        expected = _generate(model, tokenizer, enc)
        got = greedy_decode(model, enc["input_ids"], enc["attention_mask"], NEW, stop_token_ids(model))
    finally:
        model.generation_config.eos_token_id = saved
    lengths = {len(row) for row in expected}
    assert len(lengths) >= 3 and NEW in lengths  # rows left the batch at different steps, one ran to the end
    assert got == expected


def test_greedy_decode_calls_back_once_at_the_first_token(tiny):
    model, tokenizer = tiny
    enc = _batch(tokenizer)
    calls = []
    greedy_decode(model, enc["input_ids"], enc["attention_mask"], 5, stop_token_ids(model), on_first_token=lambda: calls.append(1))
    assert calls == [1]


def test_a_generation_config_that_changes_greedy_output_goes_through_generate(tiny):
    model, _ = tiny
    assert plain_greedy(model)
    model.generation_config.repetition_penalty = 1.3
    try:
        assert not plain_greedy(model)
    finally:
        model.generation_config.repetition_penalty = 1.0
    assert plain_greedy(model)


def test_backend_outputs_are_the_same_through_the_loop_and_through_generate(tiny_model_dir, monkeypatch):
    from prefline.evals.backends import _hf

    conversations = [[{"role": "user", "content": p}] for p in PROMPTS]
    backend = HFBackend(resolve_model(str(tiny_model_dir)), DecodingConfig(max_new_tokens=NEW, batch_size=4))
    backend.model.generation_config.eos_token_id = _early_stop_token(backend.model, backend.tokenizer, _batch(backend.tokenizer))
    backend.tokenizer.eos_token = backend.tokenizer.convert_ids_to_tokens(backend.model.generation_config.eos_token_id)
    looped = backend.generate(conversations)
    monkeypatch.setattr(_hf, "plain_greedy", lambda model: False)
    generated = backend.generate(conversations)
    assert [(g.output, g.output_tokens, g.finish_reason) for g in looped] == \
        [(g.output, g.output_tokens, g.finish_reason) for g in generated]
    assert {g.finish_reason for g in looped} == {"stop", "length"}
    assert all(0 < g.ttft_s <= g.latency_s for g in looped)


def test_the_cache_is_written_in_place_into_one_reservation(tiny):
    import torch
    from transformers import DynamicCache

    from prefline.evals.backends._decode import _reserve

    model, _ = tiny
    cache = DynamicCache(config=model.config)
    _reserve(cache, 5)
    layer = cache.layers[0]
    first = torch.arange(2 * 2 * 3 * 8, dtype=torch.float32).reshape(2, 2, 3, 8)
    keys, _ = layer.update(first, first + 1)
    step = torch.full((2, 2, 1, 8), -1.0)
    keys, values = layer.update(step, step)
    assert keys.data_ptr() == layer.key_buffer.data_ptr() and layer.key_buffer.shape[-2] == 5
    assert torch.equal(keys, torch.cat([first, step], dim=-2)) and cache.get_seq_length() == 4
    layer.batch_select_indices(torch.tensor([1]))
    assert torch.equal(layer.keys, torch.cat([first, step], dim=-2)[1:]) and layer.values.shape == (1, 2, 4, 8)
