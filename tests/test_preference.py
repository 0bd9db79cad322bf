"""The preference layer: log-prob scoring, held-out pair accuracy, raw and length-controlled win rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prefline.evals.preference import accuracy_by_slice, pair_accuracy, sequence_logprobs, tokenize_response
from prefline.evals.winrate import combine_swapped, length_controlled_winrate
from prefline.models import load_model, load_tokenizer, resolve_model

PAIRS = [
    {"id": f"p{i}", "slices": {"intent": "coding" if i % 2 else "factual"},
     "prompt": [{"role": "user", "content": f"Question {i}: how do I reverse a list?"}],
     "chosen": [{"role": "assistant", "content": f"Use xs[::-1] ({i})."}],
     "rejected": [{"role": "assistant", "content": f"I cannot help with that request, sorry ({i})."}]}
    for i in range(6)
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    ref = resolve_model(str(tiny_model_dir))
    return load_model(ref), load_tokenizer(ref, padding_side="right")


def test_response_tokens_follow_the_prompt(tiny):
    _, tokenizer = tiny
    tok = tokenize_response(tokenizer, PAIRS[0]["prompt"], PAIRS[0]["chosen"])
    full = tokenizer.apply_chat_template(PAIRS[0]["prompt"] + PAIRS[0]["chosen"], tokenize=True, return_dict=True)["input_ids"]
    assert tok.prompt + tok.response == list(full)
    assert "Use xs[::-1] (0)." in tokenizer.decode(tok.response)
    assert tokenizer.decode(tok.prompt).endswith("<|im_start|>assistant\n")


def test_logprobs_match_a_naive_full_logits_pass(tiny):
    model, tokenizer = tiny
    seqs = [tokenize_response(tokenizer, p["prompt"], p[k]) for p in PAIRS for k in ("chosen", "rejected")]
    fast = sequence_logprobs(model, tokenizer, seqs, batch_size=4)
    for got, seq in zip(fast, seqs):
        ids = torch.tensor([seq.prompt + seq.response])
        with torch.no_grad():
            logps = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        targets = ids[0, 1:]
        expected = logps[torch.arange(len(targets)), targets][-len(seq.response):].sum().item()
        assert got == pytest.approx(expected, abs=1e-3)


def test_fresh_adapter_has_zero_implicit_reward(tiny):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    peft = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))  # B = 0: policy == reference
    results = pair_accuracy(peft, tokenizer, PAIRS, batch_size=4)
    assert all(r["reward_chosen"] == pytest.approx(0, abs=1e-6) and r["correct"] in (0.5, 0.0, 1.0) for r in results)
    assert all(abs(r["margin"]) < 1e-4 for r in results)
    peft.unload()


def test_trained_adapter_prefers_chosen(ledger, tiny_model_dir, tmp_path):
    from peft import PeftModel

    from conftest import write_jsonl
    from prefline.config import TrainConfig
    from prefline.data.ingest import ingest
    from prefline.train.run import train

    rows = [{k: p[k] for k in ("prompt", "chosen", "rejected", "slices")} for p in PAIRS]
    ingest(write_jsonl(tmp_path / "p.jsonl", rows), "pa", ledger)
    adapter = train("dpo", "pa", "pa1", TrainConfig(max_steps=8, batch_size=2, learning_rate=2e-2, max_length=64, bf16=False,
                                                    gradient_checkpointing=False), ledger, model_spec=str(tiny_model_dir), show_progress=False)
    ref = resolve_model(str(tiny_model_dir))
    model = PeftModel.from_pretrained(load_model(ref), adapter["path"])
    results = pair_accuracy(model, load_tokenizer(ref, padding_side="right"), PAIRS)
    by_slice = accuracy_by_slice(results)
    assert by_slice["overall"]["n"] == 6 and by_slice["intent=coding"]["n"] == 3
    assert by_slice["overall"]["accuracy"] == 1.0  # it fitted these pairs
    assert all(r["margin"] > 0 for r in results)


def test_swapped_judgments():
    assert combine_swapped("A", "B") == (1.0, False)   # candidate first, then candidate second: wins both
    assert combine_swapped("B", "A") == (0.0, False)
    assert combine_swapped("A", "A") == (0.5, True)    # prefers whatever is shown first
    assert combine_swapped("B", "B") == (0.5, True)
    assert combine_swapped("tie", "B") == (0.75, False)
    assert combine_swapped("tie", "tie") == (0.5, False)


def test_no_length_signal_gives_the_plain_logit():
    # x = tanh(0) for every prompt when lengths are equal: theta = logit(mean) up to the tiny L2 shrinkage
    result = length_controlled_winrate([1, 1, 1, 0] * 10, [0] * 40, samples=200)
    assert result.raw.estimate == 0.75
    assert result.length_controlled.estimate == pytest.approx(0.75, abs=0.01)
    assert result.warning is None


def test_pure_length_preference_is_controlled_to_half():
    rng = np.random.default_rng(0)
    d = rng.normal(25.0, 30.0, size=600)             # the candidate is usually longer
    p = 1 / (1 + np.exp(-3.0 * np.tanh(d / d.std())))  # the judge only looks at length
    wins = (rng.random(600) < p).astype(float)
    result = length_controlled_winrate(wins, d, samples=200)
    assert result.raw.estimate > 0.65
    assert result.length_controlled.estimate == pytest.approx(0.5, abs=0.06)
    assert result.length_controlled.low < 0.5 < result.length_controlled.high
    assert result.length_coefficient > 2
    assert result.warning and "follows response length" in result.warning


def test_real_quality_survives_length_control():
    rng = np.random.default_rng(1)
    d = rng.normal(25.0, 30.0, size=600)
    wins = (rng.random(600) < 1 / (1 + math.exp(-1.0))).astype(float)  # 73% wins whatever the length
    result = length_controlled_winrate(wins, d, samples=200)
    assert result.length_controlled.estimate == pytest.approx(result.raw.estimate, abs=0.05)
    assert result.length_controlled.estimate == pytest.approx(0.73, abs=0.06)


# --- several candidates fitted jointly ------------------------------------------------------------

from prefline.evals.winrate import joint_length_controlled_winrates  # noqa: E402


def test_joint_fit_without_length_or_difficulty_signal_is_the_raw_rate():
    # equal lengths (x = 0) and every prompt alike: theta_m = logit(mean) up to the tiny L2, so
    # LC = raw = 30/40 = 0.75 and 10/40 = 0.25 (hand-worked)
    wins = np.array([[1, 1, 1, 0] * 10, [0, 0, 0, 1] * 10], dtype=float)
    result = joint_length_controlled_winrates(wins, np.zeros_like(wins), samples=50, l2_difficulty=1e6)
    assert [r.estimate for r in result.raw] == [0.75, 0.25]
    assert result.length_controlled[0].estimate == pytest.approx(0.75, abs=0.005)
    assert result.length_controlled[1].estimate == pytest.approx(0.25, abs=0.005)


def test_joint_fit_matches_scipy_logistic_regression_on_one_candidate():
    # one candidate, no difficulty term: the joint fit is a logistic regression of wins on tanh(d/sd);
    # scipy's minimizer on the plain (unpenalized) log-likelihood gives the same coefficient
    from scipy.optimize import minimize
    from scipy.special import log_expit

    rng = np.random.default_rng(3)
    d = rng.normal(0.0, 40.0, size=400)
    x = np.tanh(d / d.std())
    wins = (rng.random(400) < 1 / (1 + np.exp(-(0.4 + 1.5 * x)))).astype(float)
    nll = lambda b: -(wins * log_expit(b[0] + b[1] * x) + (1 - wins) * log_expit(-(b[0] + b[1] * x))).sum()
    theta, phi = minimize(nll, np.zeros(2)).x
    result = joint_length_controlled_winrates(wins[None, :], d[None, :], samples=0, l2_difficulty=1e8, l2_slope=1e8, l2=1e-8)
    assert result.length_coefficient == pytest.approx(phi, abs=0.02)
    # zero lies inside the length terms seen, so LC = sigmoid(theta)
    assert result.length_controlled[0].estimate == pytest.approx(1 / (1 + np.exp(-theta)), abs=0.005)


def test_joint_fit_removes_a_pure_length_preference_for_every_candidate():
    rng = np.random.default_rng(0)
    n = 500
    d = np.stack([rng.normal(30, 40, n), rng.normal(-10, 40, n), rng.normal(40, 40, n)])
    x = np.tanh(d / d.std(axis=1, keepdims=True))
    wins = (rng.random(d.shape) < 1 / (1 + np.exp(-2.0 * x))).astype(float)  # the judge only looks at length
    result = joint_length_controlled_winrates(wins, d, names=["a", "b", "c"], samples=10)
    assert result.raw[2].estimate > 0.7
    for lc in result.length_controlled:
        assert lc.estimate == pytest.approx(0.5, abs=0.06)
    # the coefficient comes out above the true 2: with three binary judgments per prompt, the free
    # prompt difficulties soak up noise and stretch the other coefficients (incidental parameters)
    assert 1.5 < result.length_coefficient < 3.5
    assert result.warnings[2] and "follows response length" in result.warnings[2]
    assert result.as_dict()["candidates"][0]["name"] == "a"


def test_far_shorter_candidate_is_not_extrapolated_to_equal_length():
    # candidate 0 is always far shorter than the baseline; candidate 1 spans both signs. The judge
    # likes length (phi = 2) and both are otherwise as good as the baseline (theta = 0).
    rng = np.random.default_rng(5)
    n = 600
    d = np.stack([rng.uniform(-400, -200, n), rng.normal(0, 150, n)])
    x = np.tanh(d / d.std(axis=1, keepdims=True))
    wins = (rng.random(d.shape) < 1 / (1 + np.exp(-2.0 * x))).astype(float)
    result = joint_length_controlled_winrates(wins, d, samples=0)
    raw, lc = result.raw[0].estimate, result.length_controlled[0].estimate
    # the far-shorter candidate's LC moves up from raw but stays at its least-short decile, below 0.5
    edge = np.quantile(np.tanh(d[0] / d[0].std()), 0.9)
    assert raw < lc < 0.5
    assert lc == pytest.approx(1 / (1 + np.exp(-2.0 * edge)), abs=0.07)
    assert result.length_controlled[1].estimate == pytest.approx(0.5, abs=0.06)


def test_joint_fit_handles_prompts_a_candidate_was_not_judged_on():
    wins = np.array([[1, 0, 1, 1, np.nan, 1], [0, 0, 1, np.nan, 0, 0]], dtype=float)
    result = joint_length_controlled_winrates(wins, np.zeros_like(wins), samples=20)
    assert result.n == [5, 5]
    assert result.raw[0].estimate == pytest.approx(0.8) and result.raw[1].estimate == pytest.approx(0.2)
    with pytest.raises(ValueError, match="two or more prompts"):
        joint_length_controlled_winrates([[1, np.nan]], [[0, 0]])
    with pytest.raises(ValueError, match="same shape"):
        joint_length_controlled_winrates([[1, 0]], [[0, 0, 0]])


def test_single_candidate_far_shorter_is_not_extrapolated():
    rng = np.random.default_rng(2)
    d = rng.uniform(-400, -200, 600)
    x = np.tanh(d / d.std())
    wins = (rng.random(600) < 1 / (1 + np.exp(-2.0 * x))).astype(float)
    result = length_controlled_winrate(wins, d, samples=50)
    assert result.raw.estimate < result.length_controlled.estimate < 0.5


def test_pair_accuracy_interval_is_wilson_not_a_degenerate_bootstrap():
    """Eight of eight held-out pairs right: the interval must say eight pairs cannot prove 100%.

    Wilson at 90% (z = 1.6449, z^2 = 2.7055), p = 1, n = 8: centre (1 + z^2/16) / (1 + z^2/8) = 0.8736,
    half-width z * sqrt(z^2 / 256) / (1 + z^2/8) = 0.1264, so [0.7473, 1.0]. A tie counts half.
    """
    eight = [{"slices": {"intent": "coding"}, "correct": 1.0} for _ in range(8)]
    by_slice = accuracy_by_slice(eight)
    assert by_slice["overall"]["accuracy"] == 1.0
    assert by_slice["overall"]["ci"][0] == pytest.approx(0.7473, abs=1e-4) and by_slice["overall"]["ci"][1] == 1.0
    with_tie = accuracy_by_slice([{"slices": {}, "correct": c} for c in (1.0, 0.5, 0.0, 1.0)])
    assert with_tie["overall"]["accuracy"] == 0.625 and 0.0 < with_tie["overall"]["ci"][0] < 0.625 < with_tie["overall"]["ci"][1] < 1.0
