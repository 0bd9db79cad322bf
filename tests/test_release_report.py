"""The releases report from a ledger of planted runs promoted on a surface (one hostile adapter name among them):
metrics over time, the tradeoff chart with released points and a refused candidate, markdown, CLI, browser."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from prefline.cli import app
from prefline.release import promote
from test_release import planted_run, surfaces  # noqa: F401  (fixture)
from test_reports_html import _assert_escaped, _plots, browse

runner = CliRunner()
EVIL = "<img src=x onerror=\"document.body.setAttribute('data-pwned','name')\">"


def _history(ledger, surfaces):  # noqa: F811
    first = planted_run(ledger, surfaces, [10] * 8)
    assert promote(ledger, "chat", str(first), surfaces=surfaces).promoted
    longer = planted_run(ledger, surfaces, [10] * 4 + [20] * 4)  # refused by the gate: a candidate
    assert not promote(ledger, "chat", str(longer), surfaces=surfaces).promoted
    fine = planted_run(ledger, surfaces, [12] * 4 + [11] * 4)
    adapter = ledger.get_run(fine)["adapter_id"]
    with ledger.engine.begin() as conn:  # a name a user could have given, rendered everywhere it appears
        conn.execute(ledger.t["adapters"].update().where(ledger.t["adapters"].c.id == adapter).values(name=EVIL))
    assert promote(ledger, "chat", str(fine), surfaces=surfaces).promoted
    for run, rate in ((first, 0.5), (longer, 0.7), (fine, 0.62)):
        ledger.add_preference_eval(kind="win_rate", baseline_run_id=first, candidate_run_id=run, judge="j",
                                   summary={"slices": {"overall": {"n": 8, "raw": {"estimate": rate, "ci": [rate - 0.1, rate + 0.1]}}}}, items=[])
    return first, longer, fine


def test_release_report_data_and_markdown(ledger, surfaces):  # noqa: F811
    from prefline.report.releases import release_data, release_markdown, themes, tradeoff_points

    first, longer, fine = _history(ledger, surfaces)
    data = release_data(ledger, "chat")
    (chat,) = data["surfaces"]
    assert [r["run_id"] for r in chat["releases"]] == [first, fine]
    assert [c["run_id"] for c in chat["candidates"]] == [longer] and chat["candidates"][0]["verdict"] == "fail"
    assert chat["releases"][1]["metrics"]["length_tokens"]["mean"] == 11.5
    assert themes(chat) == {"verbosity": "length_tokens", "win rate": "win_rate"}
    points, key, _ = tradeoff_points(chat)
    assert key == "win_rate" and [(p["kind"], p["y"], p["length_tokens"]) for p in points] == [
        ("release", 0.5, 10.0), ("release", 0.62, 11.5), ("candidate", 0.7, 15.0)]
    json.dumps(data, default=str)
    md = release_markdown(data, "out/releases.html")
    assert "| # | at (UTC) | action | adapter | run | result | length\\_tokens | win\\_rate |" in md
    assert "&lt;img src=x onerror" in md and "<img" not in md
    assert "Gated but not released: run" in md and "Full report: `out/releases.html`" in md


def test_release_report_cli_and_browser(ledger, surfaces, tmp_path):  # noqa: F811
    from prefline.report.releases import release_data, release_html

    _history(ledger, surfaces)
    html = release_html(release_data(ledger))
    assert EVIL not in html and "&lt;img src=x onerror" in html
    assert len(re.findall(r"<script\b", html)) == 1
    page = tmp_path / "releases.html"
    page.write_text(html, encoding="utf-8")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    dom = browse(page, shots / "releases.png")
    assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]
    plots = _plots(dom)
    assert len(plots) == 3 and all(len(re.findall(r"<path\b", p)) > 5 for p in plots)  # tradeoff, verbosity, win rate
    out = runner.invoke(app, ["report", "release", "--surface", "chat", "--html", str(tmp_path / "r.html"), "--md", str(tmp_path / "r.md")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    none = runner.invoke(app, ["report", "release", "--surface", "voice", "--json"])
    assert none.exit_code == 2 and "nothing was ever released on voice" in none.output
