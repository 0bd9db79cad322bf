"""Generation throughput: a plain batched `model.generate` loop vs `prefline eval`, and a cached re-run.

Both generate greedily, with the same max_new_tokens and batch size, on the same prompts
(the shipped `smoke` suite plus the demo pairs' prompts: 93 prompts) with SmolLM2-135M-Instruct.
Prints tokens/s for each, their ratio (target >= 0.9), and how much faster an unchanged
re-run is (target >= 50x; it is served from the generation cache).

    .venv/bin/python benchmarks/eval_throughput.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFLINE_HOME", str(Path.home() / ".prefline"))  # reuse the dequantized model

import torch

from prefline.config import DecodingConfig
from prefline.demo import demo_pairs_path
from prefline.evals.run import run_eval
from prefline.evals.suite import Suite, SuiteItem, load_suite
from prefline.ledger import Ledger
from prefline.models import load_model, load_tokenizer, resolve_model

MAX_NEW_TOKENS = 128
BATCH = 16


def prompts() -> list[list[dict]]:
    convs = [item.chat() for item in load_suite("smoke").items]
    for line in demo_pairs_path().read_text().splitlines()[:61]:
        row = json.loads(line)
        convs.append(row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}])
    return convs


def plain_loop(ref, conversations) -> tuple[float, int]:
    """What one writes without prefline: batches in input order, left padding, greedy."""
    began = time.perf_counter()
    tokenizer, model = load_tokenizer(ref, padding_side="left"), load_model(ref)
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    produced = 0
    for start in range(0, len(texts), BATCH):
        enc = tokenizer(texts[start:start + BATCH], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        produced += int((new != tokenizer.pad_token_id).sum())
    return time.perf_counter() - began, produced


def main() -> None:
    ref = resolve_model()
    conversations = prompts()
    suite = Suite(name="bench", version=1, description="", path=Path("."),
                  items=[SuiteItem(id=f"b{i:03d}", messages=c) for i, c in enumerate(conversations)])
    decoding = DecodingConfig(max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)

    plain_s, plain_tokens = plain_loop(ref, conversations)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite:///{tmp}/ledger.db")
        began = time.perf_counter()
        run = run_eval(suite, ledger, model_spec=ref.path, decoding=decoding, show_progress=False)
        first_s = time.perf_counter() - began
        tokens = sum(g["output_tokens"] for g in ledger.generations(run))
        began = time.perf_counter()
        run_eval(suite, ledger, model_spec=ref.path, decoding=decoding, show_progress=False)
        cached_s = time.perf_counter() - began

    plain_tps, prefline_tps = plain_tokens / plain_s, tokens / first_s
    print(f"prompts: {len(conversations)}, max_new_tokens {MAX_NEW_TOKENS}, batch {BATCH}, threads {torch.get_num_threads()}")
    print(f"{'':28}{'seconds':>10}{'tokens':>10}{'tokens/s':>10}")
    print(f"{'plain generate loop':28}{plain_s:10.1f}{plain_tokens:10d}{plain_tps:10.1f}")
    print(f"{'prefline eval (first run)':28}{first_s:10.1f}{tokens:10d}{prefline_tps:10.1f}")
    print(f"{'prefline eval (cached)':28}{cached_s:10.2f}")
    print(f"throughput ratio prefline / plain: {prefline_tps / plain_tps:.2f} (target >= 0.9)")
    print(f"cached re-run speed-up: {first_s / cached_s:.0f}x (target >= 50x)")


if __name__ == "__main__":
    main()
