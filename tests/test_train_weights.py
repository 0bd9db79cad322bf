"""Per-pair weights: the DPO family scales each pair's loss by its dataset weight.

The fixed-batch tests run TRL's own loss code (``DPOTrainer._compute_loss``) through
``WeightedDPOTrainer.compute_loss`` with the policy's per-token log-probs given by a stub, as
``tests/test_methods.py`` does for the unweighted losses; the expected numbers are worked out by
hand in the docstrings and recomputed with ``math``.
"""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import pair, write_jsonl
from prefline.config import TrainConfig
from prefline.data.ingest import ingest
from prefline.errors import PreflineError
from prefline.models import load_model, load_tokenizer, resolve_model
from prefline.train.methods import METHODS, get_method
from prefline.train.run import train, trl_config
from prefline.train.weights import BATCH_KEY, WeightedDPOTrainer

FAST = TrainConfig(max_steps=2, batch_size=2, learning_rate=1e-2, max_length=64, bf16=False, gradient_checkpointing=False)
DPO_FAMILY = ["dpo", "ipo", "hinge", "robust", "ld-dpo"]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _trainer(method: str, tiny_model_dir, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig

    spec = get_method(method)
    config = spec.resolve(FAST)
    ref = resolve_model(str(tiny_model_dir))
    rows = Dataset.from_list([{**{k: pair(i)[k] for k in ("prompt", "chosen", "rejected")}, "weight": 1.0} for i in range(2)])
    return spec.trainer_class()(
        model=load_model(ref), args=trl_config(spec, config, tmp_path / "ck"), train_dataset=rows,
        processing_class=load_tokenizer(ref, padding_side="right"),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )


def _loss(trainer, weights: list[float] | None, seam: bool = False) -> float:
    """The loss on two fixed pairs (batch rows: chosen A, chosen B, rejected A, rejected B).

    Sequences of 5 tokens, 2 prompt tokens. Per-token policy log-probs at the predicted positions:
    - pair A: chosen [-1.0, -2.0] (sum -3.0), rejected [-1.5, -2.5, -3.0] (sum -7.0); reference sums -3.5, -6.0.
    - pair B: chosen [-2.0, -2.0] (sum -4.0), rejected [-1.0, -3.0] (sum -4.0); reference sums -4.0, -4.0.
    """
    completion_mask = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0]])
    per_token = torch.tensor([[0.0, -1.0, -2.0, 0.0], [0.0, -2.0, -2.0, 0.0], [0.0, -1.5, -2.5, -3.0], [0.0, -1.0, -3.0, 0.0]])
    outputs = SimpleNamespace(log_probs=per_token, entropy=torch.zeros(4, 4), mean_logits=torch.zeros(4, 4),
                              is_top1=torch.zeros(4, 4, dtype=torch.bool))
    inputs = {
        "input_ids": torch.ones(4, 5, dtype=torch.long), "attention_mask": completion_mask.clone().fill_(1),
        "completion_mask": completion_mask,
        "ref_chosen_logps": torch.tensor([-3.5, -4.0]), "ref_rejected_logps": torch.tensor([-6.0, -4.0]),
    }
    trainer.precompute_ref_logps = True  # take the reference from the inputs
    if seam:  # through the weighting hook even when every weight is 1
        return trainer.weighted_loss(lambda **kwargs: outputs, inputs, torch.tensor(weights)).item()
    if weights is not None:
        inputs[BATCH_KEY] = torch.tensor(weights)
    return trainer.compute_loss(lambda **kwargs: outputs, inputs).item()


def test_weighted_losses_match_the_hand_computed_values(tiny_model_dir, tmp_path):
    """Weights: pair A 0.5, pair B 1.0; beta 0.1. The loss is mean_i(w_i * l_i) over the 2 pairs.

    Log-ratios: A: chosen -3.0 - (-3.5) = 0.5, rejected -7.0 - (-6.0) = -1.0, D_A = 1.5; B: 0 and 0, D_B = 0.
    - dpo:   l_A = -log sigmoid(0.15) = 0.620957, l_B = log 2 = 0.693147;
             weighted (0.310479 + 0.693147) / 2 = 0.501813; unweighted 0.657052
    - hinge: l_A = relu(1 - 0.15) = 0.85, l_B = 1.0; weighted (0.425 + 1.0) / 2 = 0.7125; unweighted 0.925
    - ipo:   A: per-token averages 0.5/2 - (-1.0/3) = 0.583333, l_A = (0.583333 - 5)^2 = 19.506944;
             B: 0, l_B = 25; weighted (0.5 * 19.506944 + 25) / 2 = 17.376736
    """
    L = lambda x: -math.log(sigmoid(0.1 * x))  # noqa: E731
    ipo_a = (0.5 / 2 + 1.0 / 3 - 5) ** 2
    expected = {
        "dpo": (0.5 * L(1.5) + L(0.0)) / 2,
        "hinge": (0.5 * (1 - 0.15) + 1.0) / 2,
        "ipo": (0.5 * ipo_a + 25.0) / 2,
    }
    assert expected == pytest.approx({"dpo": 0.501813, "hinge": 0.7125, "ipo": 17.376736}, abs=1e-6)
    for method, value in expected.items():
        trainer = _trainer(method, tiny_model_dir, tmp_path)
        assert _loss(trainer, [0.5, 1.0]) == pytest.approx(value, rel=1e-6), method
        assert not trainer.use_weighting  # the hook is switched on for the call only


@pytest.mark.parametrize("method", DPO_FAMILY)
def test_unit_weights_reproduce_the_unweighted_loss_exactly(method, tiny_model_dir, tmp_path):
    """All-1 batches skip the hook; through the hook, a weight of 1 is a factor of exp(0) = 1 exactly."""
    trainer = _trainer(method, tiny_model_dir, tmp_path)
    unweighted = _loss(trainer, None)
    assert _loss(trainer, [1.0, 1.0]) == unweighted
    assert _loss(trainer, [1.0, 1.0], seam=True) == unweighted


def test_the_trl_seam_is_still_there():
    """What the seam relies on in TRL 1.16's DPOTrainer (see prefline.train.weights); a TRL upgrade
    that moves any of it fails here instead of silently training unweighted."""
    from trl import DPOTrainer

    source = inspect.getsource(DPOTrainer._compute_loss)
    for line in ("if self.use_weighting:", "outputs.log_sum_sq_probs[:, -seq_len:]", "weights = torch.exp(mean_logps)",
                 "chosen_weights, rejected_weights = weights.chunk(2, dim=0)",
                 "per_sequence_loss *= chosen_weights * rejected_weights", "loss += per_sequence_loss.mean() * loss_weight",
                 "outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)"):
        assert line in source, line
    assert source.index("per_sequence_loss *= chosen_weights") < source.index("loss += per_sequence_loss.mean()")
    assert "_set_signature_columns_if_needed" in vars(DPOTrainer)
    assert {m for m, spec in METHODS.items() if spec.weighted} == set(DPO_FAMILY)
    assert all(spec.trainer_class() is WeightedDPOTrainer for m, spec in METHODS.items() if spec.weighted)


def test_weights_reach_the_batch_and_change_training(ledger, tiny_model_dir, tmp_path):
    """End to end: the weight column survives TRL's tokenization into the batch, and halving every
    weight halves the first step's loss (at step 1 the policy is the reference: l = log 2 per pair)."""
    weighted = ingest(write_jsonl(tmp_path / "w.jsonl", [pair(i, weight=0.5) for i in range(4)]), "half", ledger)
    ingest(write_jsonl(tmp_path / "u.jsonl", [pair(i) for i in range(4)]), "full", ledger)
    seen = []
    original = WeightedDPOTrainer.compute_loss

    def spy(self, model, inputs, *args, **kwargs):
        seen.append(inputs[BATCH_KEY].tolist())
        return original(self, model, inputs, *args, **kwargs)

    WeightedDPOTrainer.compute_loss = spy
    try:
        half = train("dpo", "half", "h", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    finally:
        WeightedDPOTrainer.compute_loss = original
    full = train("dpo", "full", "f", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    assert seen == [[0.5, 0.5], [0.5, 0.5]] and weighted.n_accepted == 4
    first = {a["name"]: ledger.train_steps(a["id"])[0]["metrics"]["loss"] for a in (half, full)}
    assert first["f"] == pytest.approx(math.log(2), abs=1e-4)
    assert first["h"] == pytest.approx(first["f"] / 2, rel=1e-5)


# First step: the policy is the reference, so every pair's loss is the same constant (see
# tests/test_methods.py); with weights 0.5 and 1.0 in one batch of 2 the weighted loss is 0.75 times it.
FIRST_STEP_LOSS = {"dpo": math.log(2), "robust": math.log(2), "ld-dpo": math.log(2), "ipo": 25.0, "hinge": 1.0}


@pytest.mark.parametrize("method", DPO_FAMILY)
def test_every_weighted_method_trains_with_weights(method, ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "w.jsonl", [pair(0, weight=0.5), pair(1)]), "mixed", ledger)
    config = FAST.model_copy(update={"max_steps": 1})
    adapter = train(method, "mixed", "m", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    assert adapter["status"] == "done"  # the backward ran (hinge: under the saved-tensor context)
    first = ledger.train_steps(adapter["id"])[0]["metrics"]["loss"]
    assert first == pytest.approx(0.75 * FIRST_STEP_LOSS[method], rel=1e-4)


@pytest.mark.parametrize("method", ["kto", "simpo", "orpo", "sft", "reward"])
def test_methods_without_weights_refuse_weighted_data_before_loading(method, ledger, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("prefline.train.run.load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    ingest(write_jsonl(tmp_path / "w.jsonl", [pair(i, weight=0.5 if i == 0 else 1.0) for i in range(4)]), "w", ledger)
    with pytest.raises(PreflineError, match=rf"1 of 4 pairs have a weight below 1, and method '{method}' cannot weight pairs .*dpo, ipo"):
        train(method, "w", "x", FAST, ledger, model_spec=str(tiny_model_dir))
    assert ledger.find_adapter("x") is None
    ingest(write_jsonl(tmp_path / "u.jsonl", [pair(i) for i in range(4)]), "u", ledger)  # unit weights are fine
    monkeypatch.undo()
    if method == "kto":
        assert train(method, "u", "y", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)["status"] == "done"
