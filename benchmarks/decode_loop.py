"""Greedy decoding: `model.generate` vs prefline's loop, with and without the in-place KV cache.

The same length-sorted batches of chat prompts (the first ``BENCH_PROMPTS`` of the throughput
benchmark's 93: the `smoke` suite, then the demo pairs' prompts), greedy, ``BENCH_TOKENS`` new
tokens, batch 16, SmolLM2-135M-Instruct loaded once. Three sides: `model.generate`; prefline's
loop with finished rows leaving the batch but transformers' `DynamicCache` (copied by `torch.cat`
at every step); prefline's loop as it runs (the cache reserved once per batch and written in
place). One untimed batch of 8 tokens through `generate` and the loop comes first, so no side
pays for the first use of the kernels and the allocator. Rounds alternate the order (``BENCH_REVERSE=1`` starts reversed). Prints wall and CPU
seconds per side, the 1-minute load at its start, and whether each side's tokens equal
`generate`'s, row for row.

    .venv/bin/python benchmarks/decode_loop.py
    BENCH_PROMPTS=16 BENCH_TOKENS=32 BENCH_ROUNDS=1 .venv/bin/python benchmarks/decode_loop.py   # a loaded machine
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PREFLINE_HOME", str(Path.home() / ".prefline"))  # reuse the dequantized model
sys.path.insert(0, str(Path(__file__).parent))

import torch
from eval_throughput import prompts

from prefline.evals.backends import _decode
from prefline.models import load_model, load_tokenizer, resolve_model

PROMPTS = int(os.environ.get("BENCH_PROMPTS", "93"))
TOKENS = int(os.environ.get("BENCH_TOKENS", "128"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
BATCH = 16


def main() -> None:
    ref = resolve_model()
    tokenizer, model = load_tokenizer(ref, padding_side="left"), load_model(ref)
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in prompts()[:PROMPTS]]
    texts.sort(key=lambda t: len(tokenizer(t, add_special_tokens=False).input_ids))
    batches = [tokenizer(texts[s:s + BATCH], return_tensors="pt", padding=True, add_special_tokens=False)
               for s in range(0, len(texts), BATCH)]
    stops = _decode.stop_token_ids(model)

    def generate() -> list[list[int]]:
        rows = []
        for enc in batches:
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            for ids in out[:, enc["input_ids"].shape[1]:].tolist():
                end = next((k for k, t in enumerate(ids) if t in stops), None)
                rows.append(ids if end is None else ids[:end + 1])
        return rows

    def loop() -> list[list[int]]:
        return [row for enc in batches for row in _decode.greedy_decode(model, enc["input_ids"], enc["attention_mask"], TOKENS, stops)]

    def loop_copying_cache() -> list[list[int]]:
        reserve, _decode._reserve = _decode._reserve, lambda cache, capacity: None
        try:
            return loop()
        finally:
            _decode._reserve = reserve

    with torch.inference_mode():  # warm-up, untimed
        model.generate(**batches[0], max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    _decode.greedy_decode(model, batches[0]["input_ids"], batches[0]["attention_mask"], 8, stops)
    sides = [("model.generate", generate), ("loop, DynamicCache (torch.cat)", loop_copying_cache), ("loop, cache in place (prefline)", loop)]
    print(f"SmolLM2-135M-Instruct, {len(texts)} prompts, {TOKENS} new tokens, batch {BATCH}, greedy, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {ROUNDS} round(s)")
    outputs: dict[str, list[list[int]]] = {}
    for r in range(ROUNDS):
        for label, side in (sides if (r + int(os.environ.get("BENCH_REVERSE", "0"))) % 2 == 0 else sides[::-1]):
            load, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
            outputs[label] = side()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            tokens = sum(map(len, outputs[label]))
            print(f"  round {r + 1}: {label}: {wall:.1f} s, {cpu:.1f} CPU s, {tokens} tokens, load {load:.1f}", flush=True)
    for label, rows in outputs.items():
        print(f"{label}: tokens identical to model.generate in {sum(a == b for a, b in zip(rows, outputs['model.generate']))} of {len(rows)} rows")


if __name__ == "__main__":
    main()
