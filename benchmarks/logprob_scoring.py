"""Log-prob scoring of preference pairs: prefline's scorer vs a plain batched forward pass.

Both compute, for each of the demo data's 61 pairs, the summed log-probability of the chosen
and of the rejected response given the prompt, with SmolLM2-135M-Instruct. The plain pass
runs the full model (logits at every position) on batches in input order; prefline sorts by
length and sends only response positions through the LM head. Prints pairs/s and the ratio
(target >= 0.9) and checks both agree.

    .venv/bin/python benchmarks/logprob_scoring.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("PREFLINE_HOME", str(Path.home() / ".prefline"))

import numpy as np
import torch

from prefline.data.schema import pair_from_row
from prefline.demo import demo_pairs_path
from prefline.evals.preference import sequence_logprobs, tokenize_response
from prefline.models import load_model, load_tokenizer, resolve_model

BATCH = 8
REPEATS = 3


def plain(model, tokenizer, seqs) -> np.ndarray:
    out = np.zeros(len(seqs))
    pad = tokenizer.pad_token_id
    for start in range(0, len(seqs), BATCH):
        chunk = seqs[start:start + BATCH]
        ids = [s.prompt + s.response for s in chunk]
        width = max(map(len, ids))
        batch = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        with torch.inference_mode():
            logps = torch.log_softmax(model(input_ids=batch, attention_mask=mask).logits.float(), dim=-1)
        for r, s in enumerate(chunk):
            n, k = len(s.prompt) + len(s.response), len(s.response)
            positions = torch.arange(n - k - 1, n - 1)
            out[start + r] = float(logps[r, positions, batch[r, positions + 1]].sum())
    return out


def main() -> None:
    ref = resolve_model()
    model, tokenizer = load_model(ref), load_tokenizer(ref, padding_side="right")
    pairs = []
    for line in demo_pairs_path().read_text().splitlines():
        try:
            pairs.append(pair_from_row(json.loads(line)))
        except Exception:
            continue  # the demo file ends with deliberately bad rows
    seqs = [tokenize_response(tokenizer, p.prompt, r) for p in pairs for r in (p.chosen, p.rejected)]

    def timed(fn):
        best, result = float("inf"), None
        for _ in range(REPEATS):
            began = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - began)
        return best, result

    plain_s, plain_lp = timed(lambda: plain(model, tokenizer, seqs))
    fast_s, fast_lp = timed(lambda: sequence_logprobs(model, tokenizer, seqs, batch_size=BATCH))
    assert np.allclose(plain_lp, fast_lp, atol=1e-2), np.abs(plain_lp - fast_lp).max()
    print(f"pairs: {len(pairs)} ({len(seqs)} sequences), batch {BATCH}, best of {REPEATS}, threads {torch.get_num_threads()}")
    print(f"{'':30}{'seconds':>10}{'pairs/s':>10}")
    print(f"{'plain batched forward':30}{plain_s:10.2f}{len(pairs) / plain_s:10.1f}")
    print(f"{'prefline sequence_logprobs':30}{fast_s:10.2f}{len(pairs) / fast_s:10.1f}")
    print(f"ratio prefline / plain: {plain_s / fast_s:.2f} (target >= 0.9); max |difference| {np.abs(plain_lp - fast_lp).max():.2e}")


if __name__ == "__main__":
    main()
