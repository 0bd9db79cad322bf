"""Drift probes: while an adapter trains, watch what it does to responses, and stop when it drifts.

Every ``probe_every`` optimizer steps (and once before the first step, the baseline), the model
being trained (PEFT adapter active) is put in eval mode and generates greedily on the first
``probe_items`` prompts of the probe suite; the responses are scored with the registered
``length`` and ``refusal`` scorers, the mean ``length_tokens`` and the refusal rate are recorded in
the ledger (``train_probes``: step -> metrics and responses), and train mode is restored.
A drift limit (``max_length_increase``: relative to the step-0 mean, floored at one token;
``max_refusal_increase``: absolute over the step-0 rate) crossed stops training at that step: the adapter saved is the model
at that step, and the run's summary says where and why it stopped (``stopped_early``).

Under several processes each one probes (the same weights and greedy decoding give the same
responses), so all of them take the same decision to stop; only the main process writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from prefline.config import TrainConfig
from prefline.evals.backends import Generation
from prefline.evals.scorers import get_scorers
from prefline.evals.suite import SuiteItem, load_suite, shipped_suites


def probe_suite_name(config: TrainConfig) -> str:
    return config.probe_suite or ("probe" if "probe" in shipped_suites() else "smoke")


def probe_items(config: TrainConfig) -> list[SuiteItem]:
    return load_suite(probe_suite_name(config)).items[: config.probe_items]


def summarize_probe(items: list[SuiteItem], generations: list[Generation]) -> dict[str, Any]:
    """Mean response length (tokens) and refusal rate of one probe, scored by the registered scorers."""
    values: dict[str, list[float]] = {"length_tokens": [], "refusal": []}
    for scorer in get_scorers(["length", "refusal"]):
        for scores in scorer.score_all(items, generations):
            for metric in values:
                if metric in scores and scores[metric].value is not None:
                    values[metric].append(scores[metric].value)
    return {
        "n": len(items),
        "length_tokens": sum(values["length_tokens"]) / max(len(values["length_tokens"]), 1),
        "refusal": sum(values["refusal"]) / max(len(values["refusal"]), 1),
    }


def drift(baseline: dict[str, Any], current: dict[str, Any], config: TrainConfig) -> str | None:
    """Which drift limit ``current`` crosses against ``baseline``, as a sentence; None within limits."""
    if config.max_length_increase is not None:
        # floored at one token, so a baseline of empty responses still bounds the growth
        change = current["length_tokens"] / max(baseline["length_tokens"], 1.0) - 1
        if change > config.max_length_increase:
            return (f"mean probe length {current['length_tokens']:.1f} tokens is {change:+.0%} against step 0 "
                    f"({baseline['length_tokens']:.1f}), over max_length_increase {config.max_length_increase:.0%}")
    if config.max_refusal_increase is not None:
        change = current["refusal"] - baseline["refusal"]
        if change > config.max_refusal_increase:
            return (f"probe refusal rate {current['refusal']:.2f} is {change:+.2f} against step 0 "
                    f"({baseline['refusal']:.2f}), over max_refusal_increase {config.max_refusal_increase:.2f}")
    return None


class DriftProbe(TrainerCallback):
    """Probes the model at step 0 and every ``probe_every`` steps; stops training past a drift limit.

    ``record(step, metrics, outputs)`` stores a probe (main process only); ``baseline`` is the step-0
    probe of a resumed run, read back from the ledger instead of taken again.
    """

    def __init__(self, config: TrainConfig, tokenizer: Any, record: Callable[[int, dict, list], None],
                 notify: Callable[[str], None], baseline: dict[str, Any] | None = None):
        self.config, self.tokenizer, self.record, self.notify = config, tokenizer, record, notify
        self.items = probe_items(config)
        self.baseline = baseline
        self.stopped: dict[str, Any] | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if self.baseline is None:
            self.baseline = self._probe(model, 0, state)

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if state.global_step % self.config.probe_every:
            return
        current = self._probe(model, state.global_step, state)
        reason = drift(self.baseline, current, self.config)
        if reason:
            self.stopped = {"step": state.global_step, "reason": reason}
            self.notify(f"drift limit crossed at step {state.global_step}: {reason}; stopping training")
            control.should_training_stop = True

    def _probe(self, model, step: int, state) -> dict[str, Any]:  # noqa: ANN001
        generations = generate(model, self.tokenizer, [item.chat() for item in self.items], self.config.probe_max_new_tokens)
        metrics = summarize_probe(self.items, generations)
        if state.is_world_process_zero:
            outputs = [{"item_id": item.id, "output": g.output, "output_tokens": g.output_tokens} for item, g in zip(self.items, generations)]
            self.record(step, metrics, outputs)
        return metrics


def generate(model, tokenizer, conversations: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
    """Greedy responses from ``model`` as it is now (eval mode, no gradient), one left-padded batch."""
    import torch

    was_training = model.training
    model.eval()
    try:
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        began = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tokenizer.pad_token_id)
        elapsed = round(time.perf_counter() - began, 4)
    finally:
        if was_training:
            model.train()
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    generations = []
    for row, ids in enumerate(out[:, enc["input_ids"].shape[1]:].tolist()):
        end = next((k for k, t in enumerate(ids) if t in stop_ids), None)
        kept = ids if end is None else ids[:end]
        generations.append(Generation(
            output=tokenizer.decode(kept, skip_special_tokens=True).strip(), input_tokens=int(enc["attention_mask"][row].sum()),
            output_tokens=len(kept), latency_s=elapsed, finish_reason="length" if end is None else "stop",
        ))
    return generations
