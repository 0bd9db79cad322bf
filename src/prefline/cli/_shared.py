"""What every command module shares: the results console, the --json switch and its one output helper,
the error handling that turns a user's mistake into one line and exit code 2, and small helpers."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import typer
from rich.console import Console
from typer.core import TyperGroup

from prefline.errors import PreflineError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT

# Wide enough for the gate table when piped to a file; a terminal keeps its own width.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def stderr() -> Console:
    """A console on stderr, for progress, notes and warnings (stdout stays results only)."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


def say(message: str) -> None:
    """One progress line on stderr, printed as given."""
    stderr().print(message, markup=False)


def _error_line(message: str) -> None:
    """One line on stderr: a message that spans lines (a parser's caret diagram) is joined into one."""
    from prefline.report.text import plain

    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"error: {plain(text)}", markup=False)


class Group(TyperGroup):
    """Turns an error the user caused anywhere below into one line on stderr and exit code 2.

    A PreflineError is the usual one. A file the user named that cannot be read (a folder, no
    permission, gone meanwhile) and input nested too deeply to process are user-caused too, and
    get the same treatment; Ctrl-C and SIGTERM stop the command with exit code 130 after the
    library has cleaned up (a partial dataset version removed, an eval run marked failed).
    """

    def invoke(self, ctx):  # noqa: ANN001
        try:
            return super().invoke(ctx)
        except PreflineError as exc:
            _error_line(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            _error_line("interrupted; nothing half-written was kept (`prefline doctor` checks the ledger against the files)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except RecursionError:
            _error_line("the input is nested too deeply to process")
            raise typer.Exit(EXIT_USAGE) from None
        except OSError as exc:
            about_files = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
            if isinstance(exc, BrokenPipeError) or (exc.filename is None and not isinstance(exc, about_files)):
                raise
            _error_line(f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc))
            raise typer.Exit(EXIT_USAGE) from None


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def emit(as_json: bool, data: Any, show: Callable[[], None], *next_steps: str) -> None:
    """A command's result on stdout: ``data`` as JSON with --json; otherwise what ``show`` prints,
    then the commands to run next on stderr (a machine reads what it needs from the JSON)."""
    if as_json:
        print_json(data)
        return
    show()
    if next_steps:
        hint(*next_steps)


def hint(*commands: str) -> None:
    """Say on stderr what to run next, so a newcomer is never left at a dead end (stdout stays results only)."""
    err = stderr()
    for i, command in enumerate(commands):
        err.print(f"{'next:' if i == 0 else '  or:'} {command}", markup=False, style="dim")


def ledger():  # noqa: ANN201
    from prefline.ledger import Ledger

    return Ledger()


def names(the_ledger):  # noqa: ANN001, ANN201
    from prefline.report.terminal import Names

    return Names(the_ledger)


def quiet() -> None:
    """Silence library chatter (tokenizer warnings, datasets progress) so prefline's own output reads."""
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
