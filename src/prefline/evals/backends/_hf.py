"""``hf``: transformers in-process.

Chat template, left padding, batches of similar length (padding wastes compute on CPU),
greedy decoding through prefline's loop whose finished rows leave the batch (``_decode``; the
same tokens as greedy ``generate``) or seeded sampling through ``generate``, an optional PEFT
adapter merged into the base model's weights.
Several adapters are evaluated on one loaded base: :meth:`HFBackend.use_adapter` switches
between them (or back to the bare base) without reloading the model. Time to first token
is the batch's: from the start of decoding until the first new token's logits exist (the
prefill), taken by a no-op logits processor under ``generate``, so it costs nothing and changes
no output.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefline.config import DecodingConfig
from prefline.evals.backends._base import Generation, backend, local_model_ref
from prefline.evals.backends._decode import greedy_decode, plain_greedy, stop_token_ids
from prefline.models import ModelRef, load_model, load_tokenizer
from prefline.provenance import is_full_model, load_full_model


class _FirstTokenClock:
    """A logits processor that only notes when it is first called: the first token's logits are ready."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, input_ids, scores):  # noqa: ANN001
        if self.at is None:
            self.at = time.perf_counter()
        return scores


@backend("hf")
class HFBackend:
    """In-process transformers generation, optionally through a LoRA adapter."""

    name = "hf"

    @classmethod
    def model_ref(cls, model_spec, adapter_row, **_options) -> ModelRef:
        return local_model_ref(model_spec, adapter_row)

    def __init__(self, model_ref: ModelRef, decoding: DecodingConfig, adapter_path: Path | None = None):
        import torch

        self.decoding = decoding
        self.tokenizer = load_tokenizer(model_ref, padding_side="left")
        self.full = adapter_path is not None and is_full_model(adapter_path)  # finetune: full: its weights replace the base's
        self.model = load_full_model(adapter_path) if self.full else load_model(model_ref)
        self._base_weights: dict[str, object] = {}  # module name -> its weight before any merge
        self._active: Path | None = None
        self._torch = torch
        if not self.full:
            self.use_adapter(adapter_path)

    def use_adapter(self, adapter_path: Path | None) -> bool:
        """Generate through this LoRA adapter (None: the bare base) from now on; False if this model cannot.

        The adapter is merged into the loaded weights, so generating costs what the base costs (an
        unmerged LoRA adds two small matmuls to every linear layer, which on CPU made each batch about
        1.5x slower). The first merge keeps a copy of every weight it changes; switching to another
        adapter, or back to the bare base, restores those copies exactly before merging again, so the
        base is loaded once for any number of adapters and each adapter's weights are the same as when
        it is evaluated alone. A fully fine-tuned model has no base to switch on.
        """
        if self.full or (adapter_path is not None and is_full_model(adapter_path)):
            return False
        if adapter_path == self._active:
            return True
        self._restore_base()
        if adapter_path is not None:
            self._merge(adapter_path)
        self._active = adapter_path
        return True

    def _restore_base(self) -> None:
        with self._torch.no_grad():
            for name, weight in self._base_weights.items():
                self.model.get_submodule(name).weight.copy_(weight)

    def _merge(self, adapter_path: Path) -> None:
        """Merge the LoRA adapter at ``adapter_path`` into the model's weights (PEFT's merge), keeping the originals."""
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer

        peft_model = PeftModel.from_pretrained(self.model, str(adapter_path))
        prefix = "base_model.model."
        for name, module in peft_model.named_modules():
            if isinstance(module, LoraLayer):
                name = name.removeprefix(prefix)
                if name not in self._base_weights:
                    self._base_weights[name] = module.get_base_layer().weight.detach().clone()
        self.model = peft_model.merge_and_unload()
        self.model.eval()

    def prompt_text(self, conversation: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def _generate(self, enc, clock: _FirstTokenClock, seed: int) -> list[list[int]]:
        """New token ids per row from ``model.generate`` (sampling, or greedy where :func:`plain_greedy` says no)."""
        from transformers import LogitsProcessorList

        torch, tok, dec = self._torch, self.tokenizer, self.decoding
        # Seeded per batch, so a run's outputs do not depend on what ran before it.
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": dec.temperature, "top_p": dec.top_p} if dec.temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=dec.max_new_tokens, pad_token_id=tok.pad_token_id,
                                      logits_processor=LogitsProcessorList([clock]), **sampling)
        return out[:, enc["input_ids"].shape[1]:].tolist()

    def generate(self, conversations, on_batch=None):
        tok, dec = self.tokenizer, self.decoding
        texts = [self.prompt_text(c) for c in conversations]
        lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        results: list[Generation | None] = [None] * len(texts)
        stop_ids = {tok.eos_token_id, tok.pad_token_id}
        greedy = dec.temperature == 0 and plain_greedy(self.model)
        for start in range(0, len(order), dec.batch_size):
            batch = order[start:start + dec.batch_size]
            enc = tok([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            clock = _FirstTokenClock()
            began = time.perf_counter()
            if greedy:
                new = greedy_decode(self.model, enc["input_ids"], enc["attention_mask"], dec.max_new_tokens,
                                    stop_token_ids(self.model), on_first_token=lambda: clock(None, None))
            else:
                new = self._generate(enc, clock, seed=dec.seed + start)
            elapsed = time.perf_counter() - began
            ttft = None if clock.at is None else round(clock.at - began, 4)
            for row, index in enumerate(batch):
                ids = new[row]
                end = next((k for k, t in enumerate(ids) if t in stop_ids), None)
                kept = ids if end is None else ids[:end]
                results[index] = Generation(
                    output=tok.decode(kept, skip_special_tokens=True).strip(),
                    input_tokens=lengths[index],
                    output_tokens=len(kept),
                    latency_s=round(elapsed, 4),
                    finish_reason="length" if end is None else "stop",
                    ttft_s=ttft,
                )
            if on_batch is not None:
                on_batch(batch, [results[i] for i in batch])
        return results  # type: ignore[return-value]
