"""The gate: paired per-slice comparison under a threshold policy, verdict and exit code."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefline.cli import app
from prefline.config import GatePolicy, GateRule
from prefline.errors import PreflineError
from prefline.gate.compare import compare_runs, default_policy

ITEMS = {  # item -> slices
    "a1": {"risk": "none"}, "a2": {"risk": "none"}, "a3": {"risk": "none"}, "a4": {"risk": "none"},
    "h1": {"risk": "harmful"}, "h2": {"risk": "harmful"},
}


def make_run(ledger, scores: dict[str, dict[str, float | None]], suite_hash="s" * 64, adapter_id: int | None = None) -> int:
    """A finished run whose per-item metric values are given directly."""
    run = ledger.add_run(suite_name="t", suite_hash=suite_hash, model="m", model_hash="m" * 64, backend="hf",
                         decoding={}, seed=0, scorers=["length", "refusal"], adapter_id=adapter_id)
    ledger.add_generations(run, [{"item_id": i, "item_hash": i, "slices": s, "messages": [], "output": "", "input_tokens": 1,
                                  "output_tokens": 1, "latency_s": 0.0} for i, s in ITEMS.items()])
    ledger.add_scores(run, [{"item_id": i, "metric": m, "scorer": "x", "value": v, "evidence": {}}
                            for m, per_item in scores.items() for i, v in per_item.items()])
    ledger.finish_run(run, {})
    return run


def scores(lengths, over):
    return {"length_tokens": dict(zip(ITEMS, lengths)),
            "over_refusal": {i: v for i, v in zip(ITEMS, over)}}


POLICY = GatePolicy(rules=[GateRule(metric="length_tokens", max_ratio=1.3), GateRule(metric="over_refusal", max_increase=0.1)],
                    slice_keys=["risk"], min_items=2)


def test_pass_when_within_policy(ledger):
    base = make_run(ledger, scores([10, 10, 10, 10, 10, 10], [0, 0, 0, 0, None, None]))
    cand = make_run(ledger, scores([12, 12, 12, 12, 10, 10], [0, 0, 0, 0, None, None]))
    result = compare_runs(ledger, base, cand, POLICY)
    assert result.verdict == "pass"
    overall = next(c for c in result.checks if c.metric == "length_tokens" and c.slice == "overall")
    # baseline mean 10, candidate mean (4*12 + 2*10) / 6 = 68/6
    assert overall.baseline == 10 and overall.candidate == pytest.approx(68 / 6)
    assert overall.delta == pytest.approx(68 / 6 - 10)
    assert overall.ratio == pytest.approx(68 / 60)
    # over_refusal applies to the four benign items only: no harmful-slice row for it
    assert {c.slice for c in result.checks if c.metric == "over_refusal"} == {"overall", "risk=none"}


def test_fail_names_the_slice_and_metric(ledger):
    base = make_run(ledger, scores([10] * 6, [0, 0, 0, 0, None, None]))
    cand = make_run(ledger, scores([10, 10, 10, 10, 20, 20], [1, 0, 0, 0, None, None]))
    result = compare_runs(ledger, base, cand, POLICY)
    assert result.verdict == "fail"
    failed = {(c.metric, c.slice) for c in result.failures}
    # harmful items doubled in length (ratio 2.0); overall 80/60 = 1.33 also exceeds 1.3;
    # over-refusal rose by 0.25 on the benign items
    assert failed == {("length_tokens", "risk=harmful"), ("length_tokens", "overall"),
                      ("over_refusal", "overall"), ("over_refusal", "risk=none")}
    assert next(c for c in result.failures if c.slice == "risk=harmful").reason == "ratio 2.00 (allowed <= 1.3)"
    decision = ledger.gate_decisions()[-1]
    assert decision["verdict"] == "fail" and decision["id"] == result.decision_id


def test_small_slices_are_shown_but_not_gated(ledger):
    base = make_run(ledger, scores([10] * 6, [0] * 4 + [None, None]))
    cand = make_run(ledger, scores([10, 10, 10, 10, 20, 20], [0] * 4 + [None, None]))
    policy = POLICY.model_copy(update={"min_items": 3, "rules": [GateRule(metric="length_tokens", max_ratio=1.5)]})
    result = compare_runs(ledger, base, cand, policy)
    harmful = next(c for c in result.checks if c.slice == "risk=harmful")
    assert harmful.status == "not gated" and "only 2 item(s)" in harmful.reason
    assert result.verdict == "pass"


def test_different_suites_are_refused(ledger):
    base = make_run(ledger, scores([10] * 6, [0] * 6))
    other = make_run(ledger, scores([10] * 6, [0] * 6), suite_hash="z" * 64)
    with pytest.raises(PreflineError, match="different suites"):
        compare_runs(ledger, base, other, POLICY)


def test_policy_metric_must_exist(ledger):
    base = make_run(ledger, scores([10] * 6, [0] * 6))
    policy = GatePolicy(rules=[GateRule(metric="hallucination", max_increase=0)])
    with pytest.raises(PreflineError, match="gates metric\\(s\\) hallucination that run"):
        compare_runs(ledger, base, base, policy)


def test_default_policy_loads():
    policy = default_policy()
    assert {r.metric for r in policy.rules} == {"over_refusal", "under_refusal", "length_tokens"}


def test_cli_exit_codes_and_json(ledger, tmp_path):
    base = make_run(ledger, scores([10] * 6, [0] * 6))
    good = make_run(ledger, scores([10] * 6, [0] * 6))
    bad = make_run(ledger, scores([30] * 6, [0] * 6))
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - metric: length_tokens\n    max_ratio: 1.3\nslice_keys: [risk]\nmin_items: 2\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["gate", str(base), str(good), "--policy", str(policy)])
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output
    fail = runner.invoke(app, ["gate", str(base), str(bad), "--policy", str(policy), "--json"])
    assert fail.exit_code == 1
    payload = json.loads(fail.output)
    assert payload["verdict"] == "fail"
    assert {c["slice"] for c in payload["checks"] if c["status"] == "fail"} == {"overall", "risk=none", "risk=harmful"}


def test_cli_bad_policy_is_one_line(ledger, tmp_path):
    base = make_run(ledger, scores([10] * 6, [0] * 6))
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - metric: length_tokens\n    max_ratio: -1\n")
    result = CliRunner().invoke(app, ["gate", str(base), str(base), "--policy", str(policy)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {policy}: rules.0.max_ratio: Input should be greater than 0"]


def test_policies_by_shipped_name(ledger):
    from prefline.config import load_policy

    release = load_policy("release")
    assert release.name == "release" and {"over_refusal", "fabricated_citation", "instruction_strict_rate"} <= {r.metric for r in release.rules}
    assert load_policy(None) == default_policy()
    base = make_run(ledger, scores([10] * 6, [0] * 6))
    result = CliRunner().invoke(app, ["gate", str(base), str(base), "--policy", "nonesuch"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: unknown policy 'nonesuch': not a YAML file; shipped policies: default, release, voice"]
    # the release policy needs the release scorers: a run scored for length and refusal alone is refused, with what it has
    missing = CliRunner().invoke(app, ["gate", str(base), str(base), "--policy", "release"])
    assert missing.exit_code == 2 and "gates metric(s)" in missing.output and "fabricated_citation" in missing.output


def test_an_adapter_trained_on_a_major_data_change_is_noted(ledger, tmp_path):
    """The candidate's adapter learnt from d@2, which changed 10 of 15 pairs from d@1 (the baseline adapter's):
    a note in the terminal output and the JSON, and the verdict unchanged."""
    from conftest import pair, write_jsonl
    from prefline.data.ingest import ingest

    v1 = ingest(write_jsonl(tmp_path / "a.jsonl", [pair(i) for i in range(10)]), "d", ledger)
    v2 = ingest(write_jsonl(tmp_path / "b.jsonl", [pair(i) for i in range(5, 15)]), "d", ledger)

    def adapter(name, version):
        return ledger.add_adapter(name=name, method="dpo", status="done", base_model="m", base_model_hash="m" * 64,
                                  dataset_id=version.dataset_id, dataset_hash=version.content_hash, config={}, seed=0)

    old, new, same = adapter("old", v1), adapter("new", v2), adapter("same", v2)
    runs = {name: make_run(ledger, scores([10] * 6, [0] * 6), adapter_id=a) for name, a in (("old", old), ("new", new), ("same", same))}
    note = ("candidate adapter new was trained on d@2, a major change from d@1: 67% of its pairs changed (major above 30%); "
            "the baseline adapter old was trained on d@1")
    assert compare_runs(ledger, runs["old"], runs["new"], POLICY).notes == [note]
    assert compare_runs(ledger, runs["same"], runs["new"], POLICY).notes == []  # both learnt from d@2
    base_model = make_run(ledger, scores([10] * 6, [0] * 6))
    assert compare_runs(ledger, base_model, runs["new"], POLICY).notes == [note.split("; ")[0]]

    runner, policy = CliRunner(), tmp_path / "p.yaml"
    policy.write_text("rules:\n  - metric: length_tokens\n    max_ratio: 1.3\n")
    shown = runner.invoke(app, ["gate", str(runs["old"]), str(runs["new"]), "--policy", str(policy)])
    assert shown.exit_code == 0 and f"note: {note}" in " ".join(shown.output.split())
    payload = json.loads(runner.invoke(app, ["gate", str(runs["old"]), str(runs["new"]), "--policy", str(policy), "--json"]).output)
    assert payload["notes"] == [note] and payload["verdict"] == "pass"
