"""Per-pair weights for the DPO family: each pair's loss counts ``weight`` times, weight in (0, 1].

The loss becomes ``mean_i(w_i * l_i)`` over the batch's pairs (not ``sum(w l) / sum(w)``): a batch of
low-confidence pairs moves the model less than a batch of certain ones, which is the point of a
confidence. All-1 weights give TRL's loss exactly.

Why this seam, pinned to TRL 1.16. TRL has no per-pair weights: ``DPOTrainer._compute_loss`` (about
250 lines) builds each loss type's per-pair vector and reduces it inline with ``.mean()``. The one
place where it multiplies that vector by per-pair factors before the mean is its WPO hook::

    if self.use_weighting:
        aligned = (per_token_logps - outputs.log_sum_sq_probs) * shift_completion_mask   # under no_grad
        weights = exp(aligned.sum(dim=1) / completion_lengths)
        chosen_weights, rejected_weights = weights.chunk(2)
        per_sequence_loss *= chosen_weights * rejected_weights
    loss += per_sequence_loss.mean() * loss_weight

``_compute_loss`` takes the policy as an argument, so :class:`WeightedDPOTrainer` passes a thin
wrapper around it whose outputs carry ``log_sum_sq_probs = log_probs - log(w)`` on the chosen rows and
``= log_probs`` on the rejected ones. The hook then computes ``exp(log w) = w`` for the chosen row and
``exp(0) = 1`` for the rejected one, and multiplies each pair's loss by its weight before the mean,
for every loss type (sigmoid, hinge, ipo, robust, and ld-dpo's length-desensitized log-probs). The
factor is built without gradient, exactly as WPO's. With ``w = 1`` every step is exact (``x - x = 0``);
otherwise ``exp(mean(log w))`` equals ``w`` to float64 rounding.

Batches whose weights are all 1 skip the hook: TRL's loss runs untouched. The hook multiplies in
place; for the hinge loss that changes relu's saved output, so its training steps with weights below 1
run under ``torch.autograd.graph.allow_mutation_on_saved_tensors`` (see ``training_step``).

The weight column travels with the rows: TRL's tokenization keeps extra columns, the column is
added to the trainer's signature columns so the ``Trainer`` does not drop it, and the collator
puts it in the batch as ``pair_weight``, which ``compute_loss`` takes out before TRL sees the batch.

What a TRL upgrade would break (``tests/test_train_weights.py`` checks each against the installed
source): the WPO lines above (their names, that they run inside the loss loop before ``.mean()``);
``_compute_loss(model, inputs, return_outputs)`` calling ``model(...)`` for the policy only (the
reference goes through ``self.model`` or ``self.ref_model``); the ``use_weighting`` attribute; and
``_set_signature_columns_if_needed`` / ``_signature_columns``. If TRL ever takes per-pair weights
itself, this module should go.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from trl import DPOTrainer

from prefline.train.methods import WEIGHT_COLUMN

BATCH_KEY = "pair_weight"


class _WeightedPolicy:
    """The policy, called as TRL calls it, with outputs that make the WPO hook apply ``weights``."""

    def __init__(self, model: Any, weights: torch.Tensor):
        self.model, self.weights = model, weights

    def __call__(self, **kwargs: Any):
        outputs = self.model(**kwargs)
        if not kwargs.get("fused_lm_head"):  # TRL's extra logits pass for compute_metrics: not the loss
            return outputs
        with torch.no_grad():
            # float64, so TRL's ``log_probs - log_sum_sq_probs`` (promoted to float64) returns log w
            # to 1e-15 whatever the autocast dtype of log_probs (bf16 would round it to 1e-2).
            log_probs = outputs.log_probs.detach().double()
            log_w = torch.log(self.weights.to(device=log_probs.device, dtype=torch.float64))
            shift = torch.cat([log_w, torch.zeros_like(log_w)])  # batch rows are [chosen..., rejected...]
            outputs.log_sum_sq_probs = log_probs - shift[:, None]
        return outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class _WeightCollator:
    """TRL's collator plus each row's weight as ``pair_weight`` (float32, one per pair)."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        if WEIGHT_COLUMN in examples[0]:
            batch[BATCH_KEY] = torch.tensor([float(e[WEIGHT_COLUMN]) for e in examples], dtype=torch.float32)
        return batch


def pair_lengths(dataset) -> list[int]:  # noqa: ANN001
    """Tokens of each tokenized pair's longer row: prompt plus the longer of its two responses."""
    table = dataset.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"]).with_format("arrow")
    import pyarrow.compute as pc

    lengths = []
    for batch in table.iter(batch_size=10_000):
        prompt, chosen, rejected = (pc.list_value_length(batch[c]) for c in ("prompt_ids", "chosen_ids", "rejected_ids"))
        lengths.extend(pc.add(prompt, pc.max_element_wise(chosen, rejected)).to_pylist())
    return lengths


class WeightedDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer with each pair's loss scaled by its dataset weight (see the module docstring)."""

    @functools.wraps(DPOTrainer.__init__)  # its signature is DPOTrainer's (the method table's API check reads it)
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.args.use_weighting:
            raise ValueError("per-pair weights use TRL's WPO hook; they cannot be combined with use_weighting=True")
        # Wrapped after __init__: precomputing reference log-probs (in __init__) runs the model on the
        # collator's batches, and the model must not receive the weights.
        self.data_collator = _WeightCollator(self.data_collator)

    def _get_train_sampler(self, train_dataset=None):  # noqa: ANN001
        """The batch order, drawn from a generator seeded with the run's seed, not from torch's global state
        (which precomputing advances, or not when TRL finds its cached result, so the same seed would give
        other batches). With ``train_sampling_strategy="group_by_length"``: transformers' length-grouped sampler
        over each pair's longest row (prompt plus the longer response), so batches pad less."""
        from torch.utils.data import RandomSampler
        from transformers.trainer_pt_utils import LengthGroupedSampler

        dataset = self.train_dataset if train_dataset is None else train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        generator = torch.Generator().manual_seed(seed)
        strategy = self.args.train_sampling_strategy
        if strategy == "group_by_length" and dataset is not None and "prompt_ids" in dataset.column_names:
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=pair_lengths(dataset), generator=generator)
        if strategy == "random" and dataset is not None and hasattr(dataset, "__len__"):
            return RandomSampler(dataset, generator=generator)
        return super()._get_train_sampler(train_dataset)

    def _precompute_ref_logps(self, dataset, name: str, batch_size: int):  # noqa: ANN001
        """TRL's pass over the dataset in order of length (batches of similar lengths pad less), its
        results put back in the dataset's order."""
        if "prompt_ids" not in dataset.column_names or len(dataset) < 2:
            return super()._precompute_ref_logps(dataset, name, batch_size)
        import numpy as np

        order = np.argsort(pair_lengths(dataset), kind="stable")
        done = super()._precompute_ref_logps(dataset.select(order), name, batch_size)
        return done.select(np.argsort(order)).flatten_indices()

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if WEIGHT_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, WEIGHT_COLUMN]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop(BATCH_KEY, None)
        if weights is None or bool((weights == 1).all()):  # TRL's own path, untouched
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return self.weighted_loss(model, inputs, weights, return_outputs, num_items_in_batch)

    def weighted_loss(self, model, inputs, weights, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        """TRL's loss with each pair's term multiplied by its weight, through the WPO hook."""
        self.use_weighting = True  # read in the loss loop only; the fused LM head was set up without it
        try:
            return super().compute_loss(_WeightedPolicy(model, weights), inputs, return_outputs, num_items_in_batch)
        finally:
            self.use_weighting = False

    def training_step(self, model, inputs, num_items_in_batch=None):
        weights = inputs.get(BATCH_KEY)
        if "hinge" in self.loss_types and weights is not None and not bool((weights == 1).all()):
            # TRL's hook multiplies in place, and the hinge loss is relu's output, which relu keeps for its
            # backward: PyTorch then refuses the backward. Under this context the saved output is copied
            # before it is changed (one value per pair); forward and backward must both run inside it.
            with torch.autograd.graph.allow_mutation_on_saved_tensors():
                return super().training_step(model, inputs, num_items_in_batch)
        return super().training_step(model, inputs, num_items_in_batch)
