"""Generation backends: one interface, ``generate(conversations) -> list[Generation]``.

``hf`` runs transformers in-process: chat template, left padding, batches of similar
length (padding wastes compute on CPU), greedy or seeded sampling, an optional PEFT
adapter on the base model. Other backends (OpenAI-compatible HTTP, vLLM) register here
under their own names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prefline.config import DecodingConfig
from prefline.models import ModelRef, load_model, load_tokenizer


@dataclass
class Generation:
    output: str
    input_tokens: int
    output_tokens: int
    latency_s: float  # wall time of the batch the item was generated in
    finish_reason: str  # "stop" (end of sequence) or "length" (hit max_new_tokens)


OnBatch = Callable[[list[int], list[Generation]], None]


class Backend(Protocol):
    name: str

    def generate(self, conversations: list[list[dict[str, str]]], on_batch: OnBatch | None = None) -> list[Generation]:
        """Generate a reply to each conversation; after each batch, call ``on_batch(indices, generations)``
        with the positions (in ``conversations``) it finished, so callers can persist as they go."""
        ...


BACKENDS: dict[str, Callable[..., Backend]] = {}


def backend(name: str):
    def register(factory):
        if name in BACKENDS:
            raise ValueError(f"backend {name!r} is already registered")
        BACKENDS[name] = factory
        return factory

    return register


@backend("hf")
class HFBackend:
    """In-process transformers generation, optionally through a LoRA adapter."""

    name = "hf"

    def __init__(self, model_ref: ModelRef, decoding: DecodingConfig, adapter_path: Path | None = None):
        import torch

        self.decoding = decoding
        self.tokenizer = load_tokenizer(model_ref, padding_side="left")
        self.model = load_model(model_ref)
        if adapter_path is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter_path))
            self.model.eval()
        self._torch = torch

    def prompt_text(self, conversation: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def generate(self, conversations, on_batch=None):
        torch, tok, dec = self._torch, self.tokenizer, self.decoding
        texts = [self.prompt_text(c) for c in conversations]
        lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        results: list[Generation | None] = [None] * len(texts)
        stop_ids = {tok.eos_token_id, tok.pad_token_id}
        for start in range(0, len(order), dec.batch_size):
            batch = order[start:start + dec.batch_size]
            enc = tok([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            # Seeded per batch, so a run's outputs do not depend on what ran before it.
            torch.manual_seed(dec.seed + start)
            sampling = {"do_sample": True, "temperature": dec.temperature, "top_p": dec.top_p} if dec.temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            began = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(**enc, max_new_tokens=dec.max_new_tokens, pad_token_id=tok.pad_token_id, **sampling)
            elapsed = time.perf_counter() - began
            new = out[:, enc["input_ids"].shape[1]:]
            for row, index in enumerate(batch):
                ids = new[row].tolist()
                end = next((k for k, t in enumerate(ids) if t in stop_ids), None)
                kept = ids if end is None else ids[:end]
                results[index] = Generation(
                    output=tok.decode(kept, skip_special_tokens=True).strip(),
                    input_tokens=lengths[index],
                    output_tokens=len(kept),
                    latency_s=round(elapsed, 4),
                    finish_reason="length" if end is None else "stop",
                )
            if on_batch is not None:
                on_batch(batch, [results[i] for i in batch])
        return results  # type: ignore[return-value]
