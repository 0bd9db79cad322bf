"""Decision reports (comparison, gate decision, diagnosis, releases, capability summary) built from a
ledger of stored generations and scores whose outputs and slice names are hostile: every page is
self-contained, escapes everything, and renders in a real headless Chromium with no console message."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from test_reports_html import EVIL_SLICE, HOSTILE, _assert_escaped, _plots, browse

runner = CliRunner()
N = 24  # items per run: 12 per intent


def _item_slices(i: int) -> dict[str, str]:
    return {"intent": EVIL_SLICE if i % 2 else "factual", "surface": "voice" if i < 12 else "chat",
            "topic": HOSTILE[3] + HOSTILE[4] if i % 2 == 0 else "plain"}


def stored_run(ledger, lengths, refusals, adapter_id=None, hostile=False) -> int:
    """A finished run on one suite hash with the given per-item length_tokens and over_refusal."""
    from prefline.evals.run import summarize_scores as summarize

    run = ledger.add_run(suite_name="hostile", suite_hash="s" * 64, model="m", model_hash="m" * 64, backend="hf", decoding={}, seed=0,
                         scorers=["length", "refusal"], adapter_id=adapter_id)
    gens = [{"item_id": f"i{i:02d}", "item_hash": f"h{i}", "slices": _item_slices(i),
             "messages": [{"role": "user", "content": f"Repeat exactly: {HOSTILE[i % len(HOSTILE)]}"}],
             "output": (HOSTILE[(i // 3) % len(HOSTILE)] if hostile else "") + " word" * int(lengths[i]),
             "input_tokens": 1, "output_tokens": int(lengths[i]), "latency_s": 0.1} for i in range(N)]
    ledger.add_generations(run, gens)
    rows = [{"item_id": f"i{i:02d}", "metric": "length_tokens", "scorer": "length", "value": float(v), "evidence": {}} for i, v in enumerate(lengths)]
    rows += [{"item_id": f"i{i:02d}", "metric": "over_refusal", "scorer": "refusal", "value": float(v), "evidence": {}} for i, v in enumerate(refusals)]
    ledger.add_scores(run, rows)
    ledger.finish_run(run, summarize(rows, {g["item_id"]: g["slices"] for g in gens}))
    return run


def _adapter(ledger, dataset: str) -> int:
    row = ledger.get_dataset(dataset)
    return ledger.add_adapter(name=f"a-{row['name']}-{row['version']}", method="dpo", status="done", base_model="m", base_model_hash="m" * 64,
                              dataset_id=row["id"], dataset_hash=row["content_hash"], config={"beta": 0.1}, seed=0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Baseline adapter on tiny@1; candidate on tiny@2, whose chosen responses are all longer, and whose
    outputs grew by about 20 tokens in the voice slice (and refuse a little more, not significantly).
    The reports' data is built once: the paired bootstrap and the lineage scan take a while."""
    from prefline.data.ingest import ingest
    from prefline.ledger import Ledger
    from prefline.report.decision import capability_data, compare_data, diagnose_data

    root = tmp_path_factory.mktemp("decisions")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFLINE_HOME", str(root / "home"))
        mp.delenv("PREFLINE_DB_URL", raising=False)
        ledger = Ledger()
        ingest(write_jsonl(root / "p1.jsonl", [pair(i) for i in range(12)]), "tiny", ledger)
        longer = [pair(i, chosen=[{"role": "assistant", "content": "A much longer answer that goes on and on " * 3 + str(i)}]) for i in range(12)]
        ingest(write_jsonl(root / "p2.jsonl", longer), "tiny", ledger)
        base_lengths = [10 + i % 5 for i in range(N)]
        cand_lengths = [v + (20 + i % 3 if i < 12 else 0) for i, v in enumerate(base_lengths)]
        base = stored_run(ledger, base_lengths, [0] * N, _adapter(ledger, "tiny@1"))
        cand = stored_run(ledger, cand_lengths, [1 if i in (3, 15) else 0 for i in range(N)], _adapter(ledger, "tiny@2"), hostile=True)
        policy = root / "policy.yaml"
        policy.write_text(yaml.safe_dump({"name": "tight", "rules": [{"metric": "length_tokens", "max_ratio": 1.3},
                                                                     {"metric": "over_refusal", "max_increase": 0.05}],
                                          "slice_keys": ["intent", "surface", "topic"], "min_items": 10}))
        compared = compare_data(ledger, base, cand, policy=str(policy))
        diagnosed = diagnose_data(ledger, base, cand)
        changed = capability_data(ledger, base, cand)
    return {"base": base, "cand": cand, "policy": str(policy), "url": ledger.url, "compare": compared, "diagnose": diagnosed,
            "capability": changed}


@pytest.fixture
def story(built, monkeypatch):
    from prefline.ledger import Ledger

    monkeypatch.setenv("PREFLINE_DB_URL", built["url"])
    return {**built, "ledger": Ledger(built["url"])}


def test_compare_and_gate_report_data(story):
    from prefline.gate.compare import compare_runs
    from prefline.config import load_policy
    from prefline.report.decision import gate_data, heatmap

    data = story["compare"]
    gate = data["gate"]
    assert data["decision"] is None and gate["verdict"] == "fail"
    failing = {(c["metric"], c["slice"]) for c in gate["checks"] if c["status"] == "fail"}
    assert ("length_tokens", "surface=voice") in failing and ("length_tokens", "surface=chat") not in failing
    heat = heatmap(gate, data["comparison"])
    assert len(heat["cells"]) == len(gate["checks"])
    assert {c["status"] for c in heat["cells"]} >= {"fail", "pass"}
    # the diagnosis blames the data's length bias for the voice regression
    d = data["diagnosis"]
    assert d["findings"][0]["metric"] == "length_tokens" and d["findings"][0]["slice"] == "surface=voice"
    assert any(c["change"] == "chosen_longer" for c in d["causes"])
    json.dumps(data, default=str)

    recorded = compare_runs(story["ledger"], story["base"], story["cand"], load_policy(story["policy"]))
    stored = gate_data(story["ledger"], recorded.decision_id)
    assert stored["decision"]["id"] == recorded.decision_id and stored["gate"]["verdict"] == "fail"
    assert [c["status"] for c in stored["gate"]["checks"]] == [c["status"] for c in gate["checks"]]


def test_the_report_bootstraps_the_comparison_once_for_its_table_and_its_diagnosis(story, monkeypatch):
    """The comparison and the diagnosis in a report's data are what ``compare`` and ``diagnose`` give on their
    own, figure for figure, while the report pairs and bootstraps the two runs once, not once for each."""
    from prefline.gate import comparison as comparison_mod
    from prefline.gate import diagnose as diagnose_mod
    from prefline.gate.comparison import compare, json_ready
    from prefline.gate.diagnose import diagnose
    from prefline.report.decision import _analysis

    ledger, base, cand = story["ledger"], story["base"], story["cand"]
    alone = {"comparison": compare(ledger, base, cand).as_dict(), "diagnosis": json_ready(diagnose(ledger, base, cand).as_dict())}
    assert story["compare"]["comparison"] == alone["comparison"] and story["compare"]["diagnosis"] == alone["diagnosis"]
    assert story["diagnose"]["diagnosis"] == alone["diagnosis"]

    calls = []
    real = comparison_mod.compare_paired
    for module in (comparison_mod, diagnose_mod):  # diagnose holds its own reference to the function
        monkeypatch.setattr(module, "compare_paired", lambda *a, **k: calls.append(1) or real(*a, **k))

    again = _analysis(ledger, base, cand, False, 5, 3, 0.05)
    assert len(calls) == 1
    assert again["comparison"] == alone["comparison"] and again["diagnosis"] == alone["diagnosis"]
    with pytest.raises(ValueError, match="other settings"):
        diagnose(ledger, base, cand, samples=500, compared=comparison_mod.compare_with_data(ledger, base, cand))


def test_capability_sentences_from_the_numbers(story):
    from prefline.report.decision import sentence

    cap = story["compare"]["capability"]
    style = {s["metric"]: s for s in cap["behaves"]["Style, refusal and voice"]}
    assert style["length_tokens"]["moved"] and style["length_tokens"]["worse"]
    assert "rose" in style["length_tokens"]["sentence"] and "worse" in style["length_tokens"]["sentence"]
    assert "no detectable change" in style["over_refusal"]["sentence"]  # 2 of 24 items: the interval spans zero
    assert cap["knows"] == [] and "not measured" in cap["knows_note"]
    assert cap["headline"] == ["How it behaves: 1 of 2 measure(s) changed detectably; worse in response length (tokens).",
                               "What it knows: not measured on this suite."]
    assert story["capability"]["capability"] == cap  # the stakeholders' page says what the comparison report says
    # hand-worked: a share that rose 0.10 -> 0.30 with interval [0.05, 0.35]
    row = {"metric": "over_refusal", "baseline": 0.1, "candidate": 0.3, "diff": 0.2, "ci_low": 0.05, "ci_high": 0.35, "n": 40, "direction": "lower"}
    assert sentence(row) == ("Refusing requests it should answer rose: 10% → 30%, n=40; change +20.0 points "
                             "(90% interval +5.0 to +35.0) — worse.")
    assert sentence({**row, "ci_low": -0.01}).startswith("Refusing requests it should answer: no detectable change (10% → 30%")


def test_decision_reports_escape_hostile_text(story):
    from prefline.report.decision import decision_html, diagnose_html

    data = story["compare"]
    page = decision_html(data)
    _assert_escaped(page)
    assert "{{ 7*7 }}" in page and "&lt;/textarea&gt;" in page
    assert len(re.findall(r'<rect class="cell', page)) == len(data["gate"]["checks"])
    page = diagnose_html(story["diagnose"])
    _assert_escaped(page)
    from prefline.report.decision import capability_html, capability_markdown

    page = capability_html(story["capability"])
    assert len(re.findall(r"<script\b", page)) == 1 and "<img" not in page
    md = capability_markdown(story["capability"], "c.html")
    assert "- Response length (tokens) rose: 11.9 → 22.4" in md and "Full report: `c.html`" in md


def test_markdown_fits_a_pull_request_comment(story):
    from prefline.report.decision import decision_markdown, diagnose_markdown

    md = decision_markdown(story["compare"], "out/gate.html")
    assert md.startswith("### ❌ Gate: **fail**")
    assert "| reliability | fail |" in md and "**Failing checks (" in md
    assert "length\\_tokens max\\_ratio 1.3 in surface=voice" in md
    assert "chosen\\_longer" in md  # the likely cause next to the top regression
    assert "Full report: `out/gate.html`" in md
    assert "<script>" not in md and EVIL_SLICE not in md
    md = diagnose_markdown(story["diagnose"])
    assert "**Likely causes**" in md and "length\\_tokens" in md


def test_cli_report_compare_gate_diagnose(story, tmp_path):
    out = tmp_path / "c.html"
    result = runner.invoke(app, ["report", "compare", str(story["base"]), str(story["cand"]), "--policy", story["policy"],
                                 "--html", str(out), "--md", str(tmp_path / "c.md")])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!doctype html>") and "Full report:" in (tmp_path / "c.md").read_text()
    gate = runner.invoke(app, ["gate", str(story["base"]), str(story["cand"]), "--policy", story["policy"], "--json"])
    decision = json.loads(gate.stdout)["decision_id"]
    result = runner.invoke(app, ["report", "gate", str(decision), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["decision"]["id"] == decision
    result = runner.invoke(app, ["report", "capability", str(story["base"]), str(story["cand"]), "--md", str(tmp_path / "cap.md")])
    assert result.exit_code == 0 and (tmp_path / "cap.md").read_text().startswith("### What changed")
    result = runner.invoke(app, ["report", "diagnose", str(story["base"]), str(story["cand"]), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["diagnosis"]["findings"]
    bad = runner.invoke(app, ["report", "gate", "999", "--html", str(out)])
    assert bad.exit_code == 2 and "unknown gate decision 999" in bad.output
    bad = runner.invoke(app, ["report", "gate", "abc", "--html", str(out)])
    assert bad.exit_code == 2 and "must be an id" in bad.output


def test_decision_reports_in_a_real_browser(story, tmp_path):
    from prefline.report.decision import capability_html, decision_html, diagnose_html

    shots = tmp_path / "screenshots"
    shots.mkdir()
    data = story["compare"]
    pages = {"gate": decision_html(data), "diagnose": diagnose_html(story["diagnose"]), "capability": capability_html(story["capability"])}
    for kind, html in pages.items():
        page = tmp_path / f"{kind}.html"
        page.write_text(html, encoding="utf-8")
        dom = browse(page, shots / f"{kind}.png", height=3000)
        assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]
        assert "pwned" not in dom.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "<textarea" not in dom and "<img src=\"x\"" not in dom
        if kind == "capability":
            assert "Response length (tokens) rose" in dom and "no detectable change" in dom
            continue
        plots = _plots(dom)
        assert plots and all(len(re.findall(r"<(path|rect)\b", p)) > 5 for p in plots), kind
        if kind == "gate":
            assert len(re.findall(r'<rect class="cell', dom)) == len(data["gate"]["checks"])


def test_write_functions_for_other_commands(story, tmp_path):
    from prefline.report import write_gate_report
    from prefline.gate.compare import compare_runs
    from prefline.config import load_policy

    decision = compare_runs(story["ledger"], story["base"], story["cand"], load_policy(story["policy"])).decision_id
    written = write_gate_report(story["ledger"], decision, tmp_path / "g.html", tmp_path / "g.md")
    assert set(written) == {"html", "markdown"} and written["html"].read_text().startswith("<!doctype html>")
    assert f"Full report: `{tmp_path / 'g.html'}`" in written["markdown"].read_text()


def test_number_cells_keep_text_values_as_they_are():
    """A diagnosed cause's old and new value may be text (a method, a dataset): shown as is, numbers rounded."""
    from prefline.report.html import num

    assert num("dpo") == "dpo" and num("demo@2") == "demo@2"
    assert num(0.12345) == "0.123" and num(0.5, 2) == "0.50" and num(7) == "7" and num(None) == "–"
