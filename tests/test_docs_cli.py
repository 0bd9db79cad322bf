"""docs/cli.md is generated from the CLI: every command must have help text and an entry there."""

from __future__ import annotations

from pathlib import Path

from prefline.docs_cli import commands, missing_help, render, root_command

DOC = Path(__file__).parent.parent / "docs" / "cli.md"


def test_every_command_and_option_has_help():
    assert missing_help(root_command()) == []


def test_every_command_has_an_entry_in_docs_cli():
    text = DOC.read_text(encoding="utf-8")
    missing = [" ".join(path) for path, _ in list(commands(root_command()))[1:]
               if f'<a id="{"-".join(("prefline",) + path)}"></a>' not in text]
    assert not missing, f"docs/cli.md lacks {missing}: run `python -m prefline.docs_cli > docs/cli.md`"


def test_rendering_names_arguments_options_and_defaults():
    text = render(root_command())
    assert "| `--heldout` FLOAT | Share of prompts to hold out, between 0 and 1 (e.g. 0.2). | required |" in text
    assert "| `--seed` INT | Seed of the draw: the same seed and data give the same split. | `0` |" in text
    assert "| `RUN` | Eval run id. | required |" in text
