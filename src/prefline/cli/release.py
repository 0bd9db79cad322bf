"""`prefline release ...`: promote, roll back with confirmed recovery, pin the reference run, status, history."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefline.cli._shared import JsonOpt, console, emit, ledger, quiet, say
from prefline.cli.gate import SurfacesFileOpt
from prefline.report import terminal_release as show

release_app = typer.Typer(no_args_is_help=True, help="Releases per surface (chat, code, voice, ...): promote, roll back with confirmed recovery, status, history.")
SurfaceOpt = typer.Option(..., "--surface", help="Product surface (chat, code, voice, or any name in the surfaces file).")


@release_app.command("promote")
def release_promote(
    target: str = typer.Argument(..., help="What to make live: an adapter name, `base` (the base model alone), or an eval run id on the surface's suite."),
    surface: str = SurfaceOpt,
    force: bool = typer.Option(False, "--force", help="Record the release even if the gate does not pass (needs --reason)."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why: required with --force, recorded with the release."),
    surfaces: Optional[Path] = SurfacesFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate TARGET on the surface's suite and make it live if it passes the gate against the live release; exit 1 if not promoted."""
    quiet()
    from prefline.release import promote

    result = promote(ledger(), surface, target, force=force, reason=reason, surfaces=surfaces, progress=say)
    emit(as_json, result.as_dict(), lambda: show.print_promotion(console, result, surface))
    raise typer.Exit(0 if result.promoted else 1)


@release_app.command("rollback")
def release_rollback(
    surface: str = SurfaceOpt,
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the rollback."),
    surfaces: Optional[Path] = SurfacesFileOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make the previously live adapter live again, re-run the surface's suite on it and confirm recovery; exit 1 if not confirmed."""
    quiet()
    from prefline.release import rollback

    result = rollback(ledger(), surface, surfaces=surfaces, reason=reason, progress=say)
    emit(as_json, result.as_dict(), lambda: show.print_rollback(console, result, surface))
    raise typer.Exit(0 if result.confirmed else 1)


@release_app.command("pin")
def release_pin(
    run: str = typer.Argument(..., help="Eval run id on the surface's suite to make its reference run."),
    surface: str = SurfaceOpt,
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the pin."),
    as_json: bool = JsonOpt,
) -> None:
    """Pin the surface's reference run, the anchor of the gate's drift budget (by default its first release's run)."""
    from prefline.release import pin_reference

    row = pin_reference(ledger(), surface, run, reason=reason)
    emit(as_json, row, lambda: console.print(f"reference run of {surface} is now run {row['reference_run_id']} (release {row['id']})", markup=False))


@release_app.command("status")
def release_status(surfaces: Optional[Path] = SurfacesFileOpt, as_json: bool = JsonOpt) -> None:
    """What is live on each surface, since when, by which decision, with its run's metrics."""
    from prefline.release import status

    rows = status(ledger(), surfaces)
    emit(as_json, rows, lambda: show.print_status(console, rows))


@release_app.command("history")
def release_history(
    surface: Optional[str] = typer.Option(None, "--surface", help="Only this surface (default: all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Every promotion, rollback and pin, oldest first, with the gate's verdict and the run's metrics."""
    from prefline.release import history

    rows = history(ledger(), surface)
    emit(as_json, rows, lambda: show.print_history(console, rows))
