"""Latency and cost, straight from the generation record.

``latency_s`` is what the backend measured: the wall time of the *batch* the item was
generated in for in-process backends (hf, vllm), of the request for the openai backend (see
docs/backends.md). Compare these numbers only between runs on the same backend, batch size
and hardware.
"""

from __future__ import annotations

from prefline.evals.scorers import Score, scorer


@scorer("latency", section="style", layer="behaviour", category="latency", axis="capability",
        metrics={"latency_s": "lower", "ttft_s": "lower", "output_tokens": "neutral", "tokens_per_s": "higher"})
def latency(item, generation) -> dict[str, Score]:
    """Latency and cost per item.

    ``latency_s``: generation wall time in seconds (per batch for hf/vllm, per request for openai).
    ``ttft_s``: time to first token, ``None`` where the backend does not measure it.
    ``output_tokens``: tokens generated, the cost driver (neutral; ``None`` when the server reports no usage).
    ``tokens_per_s``: output tokens / latency_s (higher is better; for batched backends this is
    the item's share of the batch time, so it understates the batch throughput).
    """
    evidence = {"finish_reason": generation.finish_reason}
    tokens = generation.output_tokens
    rate = tokens / generation.latency_s if tokens is not None and generation.latency_s and generation.latency_s > 0 else None
    return {
        "latency_s": Score(float(generation.latency_s), evidence),
        "ttft_s": Score(None if generation.ttft_s is None else float(generation.ttft_s), evidence),
        "output_tokens": Score(None if tokens is None else float(tokens), evidence),
        "tokens_per_s": Score(None if rate is None else round(rate, 3), evidence),
    }
