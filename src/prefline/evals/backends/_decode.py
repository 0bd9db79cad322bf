"""Greedy decoding over a KV cache from which finished rows leave the batch.

``model.generate`` keeps every row of a batch in every forward pass until the last row stops,
feeding padding to the rows that already ended. On CPU every row costs compute, so a batch whose
answers end at different lengths pays for its longest answer on every row. This loop does what
greedy ``generate`` does (same forward pass, same position ids and attention mask, argmax of the
float32 logits, stop on the model's end-of-sequence ids or at ``max_new_tokens``) but removes a
row from the batch, and from the cache, as soon as it has produced a stop token. The cache is
reserved once per batch for the longest possible sequence and written in place, where
transformers' ``DynamicCache`` copies every layer's whole cache into a new tensor at every step
(``torch.cat``): the attention still reads exactly the filled part, so the numbers are the same.

It is used for greedy decoding only, and only where the model's generation config adds nothing
that changes greedy output (a repetition penalty, banned words, a minimum length...):
:func:`plain_greedy` says when; anything else goes through ``generate``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

# Generation-config fields that add a logits processor or a stopping rule to greedy `generate`;
# a model that sets any of them is decoded by `generate` itself.
_CHANGES_GREEDY = {
    "repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,), "min_length": (None, 0),
    "min_new_tokens": (None, 0), "sequence_bias": (None,), "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,), "suppress_tokens": (None,), "begin_suppress_tokens": (None,),
    "exponential_decay_length_penalty": (None,), "renormalize_logits": (None, False), "max_time": (None,),
    "stop_strings": (None,), "guidance_scale": (None, 1.0), "watermarking_config": (None,),
}


def stop_token_ids(model) -> set[int]:  # noqa: ANN001
    """The ids on which greedy ``generate`` ends a row: the generation config's end-of-sequence ids."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(t) for t in eos}


def plain_greedy(model) -> bool:  # noqa: ANN001
    """True when greedy ``generate`` on this model is an argmax per step and nothing else (this loop's case)."""
    config = model.generation_config
    if getattr(model.config, "is_encoder_decoder", False):
        return False
    return all(getattr(config, field, None) in neutral for field, neutral in _CHANGES_GREEDY.items())


@functools.cache
def _reserved_layer():  # noqa: ANN202
    """A ``DynamicLayer`` whose keys and values are views into buffers reserved once for ``capacity`` positions."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        capacity = 0

        def update(self, key_states, value_states, *args, **kwargs):  # noqa: ANN001, ANN202
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                shape = (*key_states.shape[:-2], self.capacity, key_states.shape[-1])
                self.key_buffer = torch.empty(shape, dtype=key_states.dtype, device=key_states.device)
                self.value_buffer = torch.empty(shape, dtype=value_states.dtype, device=value_states.device)
                self.filled = 0
            end = self.filled + key_states.shape[-2]
            self.key_buffer[..., self.filled:end, :] = key_states
            self.value_buffer[..., self.filled:end, :] = value_states
            self.filled = end
            self.keys, self.values = self.key_buffer[..., :end, :], self.value_buffer[..., :end, :]
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:  # noqa: ANN001
            if self.is_initialized and self.filled > 0:
                self.key_buffer, self.value_buffer = self.key_buffer[indices, ...], self.value_buffer[indices, ...]
                self.keys, self.values = self.key_buffer[..., :self.filled, :], self.value_buffer[..., :self.filled, :]

    return DynamicLayer, ReservedLayer


def _reserve(cache, capacity: int) -> None:  # noqa: ANN001
    """Make every plain full-attention layer of ``cache`` write in place (sliding or linear layers stay as they are)."""
    plain, reserved = _reserved_layer()
    for layer in cache.layers:
        if type(layer) is plain:
            layer.__class__, layer.capacity = reserved, capacity  # a subclass that adds no state of its own at creation


def greedy_decode(model, input_ids, attention_mask, max_new_tokens: int, stop_ids: set[int],  # noqa: ANN001
                  on_first_token: Callable[[], None] | None = None) -> list[list[int]]:
    """New token ids per row (a stop token included, where one came), decoding greedily.

    ``input_ids`` and ``attention_mask`` are a left-padded batch, as a tokenizer with
    ``padding_side="left"`` returns it. ``on_first_token`` is called once, when the first new
    token's logits exist (the end of the prefill).
    """
    import torch
    from transformers import DynamicCache

    rows = input_ids.shape[0]
    produced: list[list[int]] = [[] for _ in range(rows)]
    alive = list(range(rows))  # the original row of each row still in the batch
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long)
    # Position ids as generate derives them from the mask: padding takes position 0.
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    cache = DynamicCache(config=model.config)
    _reserve(cache, input_ids.shape[1] + max_new_tokens)
    ids, mask = input_ids, attention_mask
    with torch.inference_mode():
        for step in range(max_new_tokens):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                           use_cache=True, logits_to_keep=1).logits
            tokens = logits[:, -1].float().argmax(-1)
            if step == 0 and on_first_token is not None:
                on_first_token()
            for row, token in zip(alive, tokens.tolist()):
                produced[row].append(token)
            if step == max_new_tokens - 1:
                break
            done = torch.isin(tokens, stops)
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                cache.batch_select_indices(keep)
                alive = [alive[k] for k in keep.tolist()]
                tokens, mask, positions = tokens[keep], mask[keep], positions[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            positions = positions[:, -1:] + 1
            ids = tokens[:, None]
    return produced
