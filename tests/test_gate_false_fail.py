"""The gate's error rate, measured: simulated pairs of runs of one model (nothing changed) rarely fail,
and a planted regression larger than the margin fails nearly always.

Each simulated run is stored in the ledger and gated with `compare_runs`, the call `prefline gate`
makes, under the shipped default policy. A simulated suite of 200 items (120 benign in three
intents, 80 harmful; three surfaces) has per-item propensities drawn once: whether the model refuses
a benign item, answers a harmful one, hedges; and a typical length. A run samples each item's
outcome from these propensities (as sampling at temperature > 0 does), so two runs of the same
model differ item by item only by chance.
"""

from __future__ import annotations

import numpy as np
import pytest

from prefline.config import GatePolicy, GateRule, load_policy
from prefline.gate.compare import compare_runs

N_BENIGN, N_HARMFUL = 120, 80


class Model:
    """Per-item propensities of one simulated model on the simulated suite."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.items = {}
        for k in range(N_BENIGN + N_HARMFUL):
            benign = k < N_BENIGN
            self.items[f"i{k:03d}"] = {"intent": ["howto", "advice", "chat"][k % 3] if benign else "harmful",
                                       "risk": "none" if benign else "harmful", "surface": ["chat", "voice", "code"][k % 3 if benign else (k + 1) % 3]}
        n = len(self.items)
        self.refuse = np.where(np.arange(n) < N_BENIGN, rng.beta(1, 9, n), rng.beta(4, 1, n))  # P(refuse)
        self.hedge = rng.beta(1, 4, n)
        self.length = rng.lognormal(np.log(60), 0.5, n)

    def planted(self, over_refusal: float = 0.0) -> Model:
        worse = Model.__new__(Model)
        worse.items, worse.hedge, worse.length = self.items, self.hedge, self.length
        worse.refuse = np.where(np.arange(len(self.items)) < N_BENIGN, np.clip(self.refuse + over_refusal, 0, 1), self.refuse)
        return worse

    def run(self, ledger, seed: int) -> int:
        rng = np.random.default_rng(seed)
        n = len(self.items)
        refused = rng.random(n) < self.refuse
        hedged = (rng.random(n) < self.hedge).astype(float)
        tokens = np.round(self.length * rng.lognormal(0, 0.3, n))
        run = ledger.add_run(suite_name="sim", suite_hash="s" * 64, model="m", model_hash="m" * 64, backend="hf",
                             decoding={"temperature": 0.7}, seed=seed, scorers=["length", "refusal", "hedging"])
        ledger.add_generations(run, [{"item_id": i, "item_hash": i, "slices": s, "messages": [], "output": "", "input_tokens": 1,
                                      "output_tokens": 1, "latency_s": 0.0} for i, s in self.items.items()])
        rows = []
        for k, item in enumerate(self.items):
            benign = k < N_BENIGN
            rows += [{"item_id": item, "metric": "over_refusal", "scorer": "refusal", "value": float(refused[k]) if benign else None},
                     {"item_id": item, "metric": "under_refusal", "scorer": "refusal", "value": None if benign else float(not refused[k])},
                     {"item_id": item, "metric": "hedged", "scorer": "hedging", "value": hedged[k]},
                     {"item_id": item, "metric": "length_tokens", "scorer": "length", "value": tokens[k]}]
        ledger.add_scores(run, [{**r, "evidence": {}} for r in rows])
        ledger.finish_run(run, {})
        return run


def verdicts(ledger, baseline_model: Model, candidate_model: Model, policy: GatePolicy, n: int, seed: int) -> list:
    results = []
    for k in range(n):
        base = baseline_model.run(ledger, seed=seed + 2 * k)
        cand = candidate_model.run(ledger, seed=seed + 2 * k + 1)
        results.append(compare_runs(ledger, base, cand, policy, record=False))
    return results


def test_false_fails_under_a_null_stay_below_the_error_rate(ledger, capsys):
    """100 comparisons of two runs of the same model under the shipped default policy (4 metrics x 9 slices,
    36 checks each): fewer than 5% fail. Without a margin (every bound 0, so each check tests 'any change at
    all'), the correction is what keeps the rate down: uncorrected, most comparisons would have some check
    with p <= 0.05."""
    policy = load_policy("default").model_copy(update={"bootstrap_samples": 100})
    model = Model(seed=1)
    null = verdicts(ledger, model, model, policy, n=100, seed=1000)
    rate = sum(r.verdict == "fail" for r in null) / len(null)
    checks = sum(len(r.checks) for r in null) / len(null)
    assert checks >= 30
    assert rate < policy.error_rate

    zero = GatePolicy(rules=[GateRule(metric=m, max_increase=0.0) for m in ("over_refusal", "under_refusal", "hedged", "length_tokens")],
                      slice_keys=["intent", "risk", "surface"], bootstrap_samples=100)
    strict_null = verdicts(ledger, model, model, zero, n=100, seed=5000)
    corrected = sum(r.verdict == "fail" for r in strict_null) / len(strict_null)
    uncorrected = sum(any(c.p_value is not None and c.p_value <= 0.05 for c in r.checks) for r in strict_null) / len(strict_null)
    with capsys.disabled():
        print(f"\nnull, default policy: {rate:.0%} of {len(null)} verdicts fail ({checks:.0f} checks each); "
              f"margin 0: {corrected:.0%} fail with BH, {uncorrected:.0%} would without a correction")
    assert corrected <= 0.08  # the nominal 5%, within the noise of 100 simulated comparisons
    assert uncorrected > 3 * corrected


@pytest.mark.parametrize("effect", [0.40])
def test_a_planted_regression_beyond_the_margin_fails_nearly_always(ledger, effect, capsys):
    """Benign items refused 0.40 more often than before (the margin is 0.10): at least 95% of 60 comparisons fail,
    and each names over_refusal."""
    policy = load_policy("default").model_copy(update={"bootstrap_samples": 100})
    model = Model(seed=1)
    results = verdicts(ledger, model, model.planted(over_refusal=effect), policy, n=60, seed=9000)
    rate = sum(r.verdict == "fail" for r in results) / len(results)
    with capsys.disabled():
        print(f"\nplanted over-refusal +{effect:.2f} (margin 0.10): {rate:.0%} of {len(results)} verdicts fail")
    assert rate >= 0.95
    assert all({c.metric for c in r.failures} == {"over_refusal"} for r in results if r.verdict == "fail")


def test_two_sampled_runs_of_one_real_model_do_not_fail(ledger, tiny_model_dir):
    """The issue's measurement, on the tiny model: the same model evaluated on the smoke suite with sampling
    (temperature 0.7) under two seeds, gated both ways with the default policy. The runs differ item by item;
    neither order fails, and the runs really differ (so the gate saw noise, not identical runs)."""
    from prefline.config import DecodingConfig
    from prefline.evals.run import run_eval
    from prefline.evals.suite import load_suite

    suite = load_suite("smoke")
    runs = [run_eval(suite, ledger, model_spec=str(tiny_model_dir), show_progress=False,
                     decoding=DecodingConfig(max_new_tokens=16, batch_size=8, temperature=0.7, seed=seed)) for seed in (1, 2)]
    outputs = [[g["output"] for g in ledger.generations(r)] for r in runs]
    assert outputs[0] != outputs[1]
    for base, cand in (runs, runs[::-1]):
        result = compare_runs(ledger, base, cand, record=False)
        assert result.verdict != "fail", [c.reason for c in result.failures]
        assert len(result.checks) >= 20
