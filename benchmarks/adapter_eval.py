"""Evaluating through a LoRA adapter vs the bare base: generation speed of the hf backend.

Three sides generate greedily for the same prompts (the `smoke` suite), with the same batch size and
max_new_tokens, on SmolLM2-135M-Instruct: the base alone; base + one LoRA adapter as prefline
evaluates it (merged into the loaded weights); and the same adapter unmerged (a PEFT model, each
linear layer running its LoRA branch beside the base weight: how prefline evaluated adapters
before). The adapter is r 8, alpha 16 on every linear layer (the training default), with small
random weights, so its outputs stay close to the base's and every side generates about as many
tokens. Each side's time includes loading the model (and the adapter) and its first-token time
is the mean over batches.

Rounds alternate the order of the sides (A B C, then C B A); each side keeps its best round, and
the spread over rounds is printed. Ratios are tokens/s against the base's, in the same run.

    .venv/bin/python benchmarks/adapter_eval.py            # 2 rounds
    BENCH_ROUNDS=4 .venv/bin/python benchmarks/adapter_eval.py
    BENCH_PROMPTS=16 BENCH_TOKENS=32 .venv/bin/python benchmarks/adapter_eval.py   # a smaller run, for a loaded machine
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFLINE_HOME", str(Path.home() / ".prefline"))  # reuse the dequantized model

import torch

from prefline.config import DecodingConfig
from prefline.evals.backends._hf import HFBackend
from prefline.evals.suite import load_suite
from prefline.models import load_model, resolve_model

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
DECODING = DecodingConfig(max_new_tokens=int(os.environ.get("BENCH_TOKENS", "64")), batch_size=16)
PROMPTS = int(os.environ.get("BENCH_PROMPTS", "32"))  # the smoke suite's first N items


def make_adapter(ref, folder: Path) -> None:  # noqa: ANN001
    """A LoRA adapter (r 8, alpha 16, all linear layers) with small random weights, saved to ``folder``."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_model(ref), LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                       task_type="CAUSAL_LM", init_lora_weights=False))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.02)
    model.save_pretrained(str(folder))


class UnmergedBackend(HFBackend):
    """The adapter as a PEFT model, not merged (prefline's hf backend before merging)."""

    def use_adapter(self, adapter_path):  # noqa: ANN001
        from peft import PeftModel

        if adapter_path is not None:
            self.model = PeftModel.from_pretrained(self.model, str(adapter_path)).eval()
        return True


def side(backend_cls, ref, adapter, conversations) -> tuple[float, float, int, float]:  # noqa: ANN001
    """Wall seconds, CPU seconds, tokens generated, mean time to first token per batch."""
    wall, cpu = time.perf_counter(), time.process_time()
    engine = backend_cls(ref, DECODING, adapter)
    out = engine.generate(conversations)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ttfts = {(g.latency_s, g.ttft_s) for g in out}  # one per batch
    return wall, cpu, sum(g.output_tokens for g in out), sum(t for _, t in ttfts) / len(ttfts)


def main() -> None:
    ref = resolve_model()
    conversations = [item.chat() for item in load_suite("smoke").items][:PROMPTS]
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "adapter"
        make_adapter(ref, adapter)
        sides = [("base model", HFBackend, None), ("base + adapter, merged (prefline)", HFBackend, adapter),
                 ("base + adapter, unmerged PEFT", UnmergedBackend, adapter)]
        print(f"SmolLM2-135M-Instruct, {len(conversations)} smoke prompts, batch {DECODING.batch_size}, "
              f"{DECODING.max_new_tokens} new tokens, greedy, torch {torch.__version__}, {torch.get_num_threads()} threads")
        rounds: dict[str, list[tuple[float, float, int, float, float]]] = {label: [] for label, _, _ in sides}
        for r in range(ROUNDS):
            for label, cls, path in (sides if r % 2 == 0 else sides[::-1]):
                load = os.getloadavg()[0]
                wall, cpu, tokens, ttft = side(cls, ref, path, conversations)
                rounds[label].append((wall, cpu, tokens, ttft, load))
                print(f"  round {r + 1}: {label}: {tokens / wall:.1f} tokens/s ({tokens} tokens, {wall:.1f} s, "
                      f"{cpu:.1f} CPU s), first token {ttft:.2f} s per batch, load {load:.1f}", flush=True)
    best = {label: max(runs, key=lambda x: x[2] / x[0]) for label, runs in rounds.items()}
    base_rate, base_cpu = best["base model"][2] / best["base model"][0], best["base model"][2] / best["base model"][1]
    print("\n| side | tokens/s (best) | rounds tokens/s | ratio to base | tokens per CPU-s | ratio | first token s/batch | load |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|")
    for label, (wall, cpu, tokens, ttft, load) in best.items():
        spread = ", ".join(f"{t / w:.1f}" for w, _, t, _, _ in rounds[label])
        print(f"| {label} | {tokens / wall:.1f} | {spread} | {tokens / wall / base_rate:.2f} | {tokens / cpu:.1f} | "
              f"{tokens / cpu / base_cpu:.2f} | {ttft:.2f} | {load:.1f} |")


if __name__ == "__main__":
    main()
