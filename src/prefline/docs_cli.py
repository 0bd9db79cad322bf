"""Write the CLI reference (docs/cli.md) from the CLI itself: every command, its help, arguments and options.

    python -m prefline.docs_cli > docs/cli.md          # regenerate
    python -m prefline.docs_cli --check docs/cli.md    # exit 1 if the file is out of date

A test runs the check, and fails on any command without help text, so the reference cannot
drift from the commands.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator


HEADER = """# CLI reference

Generated from the commands themselves by `python -m prefline.docs_cli > docs/cli.md`; a test fails
when this file is out of date or a command lacks help. Every command also has `--help`. Errors a
user can cause print one line and exit 2; `--json` puts only JSON on standard output.
"""


# Typer carries its own copy of click, so commands are told apart by what they do, not by class.
Command = Any


def _is_group(command: Command) -> bool:
    return hasattr(command, "list_commands")


def commands(group: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command under ``group`` depth first, in the order the CLI lists them, with its full path."""
    yield path, group
    if _is_group(group):
        ctx = group.context_class(group)
        for name in group.list_commands(ctx):
            yield from commands(group.get_command(ctx, name), path + (name,))


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _param_row(param: Any, ctx: Any) -> str:
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name).upper()}`"
        help_text = getattr(param, "help", None) or ""
        default = "required" if param.required else ""
    else:
        flags = ", ".join(param.opts + param.secondary_opts)
        shown = param.display_type(ctx) if callable(getattr(param, "display_type", None)) else ""
        name = f"`{flags}`" + ("" if param.is_flag else f" {shown.strip('<>').upper()}")
        help_text = param.help or ""
        if param.required:
            default = "required"
        elif param.is_flag or param.default in (None, (), []):
            default = ""
        else:
            default = f"`{param.default}`"
    return f"| {name} | {_escape(help_text)} | {_escape(default)} |"


def missing_help(root: Command) -> list[str]:
    """Commands and parameters without help text, as ``prefline a b`` / ``prefline a b --opt``."""
    problems = []
    for path, command in commands(root):
        label = " ".join(("prefline",) + path)
        if not (command.help or command.short_help):
            problems.append(label)
        for param in command.params:
            if param.name != "help" and not getattr(param, "help", None):
                problems.append(f"{label} {(param.metavar or param.name).upper()}")
    return problems


def render(root: Command) -> str:
    lines = [HEADER]
    entries = list(commands(root))
    lines.append("## Commands\n")
    for path, command in entries[1:]:
        anchor = "-".join(("prefline",) + path)
        summary = " ".join((command.short_help or (command.help or "").strip().split("\n\n")[0]).split())
        lines.append(f"{'  ' * (len(path) - 1)}- [`prefline {' '.join(path)}`](#{anchor}): {summary}")
    lines.append("")
    for path, command in entries[1:]:
        anchor = "-".join(("prefline",) + path)
        lines.append(f'<a id="{anchor}"></a>\n\n{"#" * min(len(path) + 2, 5)} `prefline {" ".join(path)}`\n')
        lines.append((command.help or command.short_help or "").strip().replace("\b\n", "") + "\n")
        if _is_group(command):
            continue
        ctx = command.context_class(command, info_name=" ".join(("prefline",) + path))
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines.append(f"```\nprefline {' '.join(path)} {usage}\n```\n")
        params = [p for p in command.params if p.name != "help"]
        if params:
            lines.append("| argument / option | meaning | default |\n|---|---|---|")
            lines.extend(_param_row(p, ctx) for p in params)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def root_command() -> Command:
    import typer

    from prefline.cli import app

    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render(root_command())
    if argv[:1] == ["--check"]:
        path = argv[1] if len(argv) > 1 else "docs/cli.md"
        with open(path, encoding="utf-8") as handle:
            if handle.read() != text:
                print(f"{path} is out of date: run `python -m prefline.docs_cli > {path}`", file=sys.stderr)
                return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
