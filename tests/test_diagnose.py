"""Diagnose's parts: the effect size (hand-worked), slice findings explained by ``overall``, cause ranking."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from prefline.cli import app
from prefline.errors import PreflineError
from prefline.gate.diagnose import Finding, diagnose, likely_causes, paired_effect_sizes


def test_effect_sizes_by_hand():
    """Cell 0: differences 1, 2, 3 -> mean 2, sd 1 -> d_z 2.
    Cell 1: differences all 2 (sd 0): the pooled sd of the values is used; baseline 0, 2, 4 and
    candidate 2, 4, 6 both have variance 4, so d_av = 2 / 2 = 1.
    Cell 2: only the first two items present: differences -1, -3 -> mean -2, sd sqrt(2) -> -sqrt(2).
    Cell 3: no spread anywhere and a change of 1: unbounded. Cell 4: one item: undefined."""
    base = np.array([[0, 0, 0, 5, 1], [0, 2, 0, 5, 0], [0, 4, 9, 5, 0]], dtype=float)
    cand = np.array([[1, 2, -1, 6, 2], [2, 4, -3, 6, 0], [3, 6, 0, 6, 0]], dtype=float)
    present = np.ones_like(base, dtype=bool)
    present[2, 2] = False
    present[1:, 4] = False
    effect = paired_effect_sizes(base, cand, present)
    assert effect[0] == pytest.approx(2.0)
    assert effect[1] == pytest.approx(1.0)
    assert effect[2] == pytest.approx(-np.sqrt(2))
    assert effect[3] == np.inf and np.isnan(effect[4])
    # d_z matches its definition computed with numpy on each cell
    d = cand[:, 0] - base[:, 0]
    assert effect[0] == pytest.approx(d.mean() / d.std(ddof=1))


def _run(ledger, lengths: dict[str, float], refusals: dict[str, float] | None = None) -> int:
    slices = {f"f{i}": {"intent": "factual"} for i in range(10)} | {f"h{i}": {"intent": "howto"} for i in range(10)}
    run = ledger.add_run(suite_name="t", suite_hash="s" * 64, model="m", model_hash="m" * 64, backend="hf", decoding={}, seed=0,
                         scorers=["length", "refusal"])
    ledger.add_generations(run, [{"item_id": i, "item_hash": i, "slices": s, "messages": [{"role": "user", "content": f"q {i}"}],
                                  "output": f"answer {i} " * int(lengths[i]), "input_tokens": 1, "output_tokens": 1, "latency_s": 0.0}
                                 for i, s in slices.items()])
    rows = [{"item_id": i, "metric": "length_tokens", "scorer": "length", "value": v, "evidence": {}} for i, v in lengths.items()]
    rows += [{"item_id": i, "metric": "over_refusal", "scorer": "refusal", "value": v, "evidence": {}} for i, v in (refusals or {}).items()]
    ledger.add_scores(run, rows)
    ledger.finish_run(run, {})
    return run


def test_a_slice_that_moved_with_overall_is_folded_into_it_and_one_beyond_is_not(ledger):
    """Every item grows by 10 tokens (+-1): overall and both intents regress by about +10; the slices'
    intervals hold the overall change, so they are explained by it. Then factual grows by 30 instead:
    factual is beyond overall; howto (+10) no longer holds overall (+20) either."""
    base = {f"{p}{i}": 10.0 + i for p in "fh" for i in range(10)}
    same = _run(ledger, base)
    grown = _run(ledger, {k: v + 10 + (i % 3 - 1) for i, (k, v) in enumerate(base.items())})
    result = diagnose(ledger, same, grown)
    assert [(f.metric, f.slice) for f in result.findings] == [("length_tokens", "overall")]
    top = result.findings[0]
    assert {e["slice"] for e in top.explains} == {"intent=factual", "intent=howto"}
    assert top.category == "formatting" and top.family == "verbosity" and top.p_adjusted < 0.05
    assert top.items and top.items[0]["candidate"] > top.items[0]["baseline"]

    uneven = _run(ledger, {k: v + (30 if k.startswith("f") else 10) for k, v in base.items()})
    result = diagnose(ledger, same, uneven)
    names = {(f.slice, f.beyond_overall) for f in result.findings}
    assert ("intent=factual", True) in names and ("overall", False) in names
    # +30 on every factual item: the differences have no spread, so the values' pooled sd scales it:
    # both runs' factual values are 10..19 shifted, sd sqrt(110/12); 30 / 3.028 = 9.91, ranked first
    assert result.findings[0].slice == "intent=factual"
    assert result.findings[0].effect_size == pytest.approx(30 / np.sqrt(110 / 12))
    assert result.by_category() == {"formatting": {f.slice: ["length_tokens"] for f in result.findings}}
    assert result.causes == []  # base-model runs: no lineage to blame


def test_no_regression_says_so(ledger):
    base = {f"{p}{i}": 10.0 + i for p in "fh" for i in range(10)}
    a, b = _run(ledger, base), _run(ledger, {k: v - 5 for k, v in base.items()})  # shorter is better: no regression
    result = diagnose(ledger, a, b)
    assert result.findings == [] and "no metric moved in its bad direction" in result.notes[0]
    out = CliRunner().invoke(app, ["diagnose", str(a), str(b)])
    assert out.exit_code == 0 and "no metric moved" in out.stdout


def test_cli_errors_are_one_line(ledger):
    runner = CliRunner()
    for args, message in ((["diagnose", "1"], "diagnose needs BASELINE_RUN and CANDIDATE_RUN (or --bisect with --history SURFACE or --adapters A,B,C)"),
                          (["diagnose", "--bisect"], "--bisect needs exactly one of --history SURFACE and --adapters A,B,C"),
                          (["diagnose", "1", "2", "--history", "chat"], "--history, --adapters, --surface, --metric and --slice go with --bisect"),
                          (["diagnose", "--bisect", "--adapters", "a,b"], "--bisect --adapters needs --suite SUITE or --surface S"),
                          (["diagnose", "--bisect", "--history", "chat", "--surface", "chat"],
                           "--surface goes with --adapters; --history already names the surface")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and result.output.strip() == f"error: {message}", result.output
    with pytest.raises(PreflineError, match="alpha must be between 0 and 1"):
        diagnose(ledger, 1, 2, alpha=2)


def _f(metric, slice_name="overall", family="verbosity", diff=5.0):
    return Finding(metric=metric, slice=slice_name, category="formatting", axis="reliability", direction="lower", n=10, baseline=10,
                   candidate=10 + diff, diff=diff, ci_low=diff - 1, ci_high=diff + 1, p_adjusted=0.01, effect_size=2.0, family=family)


def test_causes_match_signatures_and_rank_by_evidence():
    """A verbosity regression with chosen-longer up 0.52 -> 0.81 ranks that first; refusals among chosen did
    not move, so no refusal cause; a learning-rate rise is a weak, generic cause; nothing is certain."""
    profile = lambda longer, refuses: {"overall": {"pairs": 100, "chosen_longer": longer, "length_ratio_mean": 1.0,  # noqa: E731
                                                   "chosen_refuses": refuses}}
    lineage = {"data": {"old": "d@1", "new": "d@2", "profile": {"old": profile(0.52, 0.1), "new": profile(0.81, 0.1)},
                        "major_change": False},
               "config": {"learning_rate": {"old": 5e-4, "new": 1e-3}}}
    causes = likely_causes([_f("length_tokens"), _f("length_sentences")], lineage)
    assert [(c.kind, c.change) for c in causes] == [("data", "chosen_longer"), ("config", "learning_rate")]
    top = causes[0]
    assert (top.old, top.new) == (0.52, 0.81) and "from 0.52 in d@1 to 0.81 in d@2" in top.evidence
    assert top.explains == ["length_tokens@overall", "length_sentences@overall"]
    assert all(0 < c.confidence <= 0.9 for c in causes) and causes[1].confidence < top.confidence

    over = likely_causes([_f("over_refusal", family="over-refusal", diff=0.2)],
                         {**lineage, "data": {**lineage["data"], "profile": {"old": profile(0.5, 0.05), "new": profile(0.5, 0.40)}}})
    assert over[0].change == "chosen_refuses" and (over[0].old, over[0].new) == (0.05, 0.40)


def test_falling_agreement_is_a_weak_generic_cause():
    profile = lambda agreement: {"overall": {"pairs": 50, "chosen_longer": 0.5, "agreement": agreement}}  # noqa: E731
    lineage = {"data": {"old": "d@1", "new": "d@2", "profile": {"old": profile(0.9), "new": profile(0.7)}}, "config": {}}
    causes = likely_causes([_f("confident_wrong", family=None, diff=0.2)], lineage)
    assert [(c.change, c.old, c.new, c.confidence) for c in causes] == [("agreement", 0.9, 0.7, 0.25)]
    assert likely_causes([_f("confident_wrong", family=None)], {**lineage, "data": {**lineage["data"],
                         "profile": {"old": profile(0.9), "new": profile(0.88)}}}) == []


def test_changed_training_weights_are_a_weak_generic_cause():
    profile = lambda w: {"overall": {"pairs": 50, "chosen_longer": 0.5, "weight_mean": w}}  # noqa: E731
    lineage = {"data": {"old": "d@1", "new": "d@2", "profile": {"old": profile(1.0), "new": profile(0.6)}}, "config": {}}
    causes = likely_causes([_f("confident_wrong", family=None)], lineage)
    assert [(c.change, c.old, c.new, c.confidence) for c in causes] == [("weight_mean", 1.0, 0.6, 0.2)]
