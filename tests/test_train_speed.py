"""The DPO family's speed defaults: precomputed reference log-probs when the run covers the dataset,
batches grouped by length, and the reference pass in order of length."""

from __future__ import annotations

import pytest
import torch

from conftest import pair, write_jsonl
from prefline.config import TrainConfig
from prefline.data.ingest import ingest
from prefline.models import load_model, load_tokenizer, resolve_model
from prefline.train.methods import get_method
from prefline.train.run import precompute_ref_pays, train, trl_config
from prefline.train.weights import WeightedDPOTrainer, pair_lengths

FAST = TrainConfig(batch_size=2, learning_rate=1e-2, max_length=64, bf16=False, gradient_checkpointing=False)


def test_precompute_is_chosen_when_the_run_covers_every_pair(monkeypatch):
    dpo, kto = get_method("dpo"), get_method("kto")
    assert precompute_ref_pays(dpo, TrainConfig(), 256)  # one epoch
    assert precompute_ref_pays(dpo, TrainConfig(epochs=2.5), 10)
    assert not precompute_ref_pays(dpo, TrainConfig(epochs=0.5), 256)  # half the pairs: a full pass would cost more
    assert precompute_ref_pays(dpo, TrainConfig(max_steps=64, batch_size=4), 256)  # 256 pairs trained
    assert not precompute_ref_pays(dpo, TrainConfig(max_steps=63, batch_size=4), 256)
    assert precompute_ref_pays(dpo, TrainConfig(max_steps=32, batch_size=4, grad_accum=2), 256)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert precompute_ref_pays(dpo, TrainConfig(max_steps=32, batch_size=4), 256)  # two processes
    assert not precompute_ref_pays(kto, TrainConfig(), 256)  # not measured for kto's rows
    assert not precompute_ref_pays(dpo, TrainConfig(), 0)


def test_the_defaults_reach_the_trainer_and_are_recorded(ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(4)]), "p", ledger)
    seen = {}
    original = WeightedDPOTrainer._get_train_sampler

    def spy(self, *args, **kwargs):
        sampler = original(self, *args, **kwargs)
        seen["sampler"], seen["precompute"] = type(sampler).__name__, self.precompute_ref_logps
        seen["columns"] = self.train_dataset.column_names
        return sampler

    WeightedDPOTrainer._get_train_sampler = spy
    try:
        one_epoch = train("dpo", "p", "a", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    finally:
        WeightedDPOTrainer._get_train_sampler = original
    assert seen["sampler"] == "LengthGroupedSampler" and seen["precompute"] is True
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(seen["columns"])
    assert one_epoch["config"]["precompute_ref_log_probs"] is True and one_epoch["config"]["group_by_length"] is True
    short = train("dpo", "p", "b", FAST.model_copy(update={"max_steps": 1}), ledger, model_spec=str(tiny_model_dir), show_progress=False)
    assert short["config"]["precompute_ref_log_probs"] is False  # 2 of 4 pairs: the pass would cost more than it saves
    chosen = train("dpo", "p", "c", FAST.model_copy(update={"precompute_ref_log_probs": False, "group_by_length": False}),
                   ledger, model_spec=str(tiny_model_dir), show_progress=False)
    assert chosen["config"]["precompute_ref_log_probs"] is False and chosen["config"]["group_by_length"] is False
    # the same first step either way: at step 1 the policy is the reference
    first = [ledger.train_steps(a["id"])[0]["metrics"]["loss"] for a in (one_epoch, chosen)]
    assert first == pytest.approx([0.6931472] * 2, abs=1e-4)


def test_group_by_length_is_refused_by_methods_that_do_not_read_it():
    from prefline.errors import PreflineError

    with pytest.raises(PreflineError, match="group_by_length=False has no effect on method 'kto'"):
        get_method("kto").resolve(TrainConfig(group_by_length=False))


def _trainer(tiny_model_dir, tmp_path, rows, **update):
    from datasets import Dataset
    from peft import LoraConfig

    spec = get_method("dpo")
    config = spec.resolve(FAST.model_copy(update=update))
    ref = resolve_model(str(tiny_model_dir))
    return spec.trainer_class()(
        model=load_model(ref), args=trl_config(spec, config, tmp_path / "ck"), train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(ref, padding_side="right"),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )


def _rows(n: int) -> list[dict]:
    """Pairs whose lengths differ: pair i's chosen answer has i + 1 sentences."""
    rows = []
    for i in range(n):
        row = {k: pair(i)[k] for k in ("prompt", "chosen", "rejected")}
        row["chosen"] = [{"role": "assistant", "content": " ".join(["Use reversed(xs)."] * (i % 5 + 1))}]
        rows.append(row)
    return rows


def test_pair_lengths_count_the_prompt_and_the_longer_response():
    from datasets import Dataset

    data = Dataset.from_dict({"prompt_ids": [[1, 2, 3], [1]], "chosen_ids": [[4], [5, 6, 7, 8]], "rejected_ids": [[4, 5], [9]]})
    assert pair_lengths(data) == [5, 5]


def test_length_grouped_batches_pad_less(tiny_model_dir, tmp_path):
    trainer = _trainer(tiny_model_dir, tmp_path, _rows(40), precompute_ref_log_probs=False)
    lengths = pair_lengths(trainer.train_dataset)
    order = list(trainer._get_train_sampler())
    assert sorted(order) == list(range(40))  # every pair once

    def padding(indices: list[int]) -> int:
        batches = [indices[i:i + 2] for i in range(0, len(indices), 2)]
        return sum(max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in batches)

    # transformers' sampler: a random permutation cut into 4 groups of 10, each sorted longest first
    # (the longest pair of all is then swapped to the front)
    for group in (order[i:i + 10] for i in range(0, 40, 10)):
        assert [lengths[j] for j in group[1:]] == sorted((lengths[j] for j in group[1:]), reverse=True)
    assert padding(order) < padding(list(range(40))) / 2
    random_batches = _trainer(tiny_model_dir, tmp_path, _rows(10), precompute_ref_log_probs=False, group_by_length=False)
    assert type(random_batches._get_train_sampler()).__name__ == "RandomSampler"


def test_the_reference_pass_in_length_order_gives_each_pair_its_own_log_probs(tiny_model_dir, tmp_path):
    rows = _rows(7)
    sorted_pass = _trainer(tiny_model_dir, tmp_path / "a", rows, precompute_ref_log_probs=True).train_dataset
    plain = _trainer(tiny_model_dir, tmp_path / "b", rows, precompute_ref_log_probs=False)
    batch = plain.data_collator([plain.train_dataset[i] for i in range(7)])  # every pair in one batch, in order
    chosen, rejected = plain.compute_ref_log_probs(plain.model, batch)
    assert sorted_pass["prompt_ids"] == plain.train_dataset["prompt_ids"]  # rows kept in the dataset's order
    assert torch.tensor(sorted_pass["ref_chosen_logps"]) == pytest.approx(chosen, abs=1e-4)
    assert torch.tensor(sorted_pass["ref_rejected_logps"]) == pytest.approx(rejected, abs=1e-4)
    assert len(set(sorted_pass["ref_chosen_logps"])) == 7  # different pairs, different values
