"""Terminal injection, vacuous policies, and `--json` output that another program can read.

User and model strings reach the terminal through rich: a slice value, a source, a suite name or
a model output holding ``[/bold]`` or an escape sequence must print as the text it is. Every
command with ``--json`` prints JSON alone on standard output.
"""

from __future__ import annotations

import json

import pytest
from conftest import pair, write_jsonl
from typer.testing import CliRunner

from prefline.cli import app
from prefline.config import GatePolicy, GateRule

runner = CliRunner()
MARKUP = "[/bold]"
ESC = "\x1b]0;owned\x07\x1b[31m"  # an OSC title change and a colour: a terminal would obey both
NASTY = f"{MARKUP}{ESC}[red]x"


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def shown_safely(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "MarkupError" not in result.output and "Traceback" not in result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout  # control characters arrive as text: \x1b
    assert MARKUP in result.stdout, result.stdout


@pytest.fixture
def nasty_dataset(tmp_path, ledger):
    rows = [pair(i, slices={"intent": NASTY, MARKUP: "v"}, source=NASTY, annotator=NASTY) for i in range(6)]
    path = write_jsonl(tmp_path / "nasty.jsonl", rows)
    result = cli("data", "ingest", path, "--name", "nasty", "--signal", "pairwise")
    assert result.exit_code == 0, result.output
    return "nasty"


def test_data_commands_print_user_strings_as_text(nasty_dataset):
    for args in (["data", "report", nasty_dataset], ["data", "agreement", nasty_dataset], ["data", "list"]):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)
        if args[1] != "list":
            shown_safely(result)
        assert "\\x1b" in result.stdout or args[1] == "list"


def _make_run(ledger, slices_value: str, output: str) -> int:
    items = {f"i{k}": {"risk": slices_value if k % 2 else "none"} for k in range(24)}
    run = ledger.add_run(suite_name=NASTY, suite_hash="s" * 64, model=NASTY, model_hash="m" * 64, backend="hf",
                         decoding={}, seed=0, scorers=["length"])
    ledger.add_generations(run, [{"item_id": i, "item_hash": i, "slices": s, "messages": [{"role": "user", "content": NASTY}],
                                  "output": output, "input_tokens": 1, "output_tokens": 1, "latency_s": 0.0} for i, s in items.items()])
    ledger.add_scores(run, [{"item_id": i, "metric": "length_tokens", "scorer": "length", "value": float(k), "evidence": {}}
                            for k, i in enumerate(items)])
    from prefline.evals.run import summarize_scores

    rows = [{"item_id": i, "metric": "length_tokens", "value": float(k)} for k, i in enumerate(items)]
    ledger.finish_run(run, summarize_scores(rows, items))
    return run


def test_runs_show_and_gate_print_slices_and_outputs_as_text(ledger, tmp_path):
    base, cand = _make_run(ledger, NASTY, NASTY), _make_run(ledger, NASTY, NASTY)
    shown = cli("runs", "show", base, "--items")
    assert shown.exit_code == 0, shown.output
    shown_safely(shown)
    policy = tmp_path / "p.yaml"
    policy.write_text(json.dumps({"name": NASTY, "rules": [{"metric": "length_tokens", "max_ratio": 1.5}], "slice_keys": ["risk"], "min_items": 2}))
    gated = cli("gate", base, cand, "--policy", policy)
    assert gated.exit_code in (0, 1, 2) and "MarkupError" not in gated.output
    shown_safely(gated)
    decisions = ledger.gate_decisions()
    assert len(decisions) == 1 and gated.exit_code == {"pass": 0, "fail": 1}.get(decisions[0]["verdict"], 2)


def test_suite_show_prints_names_and_slices_as_text(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "suite.yaml").write_text(f"name: {json.dumps(NASTY)}\nversion: 1\nitems: items.jsonl\n")
    (folder / "items.jsonl").write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}],
                                                    "slices": {"intent": NASTY}}) + "\n")
    for command in ("show", "validate"):
        result = cli("suite", command, folder)
        assert result.exit_code == 0, result.output
        shown_safely(result)


# --- policies that would gate nothing -------------------------------------------------------------


def test_a_policy_that_gates_nothing_is_refused(tmp_path):
    with pytest.raises(ValueError, match="gate nothing"):
        GatePolicy(rules=[])
    with pytest.raises(ValueError, match="sets no bound"):
        GateRule(metric="over_refusal")
    for text, needle in (("rules: []\n", "gate nothing"), ("rules:\n  - metric: over_refusal\n", "sets no bound")):
        policy = tmp_path / "p.yaml"
        policy.write_text(text)
        result = cli("gate", "1", "2", "--policy", policy)
        assert result.exit_code == 2 and needle in result.stderr and "Traceback" not in result.output
    assert GatePolicy(rules=[], all_metrics=True).all_metrics  # every scored metric with the default margins


def test_a_slice_key_no_item_has_is_reported(ledger, tmp_path):
    base, cand = _make_run(ledger, "high", "x"), _make_run(ledger, "high", "x")
    policy = tmp_path / "p.yaml"
    policy.write_text(json.dumps({"rules": [{"metric": "length_tokens", "max_ratio": 1.5}], "slice_keys": ["rsik"], "min_items": 2}))
    gated = cli("gate", base, cand, "--policy", policy)
    assert "'rsik'" in gated.stderr and "tag no item" in gated.stderr and "keys present: risk" in gated.stderr


# --- --json: standard output holds JSON alone ---------------------------------------------------------


def _json_commands(app_) -> list[list[str]]:
    """Every command path that has a --json option."""
    import typer.main

    group = typer.main.get_command(app_)
    found = []

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        elif any("--json" in p.opts for p in command.params):
            found.append(path)

    walk(group, [])
    return found


def test_every_json_command_prints_json_alone(tmp_path, ledger, nasty_dataset):
    """Each command with --json, given inputs it accepts or refuses, prints parseable JSON or nothing on stdout."""
    base, cand = _make_run(ledger, "high", "out"), _make_run(ledger, "high", "out")
    commands = _json_commands(app)
    assert ["data", "ingest"] in commands and ["eval"] in commands and len(commands) >= 15
    ready = {
        ("data", "ingest"): [write_jsonl(tmp_path / "j.jsonl", [pair(1), pair(2), "{bad"]), "--name", "j"],
        ("data", "report"): ["nasty"], ("data", "agreement"): ["nasty"], ("data", "diff"): ["nasty@1", "nasty@1"],
        ("runs", "show"): [base], ("gate",): [base, cand], ("compare",): [base, cand], ("suite", "show"): ["smoke"],
        ("eval",): ["--replay", base],
    }
    parsed = 0
    for path in commands:
        args = [*path, *map(str, ready.get(tuple(path), [])), "--json"]
        result = runner.invoke(app, args)
        assert "Traceback" not in result.output, (args, result.output)
        if result.stdout.strip():
            json.loads(result.stdout)  # JSON alone: no progress bar, no warning, no table
            parsed += 1
        else:
            assert result.exit_code != 0, (args, result.output)  # nothing on stdout only when it failed
    assert parsed >= 10


def test_eval_json_has_no_progress_on_stdout(ledger, tiny_model_dir):
    result = runner.invoke(app, ["eval", "--suite", "smoke", "--model", str(tiny_model_dir), "--max-new-tokens", "4",
                                 "--scorers", "length", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "done"


def test_an_eval_that_cannot_reach_its_server_is_marked_failed(ledger):
    result = runner.invoke(app, ["eval", "--suite", "smoke", "--backend", "openai", "--model", "m",
                                 "--base-url", "http://127.0.0.1:9/v1", "--timeout", "2", "--scorers", "length"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    (run,) = ledger.list_runs()
    assert run["status"] == "failed" and run["error"]
    listed = runner.invoke(app, ["runs", "list"])
    assert "failed" in listed.stdout
