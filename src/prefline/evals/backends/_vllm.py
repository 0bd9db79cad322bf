"""``vllm``: vLLM in-process on a GPU, with the adapter applied as a LoRA per request.

Written against vLLM's documented offline API (``LLM(model=..., enable_lora=True)``,
``SamplingParams``, ``LoRARequest``, ``LLM.chat``); it runs only where vLLM is installed,
that is on GPU machines, and is exercised there, not in the CPU test suite.

vLLM schedules its own batches: prefline hands it ``batch_size`` conversations per call
and persists each call's results, so raise ``--batch-size`` (hundreds) for throughput; a
killed run loses at most one call. Latency is the call's wall time; time to first token
is not measured (offline generation has no per-request first token worth reporting).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals.backends._base import Generation, backend, local_model_ref
from prefline.models import ModelRef
from prefline.provenance import is_full_model

VLLM_INSTALL = "pip install vllm"
# vLLM preallocates LoRA slots for a fixed maximum rank chosen from this list (vllm/config/lora.py).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise PreflineError(f"the vllm backend needs vLLM (GPU machines), which is not installed; install it with: {VLLM_INSTALL}")


def lora_rank_slot(adapter_path: Path) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds the adapter's rank ``r``."""
    rank = int(json.loads((Path(adapter_path) / "adapter_config.json").read_text()).get("r", 16))
    for slot in VLLM_LORA_RANKS:
        if slot >= rank:
            return slot
    raise PreflineError(f"adapter rank {rank} is above the largest LoRA rank vLLM serves ({VLLM_LORA_RANKS[-1]})")


@backend("vllm")
class VLLMBackend:
    """Offline vLLM generation on the local model folder, with the adapter as a ``LoRARequest``.

    Options (keyword-only): ``gpu_memory_utilization`` (default 0.9, share of GPU memory vLLM
    may take for weights and KV cache), ``max_model_len`` (default None: the model's own
    context length; lower it to fit a small GPU).
    """

    name = "vllm"

    @classmethod
    def model_ref(cls, model_spec: str | None, adapter_row: dict[str, Any] | None, **_options) -> ModelRef:
        _require_vllm()  # before the run is recorded, not after
        return local_model_ref(model_spec, adapter_row)

    def __init__(self, model_ref: ModelRef, decoding: DecodingConfig, adapter_path: Path | None = None, *,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None):
        _require_vllm()
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        engine: dict[str, Any] = {"gpu_memory_utilization": gpu_memory_utilization, "seed": decoding.seed}
        if max_model_len is not None:
            engine["max_model_len"] = max_model_len
        full = adapter_path is not None and is_full_model(Path(adapter_path))  # finetune: full: serve its weights
        if adapter_path is not None and not full:
            engine.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank_slot(adapter_path))
        self.decoding = decoding
        self.llm = LLM(model=str(adapter_path) if full else model_ref.path, tokenizer=model_ref.path, **engine)
        self.lora = LoRARequest("prefline-adapter", 1, str(adapter_path)) if adapter_path is not None and not full else None
        greedy = decoding.temperature == 0
        self.sampling = SamplingParams(
            max_tokens=decoding.max_new_tokens, temperature=decoding.temperature,
            top_p=1.0 if greedy else decoding.top_p, seed=decoding.seed,
        )

    def generate(self, conversations, on_batch=None):
        results: list[Generation | None] = [None] * len(conversations)
        size = self.decoding.batch_size
        for start in range(0, len(conversations), size):
            positions = list(range(start, min(start + size, len(conversations))))
            began = time.perf_counter()
            outputs = self.llm.chat([conversations[i] for i in positions], self.sampling,
                                    use_tqdm=False, lora_request=self.lora, add_generation_prompt=True)
            elapsed = round(time.perf_counter() - began, 4)
            for index, request in zip(positions, outputs):
                completion = request.outputs[0]
                results[index] = Generation(
                    output=completion.text.strip(),
                    input_tokens=len(request.prompt_token_ids or []),
                    output_tokens=len(completion.token_ids),
                    latency_s=elapsed,
                    finish_reason="length" if completion.finish_reason == "length" else "stop",
                )
            if on_batch is not None:
                on_batch(positions, [results[i] for i in positions])
        return results  # type: ignore[return-value]
