"""Close calls: how close each pair of a dataset version is for a reference model.

A pair the reference model already separates by a wide margin teaches little; one it finds
close is where preference data does its work. The data stage's quality report shows the result
(``data_report(..., close_calls=scorer(model, sample))``); scoring needs a model, so it lives here.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from prefline.data import dedup, store

CLOSE_CALL_SCALE = 0.5   # nats per token: the reference margin at which the close-call score is 1/e
CLOSE = 0.5              # a score at least this is a close call (a margin under ~0.35 nats/token)
SEPARATED = 0.1          # a score under this (a margin over ~1.15 nats/token) is already decided by the reference


def scorer(model: str | None, sample: int | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The close-call scoring the quality report calls on a dataset version, with this model and sample."""
    return partial(close_calls, model=model, sample=sample)


def close_calls(pairs, model: str | None, sample: int | None = None, seed: int = 0, batch_size: int = 8) -> dict[str, Any]:
    """Score how close each pair is for the reference model (the base model, no adapter).

    The margin is the reference model's mean log-probability per response token of the chosen
    response minus that of the rejected one (``prefline.evals.preference.sequence_logprobs``);
    per token, so that length alone does not decide it. The close-call score is
    ``exp(-|margin| / CLOSE_CALL_SCALE)``: 1 when the model finds both equally plausible, near 0
    when one is far more likely. With ``sample``, that many pairs (chosen by ``seed``) are scored.
    """
    from prefline.evals.preference import sequence_logprobs, tokenize_response
    from prefline.models import load_model, load_tokenizer, resolve_model

    n = store.row_count(pairs)
    rows = np.arange(n)
    if sample is not None and sample < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    wanted, picked, at = set(rows.tolist()), [], 0
    for batch in store.pair_batches(pairs, ["id", "prompt", "chosen", "rejected"]):
        local = [i - at for i in range(at, at + batch.num_rows) if i in wanted]
        if local:
            picked += batch.take(pa.array(local, pa.int64())).to_pylist()
        at += batch.num_rows
    ref = resolve_model(model)
    tokenizer, lm = load_tokenizer(ref, padding_side="right"), load_model(ref)
    chosen = [tokenize_response(tokenizer, _messages(p["prompt"], "user"), _messages(p["chosen"], "assistant")) for p in picked]
    rejected = [tokenize_response(tokenizer, _messages(p["prompt"], "user"), _messages(p["rejected"], "assistant")) for p in picked]
    logps = sequence_logprobs(lm, tokenizer, chosen + rejected, batch_size=batch_size)
    lengths = np.array([max(len(t.response), 1) for t in chosen + rejected], dtype=np.float64)
    per_token = logps / lengths
    margin = per_token[:len(picked)] - per_token[len(picked):]
    score = np.exp(-np.abs(margin) / CLOSE_CALL_SCALE)
    order = np.argsort(-score, kind="stable")
    counts, edges = np.histogram(score, bins=np.linspace(0, 1, 11))
    listed = lambda idx: [{"id": picked[i]["id"], "margin": round(float(margin[i]), 4), "score": round(float(score[i]), 4)} for i in idx]  # noqa: E731
    return {
        "model": ref.spec, "model_hash": ref.hash, "pairs_scored": len(picked), "sampled": len(picked) < n,
        "scale": CLOSE_CALL_SCALE, "close_threshold": CLOSE, "separated_threshold": SEPARATED,
        "mean_margin": round(float(margin.mean()), 4) if len(picked) else None,
        "close": int((score >= CLOSE).sum()),
        "separated": int(((score < SEPARATED) & (margin > 0)).sum()),
        "reversed": int(((score < SEPARATED) & (margin < 0)).sum()),
        "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": counts.tolist()},
        "closest": listed(order[:dedup.MAX_LISTED]), "most_separated": listed(order[::-1][:dedup.MAX_LISTED]),
        "pairs": listed(range(len(picked))),  # every scored pair, in dataset order
        "_separated_rows": rows[(score < SEPARATED) & (margin > 0)] if len(picked) else np.zeros(0, np.int64),
    }


def _messages(value: Any, role: str) -> list[dict[str, str]]:
    return [{"role": role, "content": value}] if isinstance(value, str) else list(value)
