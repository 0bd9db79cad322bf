"""The dataset report as HTML: self-contained (plots inline, only the page's own script), user text escaped,
and rendered by a real headless Chromium whose DOM holds the sections and the numbers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.data.ingest import ingest
from prefline.data.quality import data_report
from prefline.evals.suite import freeze_suite, load_suite
from prefline.report.data_html import render_html

runner = CliRunner()
EVIL = "<script>alert('pwned')</script>"
SECTIONS = ("Coverage", "Bias profile", "Informative negatives", "Duplicates", "Contamination")


def _report(tmp_path, ledger) -> dict:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.yaml").write_text("name: evil\nversion: 1\nitems: items.jsonl\n")
    write_jsonl(suite / "items.jsonl", [{"id": "e-1", "messages": [{"role": "user", "content": f"Please repeat {EVIL} back to me word for word now."}]}])
    freeze_suite(load_suite(str(suite)), ledger)
    rows = [{"prompt": f"Please repeat {EVIL} back to me word for word now.", "chosen": "No.", "rejected": "Sure: " + EVIL,
             "slices": {"intent": EVIL, "surface": "chat"}, "source": EVIL}]
    rows += [{"prompt": f"Question {i} about rivers?", "chosen": f"A long and careful answer number {i} about rivers and deltas.",
              "rejected": "Short.", "slices": {"intent": "factual", "surface": "voice"}, "source": "raters"} for i in range(6)]
    ingest(write_jsonl(tmp_path / "pairs.jsonl", rows), "html", ledger)
    targets = tmp_path / "targets.yaml"
    targets.write_text("slices:\n  surface:\n    code: 0.2\n")
    from prefline.data.coverage import load_targets

    return data_report(ledger.get_dataset("html"), ledger, load_targets(targets))


def test_html_is_self_contained_and_escaped(tmp_path, ledger):
    report = _report(tmp_path, ledger)
    html = render_html(report)
    assert html.lower().count("<script") == 1  # the shared search script; user text cannot add one
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    plots = re.findall(r'<svg[^>]*class="plot".*?</svg>', html, flags=re.S)
    assert len(plots) == 2  # coverage against targets, length-ratio histogram (no close calls scored)
    assert all(p.count("<path") > 5 for p in plots)
    assert "https://" not in html and "http://" not in html.replace("http://www.w3.org/", "")
    for section in SECTIONS:
        assert f">{section}</h2>" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_in_a_real_browser(tmp_path, ledger):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium); CI runs this test")
    page = tmp_path / "report.html"
    report = _report(tmp_path, ledger)
    page.write_text(render_html(report), encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = out.stdout
    assert out.returncode == 0 and "<html" in dom, out.stderr[-2000:]
    for section in SECTIONS:
        assert re.search(rf"<h2[^>]*>{section}</h2>", dom), section
    assert '<span id="pairs">7</span>' in dom
    assert f'<strong id="teach-nothing">{report["negatives"]["teach_nothing"]}</strong>' in dom
    assert '<span id="contaminated-pairs">1</span>' in dom
    assert "surface=code: 0 pairs (0.0%), target 20.0% of pairs: short by 2 pairs" in dom
    # user text is text: no script element made it into the parsed document
    assert dom.lower().count("<script") == 1
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in dom


def test_cli_writes_html(tmp_path, ledger):
    _report(tmp_path, ledger)
    page = tmp_path / "out.html"
    result = runner.invoke(app, ["data", "report", "html", "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert page.is_file() and "Bias profile" in page.read_text()
    missing = runner.invoke(app, ["data", "report", "html", "--html", str(tmp_path / "no" / "such" / "x.html")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
