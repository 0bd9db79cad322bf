"""prefline compare: every metric in every slice, paired, with intervals, tests and adjusted p-values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sp
from typer.testing import CliRunner

from prefline.cli import app
from prefline.errors import PreflineError
from prefline.gate.comparison import compare


def make_run(ledger, items: dict[str, dict[str, str]], values: dict[str, dict[str, float | None]], suite_hash="s" * 64,
             item_hash=lambda i: i, scorers=("length", "refusal")) -> int:
    """A finished run whose per-item metric values are given directly."""
    run = ledger.add_run(suite_name="t", suite_hash=suite_hash, model="m", model_hash="m" * 64, backend="hf",
                         decoding={}, seed=0, scorers=list(scorers))
    ledger.add_generations(run, [{"item_id": i, "item_hash": item_hash(i), "slices": s, "messages": [], "output": "",
                                  "input_tokens": 1, "output_tokens": 1, "latency_s": 0.0} for i, s in items.items()])
    ledger.add_scores(run, [{"item_id": i, "metric": m, "scorer": "x", "value": v, "evidence": {}}
                            for m, per_item in values.items() for i, v in per_item.items() if i in items])
    ledger.finish_run(run, {})
    return run


ITEMS = {f"i{k:02d}": {"risk": "harmful" if k < 8 else "none"} for k in range(20)}
BASE_LEN = {i: 10.0 + k for k, i in enumerate(ITEMS)}
CAND_LEN = {i: 10.0 + k + (5 if k >= 8 else 0) for k, i in enumerate(ITEMS)}  # the benign items grew by 5
BASE_REF = {i: 0.0 for i in ITEMS}
CAND_REF = {i: 1.0 if k in (8, 9, 10, 11, 12, 13) else 0.0 for k, i in enumerate(ITEMS)}  # six benign items now refused


@pytest.fixture
def runs(ledger):
    base = make_run(ledger, ITEMS, {"length_tokens": BASE_LEN, "over_refusal": BASE_REF})
    cand = make_run(ledger, ITEMS, {"length_tokens": CAND_LEN, "over_refusal": CAND_REF})
    return base, cand


def test_rows_per_metric_and_slice_with_the_right_test(ledger, runs):
    result = compare(ledger, *runs, samples=500)
    assert {(r.metric, r.slice) for r in result.rows} == {(m, s) for m in ("length_tokens", "over_refusal")
                                                          for s in ("overall", "risk=harmful", "risk=none")}
    grew = result.row("length_tokens", "risk=none")
    # 12 benign items, each exactly 5 tokens longer: every resample agrees
    assert (grew.n, grew.diff, grew.ci_low, grew.ci_high) == (12, 5.0, pytest.approx(5.0), pytest.approx(5.0))
    assert grew.test == "wilcoxon" and grew.p_value == pytest.approx(sp.wilcoxon([5.0] * 12).pvalue)
    assert grew.direction == "lower" and grew.axis == "reliability" and grew.worse
    same = result.row("length_tokens", "risk=harmful")
    assert same.diff == 0 and same.p_value == 1.0
    refused = result.row("over_refusal", "overall")
    # six items went 0 -> 1, none back: exact McNemar p = 2 * (1/2)^6 = 0.03125
    assert refused.test == "mcnemar" and refused.p_value == pytest.approx(0.03125)
    assert refused.baseline == 0 and refused.candidate == pytest.approx(6 / 20) and refused.axis == "safety"
    # the family is the six cells: BH multiplies the smallest p by 6 / its rank
    ps = np.array([r.p_value for r in result.rows])
    order = np.argsort(ps)
    expected = np.minimum.accumulate((ps[order] * 6 / np.arange(1, 7))[::-1])[::-1]
    assert [r.p_adjusted for r in np.array(result.rows)[order]] == pytest.approx(np.minimum(expected, 1))
    holm = compare(ledger, *runs, samples=500, correction="holm")
    assert holm.row("over_refusal", "overall").p_adjusted >= refused.p_adjusted


def test_different_suites_are_refused_unless_common_items(ledger, runs):
    base, _ = runs
    changed = lambda i: i + ("x" if i == "i00" else "")  # noqa: E731  one item's text changed
    items = {**ITEMS, "new": {"risk": "none"}}
    other = make_run(ledger, items, {"length_tokens": {**CAND_LEN, "new": 3.0}, "over_refusal": CAND_REF},
                     suite_hash="z" * 64, item_hash=changed)
    with pytest.raises(PreflineError, match="different suites"):
        compare(ledger, base, other)
    result = compare(ledger, base, other, common_items=True, samples=200)
    assert result.items == 19 and result.excluded_items == 2  # i00 changed, "new" added
    assert "19 items both suites hold unchanged" in result.scope and "2 item(s)" in result.scope
    runner = CliRunner()
    refused = runner.invoke(app, ["compare", str(base), str(other)])
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1 and "different suites" in refused.output
    shown = runner.invoke(app, ["compare", str(base), str(other), "--common-items", "--samples", "200"])
    assert shown.exit_code == 0 and "(--common-items)" in shown.output
    payload = json.loads(runner.invoke(app, ["compare", str(base), str(other), "--common-items", "--json", "--samples", "200"]).output)
    assert payload["common_items"] is True and "--common-items" in payload["scope"] and payload["format_version"] == 1


def test_cli_table_and_json(ledger, runs):
    runner = CliRunner()
    table = runner.invoke(app, ["compare", *map(str, runs), "--samples", "300", "--seed", "4"])
    assert table.exit_code == 0, table.output
    assert "300 bootstrap resamples, seed 4; p adjusted by bh" in table.output
    payload = json.loads(runner.invoke(app, ["compare", *map(str, runs), "--json", "--correction", "holm"]).output)
    assert payload["correction"] == "holm" and payload["samples"] == 2000 and len(payload["rows"]) == 6
    bad = runner.invoke(app, ["compare", *map(str, runs), "--correction", "fdr"])
    assert bad.exit_code == 2 and bad.output.strip() == "error: unknown correction 'fdr': use one of bh, holm"
