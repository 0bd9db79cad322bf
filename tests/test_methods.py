"""The method table: every method trains on the tiny model, its loss matches the closed form,
the pinned TRL API still takes what the table passes, and bad requests fail before a model loads.

Loss numbers are worked out by hand in each test's docstring, in the manner of torchtune's
DPO loss tests, and recomputed in the test with ``math`` from the same formula.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.config import TrainConfig, parse
from prefline.data.ingest import ingest
from prefline.errors import PreflineError
from prefline.models import load_model, load_tokenizer, resolve_model
from prefline.train.methods import METHOD_FIELDS, METHODS, get_method
from prefline.train.run import train, trl_config

FAST = TrainConfig(max_steps=2, batch_size=2, learning_rate=1e-2, max_length=64, bf16=False, gradient_checkpointing=False)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def dataset(tmp_path, ledger):
    return ingest(write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(8)]), "tiny", ledger)


# --- every method trains and registers an adapter ---------------------------------------

# First logged step: LoRA's B matrices start at zero, so the policy equals the reference and
# every log-ratio is 0 (D = 0). Then dpo, robust and ld-dpo give -log sigmoid(0) = log 2
# (robust: ((1 - e) log 2 - e log 2) / (1 - 2e) = log 2), ipo (0 - 1/(2 * 0.1))^2 = 25,
# hinge relu(1 - 0) = 1, and kto 1 - sigmoid(0) = 0.5 for every row (its KL estimate is 0 too).
FIRST_STEP_LOSS = {"dpo": math.log(2), "robust": math.log(2), "ld-dpo": math.log(2), "ipo": 25.0, "hinge": 1.0, "kto": 0.5}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_and_registers_an_adapter(method, ledger, dataset, tiny_model_dir):
    adapter = train(method, "tiny", f"{method}-1", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    assert adapter["status"] == "done" and adapter["method"] == method
    assert adapter["config"]["method"] == method and len(adapter["adapter_hash"]) == 64
    spec = get_method(method)
    assert {f for f in METHOD_FIELDS if f in adapter["config"]} == set(spec.uses)  # lineage lists what the method read

    weights = load_file(f"{adapter['path']}/adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b), "training did not move the LoRA weights"
    config = json.loads(open(f"{adapter['path']}/adapter_config.json").read())
    assert config["peft_type"] == "LORA" and config["task_type"] == spec.lora_task

    steps = ledger.train_steps(adapter["id"])
    assert [s["step"] for s in steps] == [1, 2] and adapter["metrics"]["steps"] == 2
    first = steps[0]["metrics"]
    if method in FIRST_STEP_LOSS:
        assert first["loss"] == pytest.approx(FIRST_STEP_LOSS[method], abs=1e-3)
    if method == "rpo":
        # log 2 from the DPO term plus rpo_alpha (1) times the chosen tokens' mean negative log-likelihood,
        # which on the tiny model's random weights is near log(vocabulary) = log(49152) = 10.8
        assert 5 < first["loss"] - math.log(2) < 20
    if method == "orpo":
        # ORPO logs both of its terms: loss = nll_loss - beta * mean(log sigmoid(log odds ratio))
        assert first["loss"] == pytest.approx(first["nll_loss"] - 0.1 * first["log_odds_ratio"], rel=1e-4)
    if method == "reward":  # the new score head is trained in full and saved with the adapter
        assert any("score" in k for k in weights) and "score" in config["modules_to_save"]


def test_simpo_first_step_matches_its_logged_log_probs(ledger, dataset, tiny_model_dir):
    """SimPO has no reference, so its first loss is not a constant; with one pair per step it is
    -log sigmoid(beta * (a_c - a_r) - gamma) of the average log-probs it logs (beta 2.0, gamma 0.5)."""
    config = FAST.model_copy(update={"batch_size": 1, "max_steps": 1})
    adapter = train("simpo", "tiny", "s1", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    first = ledger.train_steps(adapter["id"])[0]["metrics"]
    expected = -math.log(sigmoid(2.0 * (first["logps/chosen"] - first["logps/rejected"]) - 0.5))
    assert first["loss"] == pytest.approx(expected, rel=1e-4)
    assert adapter["config"]["beta"] == 2.0 and adapter["config"]["simpo_gamma"] == 0.5


# --- losses on a fixed batch, through TRL's own loss code -------------------------------


def _trainer(method: str, tiny_model_dir, tmp_path, **settings):
    """The method's TRL trainer as ``train`` builds it (table config, LoRA), on two pairs."""
    from datasets import Dataset
    from peft import LoraConfig

    spec = get_method(method)
    config = spec.resolve(FAST.model_copy(update=settings))
    ref = resolve_model(str(tiny_model_dir))
    pairs = Dataset.from_list([{k: pair(i)[k] for k in ("prompt", "chosen", "rejected")} for i in range(2)])
    return spec.trainer_class()(
        model=(spec.load or load_model)(ref), args=trl_config(spec, config, tmp_path / "ck"),
        train_dataset=spec.prepare(pairs, config), processing_class=load_tokenizer(ref, padding_side="right"),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type=spec.lora_task),
    )


def _dpo_loss(trainer) -> float:
    """TRL's DPO loss on one fixed pair, with the policy's per-token log-probs given by a stub.

    Sequence of 5 tokens: 2 prompt tokens, then the chosen response (2 tokens, then padding)
    or the rejected one (3 tokens). Per-token policy log-probs, at the predicted positions:
    chosen [-1.0, -2.0] (sum -3.0), rejected [-1.5, -2.5, -3.0] (sum -7.0). Reference sums,
    given as precomputed: chosen -3.5, rejected -6.0.
    """
    completion_mask = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]])
    per_token = torch.tensor([[0.0, -1.0, -2.0, 0.0], [0.0, -1.5, -2.5, -3.0]])
    outputs = SimpleNamespace(
        log_probs=per_token, entropy=torch.zeros(2, 4), mean_logits=torch.zeros(2, 4), is_top1=torch.zeros(2, 4, dtype=torch.bool),
    )
    inputs = {
        "input_ids": torch.ones(2, 5, dtype=torch.long), "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]),
        "completion_mask": completion_mask,
        "ref_chosen_logps": torch.tensor([-3.5]), "ref_rejected_logps": torch.tensor([-6.0]),
    }
    trainer.precompute_ref_logps = True  # take the reference from the inputs
    return trainer._compute_loss(lambda **kwargs: outputs, inputs, return_outputs=False).item()


def test_dpo_family_losses_match_the_closed_form(tiny_model_dir, tmp_path):
    """On the fixed pair of ``_dpo_loss`` with beta = 0.1:

    log-ratios: chosen -3.0 - (-3.5) = 0.5, rejected -7.0 - (-6.0) = -1.0, so D = 1.5, beta * D = 0.15.
    - dpo:    -log sigmoid(0.15) = log(1 + e^-0.15) = 0.620957
    - hinge:  relu(1 - 0.15) = 0.85
    - ipo:    per-token averages 0.5 / 2 = 0.25 and -1.0 / 3 = -0.333333, D' = 0.583333;
              (D' - 1 / (2 * 0.1))^2 = (0.583333 - 5)^2 = 19.506944
    - robust: e = 0.1, L(x) = -log sigmoid(beta x): L(1.5) = 0.620957, L(-1.5) = 0.770957;
              (0.9 * 0.620957 - 0.1 * 0.770957) / 0.8 = 0.602207 (TRL's rDPO form, minus sign on the flipped term)
    - ld-dpo: ld_alpha = 0.5 halves the rejected's third token, the one past the chosen's length:
              rejected -4.0 + 0.5 * -3.0 = -5.5, log-ratio 0.5 = chosen's, so D = 0 and the loss is log 2 = 0.693147
    """
    L = lambda x: -math.log(sigmoid(0.1 * x))  # noqa: E731
    eps, delta = 0.1, 1.5
    expected = {
        "dpo": L(delta),
        "hinge": max(0.0, 1 - 0.1 * delta),
        "ipo": (0.5 / 2 - (-1.0 / 3) - 1 / (2 * 0.1)) ** 2,
        "robust": ((1 - eps) * L(delta) - eps * L(-delta)) / (1 - 2 * eps),
        "ld-dpo": L(0.5 - (-4.0 + 0.5 * -3.0 - (-6.0))),
    }
    assert expected == pytest.approx({"dpo": 0.620957, "hinge": 0.85, "ipo": 19.506944, "robust": 0.602207, "ld-dpo": math.log(2)}, abs=1e-6)
    for method, value in expected.items():
        assert _dpo_loss(_trainer(method, tiny_model_dir, tmp_path)) == pytest.approx(value, rel=1e-5), method


def test_simpo_and_orpo_losses_match_the_closed_form(tiny_model_dir, tmp_path):
    """Average per-token log-probs a_c = -0.8 (chosen), a_r = -1.4 (rejected).

    - simpo (beta 2.0, gamma 0.5): -log sigmoid(2.0 * 0.6 - 0.5) = -log sigmoid(0.7) = 0.403186
    - orpo (beta 0.1): log odds = (a_c - a_r) - (log(1 - e^a_c) - log(1 - e^a_r)) = 0.913463;
      the odds-ratio term TRL subtracts from the NLL is beta * log sigmoid(0.913463) = -0.033728
    """
    chosen, rejected = torch.tensor([-0.8]), torch.tensor([-1.4])
    simpo = _trainer("simpo", tiny_model_dir, tmp_path)
    assert simpo.cpo_alpha == 0.0  # no behaviour-cloning term: pure SimPO
    losses, _, _ = simpo.cpo_loss(chosen, rejected)
    assert losses.item() == pytest.approx(-math.log(sigmoid(2.0 * (-0.8 + 1.4) - 0.5)), rel=1e-5)
    assert losses.item() == pytest.approx(0.403186, abs=1e-6)

    orpo = _trainer("orpo", tiny_model_dir, tmp_path)
    log_odds = (-0.8 + 1.4) - (math.log(1 - math.exp(-0.8)) - math.log(1 - math.exp(-1.4)))
    losses, *_ = orpo.odds_ratio_loss(chosen, rejected)
    assert losses.item() == pytest.approx(0.1 * math.log(sigmoid(log_odds)), rel=1e-5)
    assert losses.item() == pytest.approx(-0.033728, abs=1e-6)


def test_kto_rows_are_labelled_and_mixed():
    from datasets import Dataset

    pairs = Dataset.from_list([{k: pair(i)[k] for k in ("prompt", "chosen", "rejected")} for i in range(6)])
    rows = get_method("kto").prepare(pairs, TrainConfig())
    assert len(rows) == 12 and sum(rows["label"]) == 6
    by_text = {(r["prompt"][0]["content"], r["completion"][0]["content"]): r["label"] for r in rows}
    for p in pairs:
        assert by_text[(p["prompt"][0]["content"], p["chosen"][0]["content"])] is True
        assert by_text[(p["prompt"][0]["content"], p["rejected"][0]["content"])] is False
    assert rows["label"] != [True] * 6 + [False] * 6  # shuffled, so batches mix labels


# --- the pinned TRL API -----------------------------------------------------------------


def test_pinned_trl_api_takes_what_the_table_passes(tmp_path):
    """Fails loudly when a TRL upgrade moves a trainer, a config class or a field the table uses."""
    import trl

    assert trl.__version__.startswith("1.16"), f"the method table is written against TRL 1.16, found {trl.__version__}"
    for spec in METHODS.values():
        config = spec.resolve(FAST)
        args = trl_config(spec, config, tmp_path)  # a renamed or removed field raises TypeError here
        for field, value in spec.trl_args(config).items():
            assert getattr(args, field) == value, (spec.name, field)
        params = inspect.signature(spec.trainer_class().__init__).parameters
        assert {"model", "args", "train_dataset", "processing_class", "peft_config", "callbacks"} <= set(params), spec.name
    assert trl_config(get_method("robust"), get_method("robust").resolve(FAST), tmp_path).loss_type == ["robust"]
    assert trl_config(get_method("ld-dpo"), get_method("ld-dpo").resolve(FAST), tmp_path).ld_alpha == 0.5


def test_every_method_is_documented():
    for spec in METHODS.values():
        doc = spec.doc()
        assert spec.paper in doc and "Data:" in doc and "Reference model:" in doc
        for field in spec.uses:
            assert field in doc and TrainConfig.model_fields[field].description


# --- bad requests fail before a model is loaded -----------------------------------------


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a request that should have been refused")

    monkeypatch.setattr("prefline.train.run.load_model", refuse)
    monkeypatch.setattr("transformers.AutoModelForSequenceClassification.from_pretrained", refuse)


@pytest.mark.parametrize("method", list(METHODS))
def test_bad_requests_fail_before_loading_a_model(method, ledger, dataset, tiny_model_dir, no_model_loads):
    model = str(tiny_model_dir)
    with pytest.raises(PreflineError, match="unknown dataset"):
        train(method, "missing", "x", FAST, ledger, model_spec=model)
    with pytest.raises(PreflineError, match="beta"):
        parse({"beta": 0}, TrainConfig, "train.yaml")
    with pytest.raises(PreflineError, match="lora_r"):
        parse({"lora_r": 0}, TrainConfig, "train.yaml")
    # a method-specific field the method does not read is refused, naming the field
    unused = {"beta": 0.3, "label_smoothing": 0.2, "ld_alpha": 0.9, "simpo_gamma": 1.0, "precompute_ref_log_probs": True}
    for field, value in unused.items():
        if field not in get_method(method).uses:
            with pytest.raises(PreflineError, match=f"{field}={value!r} has no effect on method '{method}'"):
                train(method, "tiny", "x", FAST.model_copy(update={field: value}), ledger, model_spec=model)
    assert ledger.find_adapter("x") is None


def test_unknown_method_and_method_requirements(ledger, dataset, tiny_model_dir, no_model_loads):
    with pytest.raises(PreflineError, match="unknown training method 'nope'; known: dpo, ipo"):
        train("nope", "tiny", "x", FAST, ledger, model_spec=str(tiny_model_dir))
    with pytest.raises(PreflineError, match="method 'kto': batch_size=1"):
        train("kto", "tiny", "x", FAST.model_copy(update={"batch_size": 1}), ledger, model_spec=str(tiny_model_dir))
    with pytest.raises(PreflineError, match="label_smoothing"):
        parse({"label_smoothing": 0.5}, TrainConfig, "train.yaml")


def test_cli_has_one_command_per_method(dataset, no_model_loads):
    runner = CliRunner()
    for name, spec in METHODS.items():
        shown = runner.invoke(app, ["train", name, "--help"])
        arxiv = re.search(r"arXiv:[\d.]+", spec.paper).group()
        assert shown.exit_code == 0 and arxiv in shown.output and spec.title in " ".join(shown.output.split())
    result = runner.invoke(app, ["train", "simpo", "--data", "tiny", "--name", "a", "--beta", "0"])
    assert result.exit_code == 2 and "command line: beta" in result.output
    result = runner.invoke(app, ["train", "sft", "--data", "tiny", "--name", "a", "--beta", "0.2"])
    assert result.exit_code == 2 and "beta=0.2 has no effect on method 'sft'" in result.output
    assert runner.invoke(app, ["train", "nope", "--data", "tiny", "--name", "a"]).exit_code == 2


def test_a_reward_adapter_cannot_generate(ledger, tiny_model_dir, tmp_path):
    from conftest import pair, write_jsonl
    from prefline.data.ingest import ingest
    from prefline.errors import PreflineError
    from prefline.evals.run import run_eval
    from prefline.evals.suite import load_suite
    from prefline.train.run import train

    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(4)]), "rw", ledger)
    train("reward", "rw", "rm", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    with pytest.raises(PreflineError, match="is a reward model"):
        run_eval(load_suite("smoke"), ledger, adapter="rm")


def test_gradient_checkpointing_follows_the_model_size(tmp_path):
    from prefline.train.run import CHECKPOINTING_FROM_BYTES, needs_checkpointing

    small, large = tmp_path / "small", tmp_path / "large"
    for folder, size in ((small, 540_000_000), (large, CHECKPOINTING_FROM_BYTES)):
        folder.mkdir()
        with open(folder / "model.safetensors", "wb") as f:
            f.truncate(size)  # sparse: the size is what counts, no disk is used
    assert not needs_checkpointing(small) and needs_checkpointing(large)
    assert TrainConfig().gradient_checkpointing is None  # unset: decided per model when training starts


def test_gradient_checkpointing_follows_the_activations(tmp_path):
    """SmolLM2-135M's shape (30 layers, hidden 576): 2 x 4 x 384 x 30 x 576 x 48 bytes = 2.55e9 (on), while
    the same batch of 128-token rows takes 0.85e9 (off); the threshold is 1.5 GiB = 1.61e9."""
    import json

    from datasets import Dataset

    from prefline.train.run import activation_bytes, longest_pair_tokens, needs_checkpointing

    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 30, "hidden_size": 576}))
    config = TrainConfig(batch_size=4, max_length=384)
    assert activation_bytes(tmp_path, config, 384) == 2 * 4 * 384 * 30 * 576 * 48 == 2_548_039_680
    assert needs_checkpointing(tmp_path, config, 384) and not needs_checkpointing(tmp_path, config, 128)
    assert not needs_checkpointing(tmp_path, TrainConfig(batch_size=2, max_length=384), 384)  # 1.27e9

    def msgs(n):
        return [{"role": "user", "content": "x" * n}]
    pairs = Dataset.from_list([{"prompt": msgs(30), "chosen": msgs(60), "rejected": msgs(90)},
                               {"prompt": msgs(300), "chosen": msgs(3), "rejected": msgs(0)}])
    assert longest_pair_tokens(pairs, 1024) == 303 // 3 + 32  # the second pair: 300 + 3 characters
    assert longest_pair_tokens(pairs, 64) == 64


def test_full_finetune_trains_every_weight_and_evaluates(ledger, dataset, tiny_model_dir, tmp_path):
    """finetune: full gives a full model folder that eval, pair accuracy and export use in place of base + adapter."""
    from prefline.config import DecodingConfig
    from prefline.evals.preference_eval import pair_accuracy_eval
    from prefline.evals.run import run_eval
    from prefline.evals.suite import load_suite
    from prefline.train.export import export_adapter

    config = FAST.model_copy(update={"finetune": "full", "learning_rate": 1e-3})
    adapter = train("dpo", "tiny", "full-1", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    folder = Path(adapter["path"])
    assert adapter["status"] == "done" and adapter["config"]["finetune"] == "full"
    assert (folder / "config.json").is_file() and not (folder / "adapter_config.json").exists()
    steps = ledger.train_steps(adapter["id"])
    assert steps[0]["metrics"]["loss"] == pytest.approx(math.log(2), abs=1e-3)  # policy == its frozen reference copy at first

    base, tuned = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(folder / "model.safetensors"))
    moved = [k for k in base if k in tuned and not torch.equal(base[k], tuned[k].to(base[k].dtype))]
    assert len(moved) > len(base) // 2  # not only a few adapter matrices: the weights themselves trained

    decoding = DecodingConfig(max_new_tokens=4, batch_size=16)
    suite = load_suite("smoke")
    base_run = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=decoding, show_progress=False)
    tuned_run = run_eval(suite, ledger, adapter="full-1", decoding=decoding, show_progress=False)
    assert [g["output"] for g in ledger.generations(base_run)] != [g["output"] for g in ledger.generations(tuned_run)]
    accuracy = pair_accuracy_eval(ledger, "tiny", "full-1")
    assert accuracy["slices"]["overall"]["n"] == 8
    assert (export_adapter(ledger, "full-1", tmp_path / "out", merge=True) / "config.json").is_file()

    with pytest.raises(PreflineError, match="finetune: full is for the generative methods"):
        train("reward", "tiny", "full-rm", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
