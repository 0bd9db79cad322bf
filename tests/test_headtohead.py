"""Head-to-head win rates between two stored runs, under LLM and rule judges."""

from __future__ import annotations

import pytest

from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals.backends import HFBackend
from prefline.evals.headtohead import head_to_head
from prefline.evals.judges import JUDGE_PROMPT_VERSION, Judgment, LLMJudge, parse_verdict
from prefline.models import resolve_model


def make_run(ledger, outputs: dict[str, tuple[str, int]], suite_hash="s" * 64) -> int:
    run = ledger.add_run(suite_name="t", suite_hash=suite_hash, model="m", model_hash="m" * 64, backend="hf",
                         decoding={}, seed=0, scorers=[])
    ledger.add_generations(run, [{"item_id": i, "item_hash": i, "slices": {"surface": "voice" if i < "i06" else "chat"},
                                  "messages": [{"role": "user", "content": f"question {i}"}], "output": text,
                                  "input_tokens": 3, "output_tokens": tokens, "latency_s": 0.0}
                                 for i, (text, tokens) in outputs.items()])
    ledger.finish_run(run, {})
    return run


class PrefersShorter:
    """A rule judge with a known answer: the shorter text wins, in whichever position it is shown."""

    def describe(self):
        return {"kind": "rule", "rule": "shorter wins"}

    def judge(self, prompts, candidate, baseline):
        def verdict(a, b):
            return "A" if len(a) < len(b) else "B" if len(b) < len(a) else "tie"

        return [Judgment(first=verdict(c, b), second=verdict(b, c)) for c, b in zip(candidate, baseline)]


class AlwaysA:
    def describe(self):
        return {"kind": "rule", "rule": "always A"}

    def judge(self, prompts, candidate, baseline):
        return [Judgment(first="A", second="A") for _ in prompts]


ITEMS = [f"i{n:02d}" for n in range(12)]


def test_win_rates_and_slices(ledger):
    base = make_run(ledger, {i: ("x" * 20, 20) for i in ITEMS})
    # the candidate is shorter on 9 items, longer on 3
    cand = make_run(ledger, {i: ("x" * (10 if n < 9 else 30), 10 if n < 9 else 30) for n, i in enumerate(ITEMS)})
    result = head_to_head(ledger, base, cand, PrefersShorter(), samples=200)
    overall = result["slices"]["overall"]
    assert overall["n"] == 12 and overall["raw"]["estimate"] == 0.75 and overall["flip_rate"] == 0.0
    # the judge follows length exactly: controlling for length removes most of the advantage
    assert overall["length_controlled"]["estimate"] < overall["raw"]["estimate"]
    assert "warning" in overall
    assert result["slices"]["surface=voice"]["n"] == 6 and result["slices"]["surface=voice"]["raw"]["estimate"] == 1.0
    assert "length_controlled" not in result["slices"]["surface=voice"]  # too few items to fit
    first = result["items"][0]
    assert first["verdicts"] == ["A", "B"] and first["win"] == 1.0 and first["length_diff"] == -10


def test_position_bias_counts_as_ties(ledger):
    base = make_run(ledger, {i: ("b", 1) for i in ITEMS})
    cand = make_run(ledger, {i: ("c", 1) for i in ITEMS})
    result = head_to_head(ledger, base, cand, AlwaysA(), samples=200)
    assert result["slices"]["overall"]["flip_rate"] == 1.0
    assert result["slices"]["overall"]["raw"]["estimate"] == 0.5


def test_runs_on_different_suites_are_refused(ledger):
    base = make_run(ledger, {i: ("b", 1) for i in ITEMS})
    other = make_run(ledger, {i: ("c", 1) for i in ITEMS}, suite_hash="z" * 64)
    with pytest.raises(PreflineError, match="different suites"):
        head_to_head(ledger, base, other, PrefersShorter())


@pytest.mark.parametrize("reply, verdict", [("A", "A"), ("b", "B"), ("Answer B is better.", "B"), ("It's a tie.", "tie"),
                                            ("**A**", "A"), ("I cannot decide", None), ("", None)])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_llm_judge_on_a_real_backend(ledger, tiny_model_dir):
    base = make_run(ledger, {i: ("Paris.", 2) for i in ITEMS[:3]})
    cand = make_run(ledger, {i: ("The capital is Paris.", 5) for i in ITEMS[:3]})
    backend = HFBackend(resolve_model(str(tiny_model_dir)), DecodingConfig(max_new_tokens=4, batch_size=8))
    judge = LLMJudge(backend, label="tiny")
    result = head_to_head(ledger, base, cand, judge, samples=100)
    assert result["judge"]["prompt_version"] == JUDGE_PROMPT_VERSION and "{request}" in result["judge"]["user_template"]
    assert result["slices"]["overall"]["n"] == 3
    for item in result["items"]:
        assert len(item["judge_said"]) == 2  # both orders, kept as evidence
        assert set(item["verdicts"]) <= {"A", "B", "tie"}


def test_several_candidates_are_fitted_jointly_and_stored(ledger):
    from prefline.evals.preference_eval import win_rates_eval

    base = make_run(ledger, {i: ("x" * 20, 20) for i in ITEMS})
    shorter = make_run(ledger, {i: ("x" * (10 if n < 9 else 30), 10 if n < 9 else 30) for n, i in enumerate(ITEMS)})
    longer = make_run(ledger, {i: ("x" * (30 if n < 6 else 12), 30 if n < 6 else 12) for n, i in enumerate(ITEMS)})
    result = win_rates_eval(ledger, base, [str(shorter), str(longer)], PrefersShorter(), samples=100)
    assert [c["candidate_run"] for c in result["candidates"]] == [shorter, longer]
    assert [c["slices"]["overall"]["raw"]["estimate"] for c in result["candidates"]] == [0.75, 0.5]
    assert result["length_coefficient"] < 0  # the rule judge prefers shorter answers
    joint = [c["joint"] for c in result["candidates"]]
    assert all(0 <= j["length_controlled"]["estimate"] <= 1 and j["with_runs"] == [shorter, longer] for j in joint)
    # controlling for length removes most of the shorter candidate's advantage
    assert joint[0]["length_controlled"]["estimate"] < 0.75
    stored = ledger.preference_evals()
    assert [e["kind"] for e in stored] == ["win_rate", "win_rate"] and stored[0]["summary"]["joint"]["name"] == f"run {shorter}"
    with pytest.raises(PreflineError, match="more than once"):
        win_rates_eval(ledger, base, [str(shorter), str(shorter)], PrefersShorter())


def test_cli_winrate_with_several_candidates(ledger, tiny_model_dir):
    import json

    from typer.testing import CliRunner

    from prefline.cli import app

    base = make_run(ledger, {i: ("the baseline answer", 4) for i in ITEMS})
    first = make_run(ledger, {i: ("a short one", 3 if n % 2 else 6) for n, i in enumerate(ITEMS)})
    second = make_run(ledger, {i: ("a much longer answer than that", 7 if n % 3 else 2) for n, i in enumerate(ITEMS)})
    runner = CliRunner()
    args = ["preference", "winrate", str(base), str(first), str(second), "--judge", "llm", "--model", str(tiny_model_dir)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [c["candidate_run"] for c in payload["candidates"]] == [first, second]
    assert all(c["joint"]["with_runs"] == [first, second] for c in payload["candidates"])
    assert isinstance(payload["length_coefficient"], float)
    assert [e["candidate_run_id"] for e in ledger.preference_evals()] == [first, second]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "length-controlled, joint" in table.stdout and "shared length coefficient" in table.stdout
    again = runner.invoke(app, ["preference", "winrate", str(base), str(first), str(first), "--judge", "llm", "--model", str(tiny_model_dir)])
    assert again.exit_code == 2 and "given more than once" in again.output
