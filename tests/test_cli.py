"""The command line: help on every command, one-line errors with exit code 2, JSON output."""

from __future__ import annotations

import json

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app

runner = CliRunner()


def _commands(command: click.Command, path=()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_command_has_help_text():
    for path, command in _commands(get_command(app)):
        assert (command.help or "").strip(), f"`prefline {' '.join(path)}` has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert (param.help or "").strip(), f"option {param.name} of `prefline {' '.join(path)}` has no help"


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_user_errors_are_one_line(tmp_path):
    one_line_error(runner.invoke(app, ["data", "ingest", str(tmp_path / "nope.jsonl"), "--name", "d"]), "nope.jsonl: no such file")
    one_line_error(runner.invoke(app, ["train", "dpo", "--data", "nope", "--name", "a"]), "unknown dataset 'nope'")
    one_line_error(runner.invoke(app, ["runs", "show", "7"]), "unknown eval run 7")
    one_line_error(runner.invoke(app, ["adapters", "show", "ghost"]), "unknown adapter 'ghost'")
    one_line_error(runner.invoke(app, ["eval", "--suite", "no-such-suite"]), "unknown suite 'no-such-suite'", "smoke")
    one_line_error(runner.invoke(app, ["gate", "1", "2"]), "unknown eval run 1")
    bad_yaml = tmp_path / "train.yaml"
    bad_yaml.write_text("beta: [oops\n")
    one_line_error(runner.invoke(app, ["train", "dpo", "--data", "d", "--name", "a", "--config", str(bad_yaml)]), "train.yaml:", "not valid YAML")
    bad_field = tmp_path / "train2.yaml"
    bad_field.write_text("beta: 0\nlora_r: 0\nbogus: 1\n")
    one_line_error(runner.invoke(app, ["train", "dpo", "--data", "d", "--name", "a", "--config", str(bad_field)]),
                   "beta: Input should be greater than 0", "lora_r: Input should be greater than or equal to 1", "bogus: Extra inputs are not permitted")
    one_line_error(runner.invoke(app, ["train", "dpo", "--data", "d", "--name", "a", "--beta", "-1"]), "command line: beta")


def test_ingest_cli_reports_counts_and_json(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(1), pair(2), pair(1), "{bad"])
    result = runner.invoke(app, ["data", "ingest", str(path), "--name", "demo"])
    assert result.exit_code == 0, result.output
    assert "read 4 = accepted 2 + rejected 1 + duplicates 1" in result.output
    assert f"{path}:4: rejected: not valid JSON" in result.output
    assert f"{path}:3: duplicate: duplicate of line 1" in result.output

    strict = runner.invoke(app, ["data", "ingest", str(path), "--name", "demo", "--strict", "--json"])
    assert strict.exit_code == 1
    payload = json.loads(strict.stdout)  # the problems go to stderr
    assert payload["version"] == 2 and payload["n_accepted"] == 2

    listing = json.loads(runner.invoke(app, ["data", "list", "--json"]).output)
    assert [(d["name"], d["version"]) for d in listing] == [("demo", 1), ("demo", 2)]


def test_suite_commands():
    shown = runner.invoke(app, ["suite", "show", "smoke", "--json"])
    assert shown.exit_code == 0
    payload = json.loads(shown.output)
    assert payload["items"] == 32 and len(payload["hash"]) == 64
    assert sum(payload["slices"]["risk"].values()) == 32
    assert "smoke" in runner.invoke(app, ["suite", "list"]).output


def test_malformed_suite_reports_every_bad_item(tmp_path):
    (tmp_path / "suite.yaml").write_text("name: t\nversion: 1\nitems: items.jsonl\n")
    good = {"id": "a", "messages": [{"role": "user", "content": "hi"}]}
    write_jsonl(tmp_path / "items.jsonl", [good, {"id": "b", "messages": []}, "{x", good,
                                           {"id": "c", "messages": [{"role": "user", "content": "q"}], "should_refuse": "maybe"}])
    result = runner.invoke(app, ["suite", "show", str(tmp_path)])
    one_line_error(result, "4 malformed item(s)", "items.jsonl:2: messages", "items.jsonl:3: not valid JSON",
                   "items.jsonl:4: id 'a' repeats line 1", "items.jsonl:5: should_refuse")
