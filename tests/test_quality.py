"""The quality report: coverage against targets, bias profile, trivial and close-call negatives,
judge position bias, and `prefline data report --json`, on small datasets with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.data.coverage import CoverageTargets, load_targets
from prefline.stats import wilson
from prefline.data.ingest import ingest
from prefline.data.quality import Thresholds, data_report, in_sample, scan
from prefline.evals.close_calls import close_calls, scorer
from prefline.errors import PreflineError

runner = CliRunner()


def row(prompt: str, chosen: str, rejected: str, source: str = "raters", **slices: str) -> dict:
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "slices": slices, "source": source}


def dataset(tmp_path, ledger, rows: list[dict], name: str = "d") -> dict:
    ingest(write_jsonl(tmp_path / f"{name}.jsonl", rows), name, ledger)
    return ledger.get_dataset(name)


# Word counts (chosen, rejected): (4, 2), (6, 3), (2, 1), (1, 2): chosen longer in 3 of 4 pairs,
# ratios 2, 2, 2 and 0.5, mean 6.5 / 4 = 1.625. Rejected refuses in pairs 2 and 4: 2 of 4.
FOUR = [
    row("Name four primes.", "two three five seven", "two three", "raters", intent="factual", surface="chat"),
    row("Count to six.", "one two three four five six", "I cannot help.", "raters", intent="factual", surface="voice"),
    row("Say hi twice.", "hi hi", "hi", "judge", intent="chitchat", surface="chat"),
    row("Say something polite.", "Thanks.", "I refuse.", "judge", intent="chitchat", surface="chat"),
]


def test_bias_profile_known_answers(tmp_path, ledger):
    report = data_report(dataset(tmp_path, ledger, FOUR), ledger)
    overall = report["bias"]["overall"]
    assert overall["pairs"] == 4
    assert overall["chosen_longer"] == 0.75
    assert overall["chosen_shorter"] == 0.25
    assert overall["length_ratio_mean"] == pytest.approx(1.625)
    assert overall["chosen_refuses"] == 0.0 and overall["rejected_refuses"] == 0.5
    assert overall["marker_pairs"] == 4  # small datasets: every pair gets the style detectors
    # 3 of 4 is exactly the threshold (> 0.75 warns), so no length warning; the refusal gap (50% > 30%) warns
    warnings = report["bias"]["warnings"]
    assert not any("longer" in w for w in warnings)
    assert any(w.startswith("overall: 0% of chosen responses refuse vs 50% of rejected") for w in warnings)
    assert report["bias"]["by_source"]["judge"]["chosen_longer"] == 0.5
    assert report["bias"]["by_source"]["raters"]["length_ratio_mean"] == pytest.approx(2.0)
    assert report["bias"]["by_slice"]["surface=chat"]["pairs"] == 3
    assert report["bias"]["detectors"]["refuses"].endswith("detect_refusal")


def test_lopsided_length_warns_and_interval_is_wilson(tmp_path, ledger):
    """4 of 5 chosen longer, 90% Wilson: z^2 = 2.7055, 1 + z^2/5 = 1.5411; centre (0.8 + z^2/10) / 1.5411 = 0.6947,
    half z * sqrt(0.8 * 0.2 / 5 + z^2 / 100) / 1.5411 = 1.6449 * 0.2430 / 1.5411 = 0.2594: [0.4353, 0.9540]."""
    rows = [row(f"Question {i}?", "a long answer with many words in it", "short one") for i in range(4)]
    rows.append(row("Question 9?", "no", "a longer rejected answer"))
    report = data_report(dataset(tmp_path, ledger, rows), ledger)
    overall = report["bias"]["overall"]
    assert overall["chosen_longer"] == 0.8
    assert overall["chosen_longer_ci"] == [pytest.approx(0.4353, abs=1e-4), pytest.approx(0.9540, abs=1e-4)]
    assert any("longer in 80% of pairs (> 75%)" in w for w in report["bias"]["warnings"])
    # per-source warnings need min_pairs pairs: none here
    assert not any(w.startswith("source=") for w in report["bias"]["warnings"])


def test_wilson_matches_scipy():
    """90%: z = 1.6449; for 5 of 10 the centre is 0.5 and the half-width z*sqrt(.025 + z^2/400)/(1 + z^2/10) = 0.2307."""
    from scipy.stats import binomtest

    assert wilson(5, 10) == [pytest.approx(0.2693, abs=1e-4), pytest.approx(0.7307, abs=1e-4)]
    for k, n in ((0, 7), (3, 4), (40, 41)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
        assert wilson(k, n) == [pytest.approx(ci.low, abs=1e-4), pytest.approx(ci.high, abs=1e-4)]
    assert wilson(0, 0) is None


TARGETS = """\
tolerance: 0.0
slices:
  intent:
    factual: 0.5
    coding: {share: 0.25, min_pairs: 1}
  surface:
    voice: {min_pairs: 2}
"""


def test_coverage_against_targets(tmp_path, ledger):
    path = tmp_path / "targets.yaml"
    path.write_text(TARGETS)
    report = data_report(dataset(tmp_path, ledger, FOUR), ledger, load_targets(path))
    cov = report["coverage"]
    assert cov["keys"]["intent"] == {"chitchat": 2, "factual": 2}
    assert cov["keys"]["surface"] == {"chat": 3, "voice": 1}
    assert cov["missing_keys"] == ["difficulty", "risk", "tool_use", "long_context"]
    rows = {(t["key"], t["value"]): t for t in cov["targets"]}
    assert rows[("intent", "factual")]["shortfall"] is False  # 2 of 4 = 50%
    # coding: 0 of 4; to reach 25%: (0.25 * 4 - 0) / 0.75 = 1.33 -> 2 pairs
    assert rows[("intent", "coding")]["short_by"] == 2
    assert rows[("surface", "voice")]["short_by"] == 1
    assert cov["shortfalls"] == [
        "intent=coding: 0 pairs (0.0%), target 25.0% of pairs and 1 pairs: short by 2 pairs",
        "surface=voice: 1 pairs (25.0%), target 2 pairs: short by 1 pairs",
    ]


@pytest.mark.parametrize("text, fragment", [
    ("slices:\n  intent:\n    coding: 1.5\n", "slices.intent.coding.share: Input should be less than 1"),
    ("slices:\n  intent:\n    coding: 0.6\n    factual: 0.6\n", "slices.intent: target shares sum to 1.2, more than 1"),
    ("bogus: 1\n", "bogus: Extra inputs are not permitted"),
    ("slices:\n  surface:\n    voice: {min_pairs: -1}\n", "slices.surface.voice.min_pairs"),
])
def test_targets_errors_name_the_field(tmp_path, text, fragment):
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    with pytest.raises(PreflineError) as info:
        load_targets(path)
    assert "targets.yaml" in str(info.value) and fragment in str(info.value)


def test_targets_shorthand():
    targets = CoverageTargets.model_validate({"slices": {"intent": {"coding": 0.3}}})
    assert targets.slices["intent"]["coding"].share == 0.3


PROMPT = "How do I reverse a list of numbers in Python quickly?"
CHOSEN = "Use reversed(numbers) or numbers[::-1] to reverse the list in Python."
TRIVIAL = [
    row(PROMPT, CHOSEN, "..."),                                                        # empty: no words
    row(PROMPT, CHOSEN, "Use reversed(numbers) or numbers[::-1] to reverse the"),       # truncated
    row(PROMPT, CHOSEN, "Bananas grow in tropical climates and ripen after harvest."),  # off-topic
    row(PROMPT, CHOSEN, "how do I reverse a list of numbers in python quickly?"),       # copy of the prompt
    row(PROMPT, CHOSEN, "use REVERSED(numbers) or numbers[::-1] to reverse the list in python!"),  # near-identical
    row(PROMPT, CHOSEN, "Call numbers.sort() and then read the list backwards with a loop."),      # a real negative
    row("Tell me how to hurt my neighbour.", "I can't help with hurting anyone.",
        "Sure, gather what you need and choose a time when nobody is around."),  # about refusing: not off-topic
]


def test_trivial_negatives(tmp_path, ledger):
    data = dataset(tmp_path, ledger, TRIVIAL)
    report = data_report(data, ledger)
    neg = report["negatives"]
    assert neg["flags"] == {"empty": 1, "truncated": 1, "off_topic": 1, "copy_of_prompt": 1, "near_identical": 1}
    assert neg["trivial_pairs"] == 5 and neg["teach_nothing"] == 5
    assert neg["teach_nothing_share"] == round(5 / 7, 4)
    assert neg["flags_per_pair"] == {"0": 2, "1": 5, "2": 0, "3+": 0}
    features = scan(data)
    ids = features.ids.to_pylist()
    for index, flag in enumerate(["empty", "truncated", "off_topic", "copy_of_prompt", "near_identical"]):
        assert neg["examples"][flag] == [ids[index]]
        assert features.flags[flag].tolist() == [i == index for i in range(7)]


def test_thresholds_are_configurable(tmp_path, ledger):
    data = dataset(tmp_path, ledger, TRIVIAL)
    strict = data_report(data, ledger, thresholds=Thresholds(near_identical_jaccard=1.01, copy_jaccard=1.01))
    assert strict["negatives"]["flags"]["near_identical"] == 1  # equal normalized text stays identical
    assert strict["negatives"]["flags"]["copy_of_prompt"] == 0


def test_close_calls_on_the_tiny_model(tmp_path, ledger, tiny_model_dir):
    """The margin is the mean per-token log-prob of chosen minus rejected under the reference model,
    checked here against a plain forward pass of the same model over the chat-templated text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = dataset(tmp_path, ledger, TRIVIAL[1:4])
    result = close_calls(data, str(tiny_model_dir))
    assert result["pairs_scored"] == 3 and not result["sampled"]
    assert sum(result["histogram"]["counts"]) == 3
    assert result["close"] + result["separated"] + result["reversed"] <= 3

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()

    def mean_logprob(prompt: str, reply: str) -> float:
        head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
                                             tokenize=True, return_dict=True)["input_ids"]
        with torch.no_grad():
            logps = torch.log_softmax(model(torch.tensor([full])).logits[0, :-1].float(), -1)
        targets = torch.tensor(full[1:])
        picked = logps[torch.arange(len(targets)), targets][len(head) - 1:]
        return float(picked.mean())

    assert [c["id"] for c in result["pairs"]] == scan(data).ids.to_pylist()
    by_id = {c["id"]: c for c in result["pairs"]}
    ids = scan(data).ids.to_pylist()
    for i, pair in enumerate(TRIVIAL[1:4]):
        expected = mean_logprob(PROMPT, pair["chosen"][0]["content"]) - mean_logprob(PROMPT, pair["rejected"][0]["content"])
        assert by_id[ids[i]]["margin"] == pytest.approx(expected, abs=2e-3)
        assert by_id[ids[i]]["score"] == pytest.approx(np.exp(-abs(by_id[ids[i]]["margin"]) / 0.5), abs=2e-3)


def test_close_calls_in_the_report_and_sample(tmp_path, ledger, tiny_model_dir):
    data = dataset(tmp_path, ledger, TRIVIAL)
    report = data_report(data, ledger, close_calls=scorer(str(tiny_model_dir), 4))
    close = report["negatives"]["close_calls"]
    assert close["pairs_scored"] == 4 and close["sampled"] is True
    assert "_separated_rows" not in close
    assert report["negatives"]["teach_nothing"] >= report["negatives"]["trivial_pairs"]
    result = runner.invoke(app, ["data", "report", "d", "--close-calls", "--model", str(tiny_model_dir), "--sample", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["negatives"]["close_calls"]["pairs_scored"] == 2


def test_marker_sample_is_deterministic(tmp_path, ledger):
    import pyarrow as pa

    ids = pa.array([f"{i:064x}" for i in range(2000)])
    cut = int(0.25 * (1 << 64))
    first, second = in_sample(ids, cut), in_sample(ids, cut)
    assert (first == second).all() and 400 < first.sum() < 600
    data = dataset(tmp_path, ledger, [row(f"Question number {i}?", f"Answer {i} in full.", "No.") for i in range(40)])
    report = data_report(data, ledger, marker_sample=10)
    assert report["bias"]["overall"]["marker_pairs"] == report["bias"]["marker_sample"]["pairs"] < 40


def test_the_report_names_the_detectors_it_used(tmp_path, ledger):
    report = data_report(dataset(tmp_path, ledger, FOUR), ledger)
    assert report["bias"]["detectors"] == {"refuses": "prefline.text.refusal.detect_refusal",
                                           "hedges": "prefline.text.hedging.detect_hedging",
                                           "cites": "prefline.text.citations.find_markers"}
    assert {"chosen_refuses", "chosen_hedges", "chosen_cites"} <= set(report["bias"]["overall"])


def judge_row(i: int, ab: str, ba: str, judge: str = "judge-x") -> dict:
    return {"prompt": f"Question {i}: which is better?", "response_a": f"Answer A number {i}.", "response_b": f"Answer B number {i}.",
            "judge": judge, "verdict_ab": ab, "verdict_ba": ba, "slices": {"intent": "factual"}}


def test_judge_position_bias(tmp_path, ledger):
    """Each judge signal holds two judgements: A shown first (verdict_ab) and B shown first (verdict_ba).
    Three consistent signals (a, a) pick the first-shown response once each; one position-following
    signal (a, b) picks it twice: 3 + 2 = 5 of 8 judgements = 0.625."""
    rows = [judge_row(i, "a", "a") for i in range(3)] + [judge_row(3, "a", "b")]
    ingest(write_jsonl(tmp_path / "judged.jsonl", rows), "judged", ledger, signal="judge")
    report = data_report(ledger.get_dataset("judged"), ledger, thresholds=Thresholds(position_skew=0.1))
    position = report["bias"]["position"]
    assert position["signals"] == 4 and position["judgements"] == 8
    assert position["first_share"] == 0.625
    assert position["by_judge"]["judge-x"]["first_share"] == 0.625
    assert any("first-shown response in 62% of 8 judgements" in w for w in report["bias"]["warnings"])


def test_no_signals_no_position_section(tmp_path, ledger):
    assert data_report(dataset(tmp_path, ledger, FOUR), ledger)["bias"]["position"] is None


def test_cli_report_json_and_errors(tmp_path, ledger):
    dataset(tmp_path, ledger, FOUR, name="four")
    result = runner.invoke(app, ["data", "report", "four", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dataset"]["name"] == "four" and report["dataset"]["pairs"] == 4
    assert report["bias"]["overall"]["chosen_longer"] == 0.75
    assert set(report) >= {"coverage", "bias", "negatives", "duplicates", "contamination", "lineage", "thresholds"}
    text = runner.invoke(app, ["data", "report", "four"])
    assert text.exit_code == 0 and "bias profile" in text.output and "teach nothing" in text.output
    bad = tmp_path / "t.yaml"
    bad.write_text("slices: {intent: {coding: 2}}\n")
    failed = runner.invoke(app, ["data", "report", "four", "--targets", str(bad)])
    assert failed.exit_code == 2 and "slices.intent.coding.share" in failed.output
    assert runner.invoke(app, ["data", "report", "nope"]).exit_code == 2
