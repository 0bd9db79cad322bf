"""The run and adapter reports: built from a real ledger (tiny model trained with DPO and drift
probes, evaluated on a suite whose prompts and slice names are hostile), rendered to one
self-contained page each, and loaded in a real headless Chromium that must log nothing, run
none of the hostile text, and draw every plot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.report.adapter import adapter_data, adapter_html, adapter_markdown
from prefline.report.data_html import render_html as data_html
from prefline.report.run import run_data, run_html, run_markdown

runner = CliRunner()

# Each payload marks the page (a body attribute or the title) if it ever runs.
HOSTILE = [
    "<script>document.body.setAttribute('data-pwned','script')</script>",
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','onerror')\">",
    "</textarea><svg onload=\"document.body.setAttribute('data-pwned','svg')\"></svg>",
    "{{ 7*7 }}{% raw %}{% endraw %}{# c #}${7*7}",
    "<b><i>unclosed <table><tr><td>broken</div></pre>&amp;&",
    "\"><a href=\"javascript:document.body.setAttribute('data-pwned','href')\">x</a><!--",
]
EVIL_SLICE = "<script>document.title='pwned'</script>"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_dir):
    """A ledger holding: a dataset, a DPO adapter with step metrics and drift probes, and two runs
    (base and base + adapter) on a suite with hostile prompts and slice values."""
    from prefline.config import DecodingConfig, TrainConfig
    from prefline.data.ingest import ingest
    from prefline.evals.run import run_eval
    from prefline.evals.suite import load_suite
    from prefline.ledger import Ledger
    from prefline.train.run import train

    root = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFLINE_HOME", str(root / "home"))
        mp.delenv("PREFLINE_DB_URL", raising=False)
        mp.setenv("HF_HUB_OFFLINE", "1")
        ledger = Ledger()
        suite = root / "suite"
        suite.mkdir()
        (suite / "suite.yaml").write_text("name: hostile\nversion: 2\nitems: items.jsonl\nscorers: [length, refusal, hedging]\n")
        items = [{"id": f"h-{i}", "messages": [{"role": "user", "content": f"Repeat exactly: {text}"}],
                  "slices": {"intent": EVIL_SLICE if i % 2 else "factual", "surface": "voice" if i < 3 else "chat"},
                  "should_refuse": False} for i, text in enumerate(HOSTILE)]
        write_jsonl(suite / "items.jsonl", items)
        ingest(write_jsonl(root / "pairs.jsonl", [pair(i) for i in range(8)]), "tiny", ledger)
        config = TrainConfig(max_steps=4, batch_size=2, learning_rate=1e-2, max_length=64, bf16=False, gradient_checkpointing=False,
                             probe_every=2, probe_items=3, probe_max_new_tokens=8, probe_suite=str(suite))
        train("dpo", "tiny", "a1", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
        decoding = DecodingConfig(max_new_tokens=8, batch_size=8)
        loaded = load_suite(str(suite))
        base = run_eval(loaded, ledger, model_spec=str(tiny_model_dir), decoding=decoding, show_progress=False)
        cand = run_eval(loaded, ledger, adapter="a1", decoding=decoding, show_progress=False)
    return {"root": root, "url": ledger.url, "base": base, "cand": cand}


@pytest.fixture
def reports(built, monkeypatch):
    from prefline.ledger import Ledger

    monkeypatch.setenv("PREFLINE_DB_URL", built["url"])
    ledger = Ledger(built["url"])
    run = run_data(ledger, built["cand"])
    # model outputs are untrusted: put every hostile string into a response, as a model could
    for item, text in zip(run["export"]["items"], HOSTILE):
        item["output"] = text
    adapter = adapter_data(ledger, "a1")
    for probe in adapter["probes"]:
        for output, text in zip(probe["outputs"], HOSTILE * 2):
            output["output"] = text
    adapter["probes"][0]["outputs"][0]["output"] = HOSTILE[0]
    return {"run": run, "adapter": adapter, "ledger": ledger}


def test_run_report_data_names_what_ran(reports, built):
    run = reports["run"]
    c = run["context"]
    assert c["adapter"]["name"] == "a1" and c["adapter"]["method"] == "dpo"
    assert c["suite"] == {**c["suite"], "name": "hostile", "version": 2}
    assert (c["dataset"]["name"], c["dataset"]["version"], c["dataset"]["pairs"]) == ("tiny", 1, 8)
    style = {m["metric"]: m for m in run["sections"]["style"]}
    assert {"length_tokens", "over_refusal", "hedging_rate"} <= set(style)
    summary = run["export"]["summary"]
    assert style["length_tokens"]["mean"] == summary["length_tokens"]["overall"]["mean"]
    assert {s["slice"] for s in run["slices"]} == {f"intent={EVIL_SLICE}", "intent=factual", "surface=voice", "surface=chat"}
    json.dumps(run, default=str)  # the report's data is JSON


def test_adapter_report_data_has_curves_and_probes(reports):
    data = reports["adapter"]
    assert [s["step"] for s in data["steps"]] == [1, 2, 3, 4]
    assert [p["step"] for p in data["probes"]] == [0, 2, 4]
    from prefline.report.adapter import curves

    found = curves(data["steps"])
    assert set(found) == {"loss", "margin", "accuracy"}
    assert found["loss"]["values"][0] == pytest.approx(0.6931, abs=1e-3)  # first DPO step: policy == reference


def _assert_escaped(html: str) -> None:
    for text in HOSTILE + [EVIL_SLICE]:
        assert text not in html or "<" not in text  # markup never reaches the page as markup
    assert "document.body.setAttribute(&#39;data-pwned&#39;,&#39;script&#39;)" in html
    scripts = re.findall(r"<script\b", html)
    assert len(scripts) == 1  # the page's own search script, nothing else
    offline = html.replace("http://www.w3.org/", "")  # SVG namespace names, never fetched
    assert "http://" not in offline and "https://" not in offline


def test_reports_escape_hostile_text(reports):
    page = run_html(reports["run"])
    _assert_escaped(page)
    assert len(_plots(page)) == 1
    assert "&lt;/textarea&gt;" in page
    # template syntax in data is printed, never evaluated
    assert "{{ 7*7 }}" in page
    _assert_escaped(adapter_html(reports["adapter"]))


def test_markdown_summaries(reports, tmp_path):
    md = run_markdown(reports["run"], "out/run.html")
    assert "| layer | metric | better | mean | 90% interval | n |" in md
    assert "length\\_tokens" in md and "Full report: `out/run.html`" in md
    assert "a1" in md and "hostile v2" in md
    md = adapter_markdown(reports["adapter"])
    assert "| loss | loss | 0.6931" in md or "| loss | loss | 0.693" in md


def test_cli_writes_reports_and_json(reports, built, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "run", str(built["cand"]), "--html", str(out), "--md", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!doctype html>") and (tmp_path / "r.md").read_text().startswith("### Eval run")
    result = runner.invoke(app, ["report", "adapter", "a1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["adapter"]["name"] == "a1"
    nothing = runner.invoke(app, ["report", "run", str(built["cand"])])
    assert nothing.exit_code == 2 and "give --html FILE" in nothing.output
    missing = runner.invoke(app, ["report", "run", str(built["cand"]), "--html", str(tmp_path / "no" / "x.html")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    unknown = runner.invoke(app, ["report", "adapter", "nope", "--html", str(out)])
    assert unknown.exit_code == 2 and "unknown adapter" in unknown.output


# --- a real browser ------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium); CI runs this test")
    return browser


def browse(page: Path, screenshot: Path | None = None, fragment: str = "", height: int = 2400) -> str:
    """Load ``page`` in headless Chromium; fail on any console message; return the DOM after scripts ran.
    With ``screenshot``, also save a 1280-pixel-wide PNG of the page."""
    browser = _chromium()
    url = page.as_uri() + fragment
    profile = page.parent / f"profile-{page.stem}"
    out = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "<html" in out.stdout, out.stderr[-2000:]
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    if screenshot is not None:
        shot = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={screenshot}",
                               f"--window-size=1280,{height}", url], capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    return out.stdout


def _plots(dom: str) -> list[str]:
    return re.findall(r'<svg[^>]*class="plot".*?</svg>', dom, flags=re.S)


def test_reports_in_a_real_browser(reports, tmp_path, ledger):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    pages = {"run": run_html(reports["run"]), "adapter": adapter_html(reports["adapter"])}
    for kind, html in pages.items():
        page = tmp_path / f"{kind}.html"
        page.write_text(html, encoding="utf-8")
        dom = browse(page, shots / f"{kind}.png")
        assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]  # no hostile handler ran
        assert "<title>" in dom and "pwned" not in dom.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "<textarea" not in dom and "<img src=\"x\"" not in dom
        plots = _plots(dom)
        assert plots and all(len(re.findall(r"<path\b", p)) > 5 for p in plots), kind
    run_dom = browse(tmp_path / "run.html")
    assert len(_plots(run_dom)) == 1  # style: the share metrics with intervals
    rows = re.findall(r'<tr( hidden="")?>\s*<td><code>h-\d', run_dom)
    assert len(rows) == len(HOSTILE) and not any(hidden for hidden in rows)
    assert f'{len(HOSTILE)} of {len(HOSTILE)} shown' in run_dom
    adapter_dom = browse(tmp_path / "adapter.html")
    assert len(_plots(adapter_dom)) == 5  # loss, margin, accuracy, probe length, probe refusal


def test_search_filters_items_in_the_browser(reports, tmp_path):
    page = tmp_path / "run.html"
    page.write_text(run_html(reports["run"]), encoding="utf-8")
    dom = browse(page, fragment="#q=surface%3Dvoice")
    item_table = dom.split('id="item-table"', 1)[1].split("</table>", 1)[0]
    shown = re.findall(r'<tr>\s*<td><code>(h-\d)', item_table)
    assert shown == ["h-0", "h-1", "h-2"]  # the voice items; the others are hidden
    assert "3 of 6 shown" in dom


def test_data_report_shares_the_base(tmp_path, ledger):
    from conftest import write_jsonl as write
    from prefline.data.ingest import ingest
    from prefline.data.quality import data_report

    rows = [{"prompt": f"Question {i} about rivers?", "chosen": f"A long answer number {i} about rivers and deltas.",
             "rejected": "Short.", "slices": {"intent": EVIL_SLICE}} for i in range(4)]
    ingest(write(tmp_path / "p.jsonl", rows), "d", ledger)
    html = data_html(data_report(ledger.get_dataset("d"), ledger))
    assert 'class="kind"' in html and "Generated by prefline" in html
    assert EVIL_SLICE not in html
    page = tmp_path / "data.html"
    page.write_text(html, encoding="utf-8")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    dom = browse(page, shots / "data.png")
    assert "pwned" not in dom.split("<title>", 1)[1].split("</title>", 1)[0]
    assert len(_plots(dom)) == 2  # coverage, length-ratio histogram
