"""`prefline train METHOD|resume` (one command per entry of the method table) and `prefline adapters ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefline.cli._shared import JsonOpt, console, emit, ledger, names, quiet
from prefline.report import terminal_runs as show

train_app = typer.Typer(no_args_is_help=True, help="Train LoRA adapters from a dataset version.")
adapters_app = typer.Typer(no_args_is_help=True, help="Registered adapters and their lineage.")


def _train_command(method: str):  # noqa: ANN202
    """The `prefline train METHOD` command for one entry of the method table."""

    def command(
        data: str = typer.Option(..., "--data", help="Dataset name (latest version), name@version, or id."),
        name: str = typer.Option(..., "--name", help="Name of the adapter to create (unique)."),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML file of training settings (see prefline.config.TrainConfig)."),
        model: Optional[str] = typer.Option(None, "--model", help="Base model: the embedded default, a local folder, or a cached hub id."),
        surface: Optional[str] = typer.Option(None, "--surface", help="Product surface this adapter serves (chat, code, voice, ...); its training defaults fill in unset fields (voice: stronger length regularization; see docs/training.md)."),
        epochs: Optional[float] = typer.Option(None, "--epochs", help="Override: passes over the data."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Override: stop after this many steps."),
        beta: Optional[float] = typer.Option(None, "--beta", help="Override: beta (its meaning and default are in this method's description)."),
        learning_rate: Optional[float] = typer.Option(None, "--lr", help="Override: learning rate."),
        as_json: bool = JsonOpt,
    ) -> None:
        from prefline.train.surfaces import command_settings

        settings, surfaces = command_settings(config, {"epochs": epochs, "max_steps": max_steps, "beta": beta, "learning_rate": learning_rate})
        quiet()
        from prefline.train.run import is_main_process, train

        the_ledger = ledger()
        adapter = train(method, data, name, settings, the_ledger, model_spec=model, surface=surface, surfaces=surfaces)
        if not is_main_process():  # under accelerate launch, one process reports
            return None
        emit(as_json, adapter, lambda: show.print_adapter(console, adapter, names(the_ledger)),
             f"prefline eval --suite SUITE --adapter {adapter['name']}", f"prefline report adapter {adapter['name']} --html {adapter['name']}.html")

    return command


def _register_train_commands() -> None:
    from prefline.train.methods import METHODS  # names and docs only: TRL is imported when a run starts

    for spec in METHODS.values():
        text = f"{spec.title}: train a LoRA adapter and register it with its lineage.\n\n{spec.doc()}"
        train_app.command(spec.name, help=text, short_help=spec.title)(_train_command(spec.name))


_register_train_commands()


@train_app.command("resume")
def train_resume(name: str = typer.Argument(..., help="Adapter whose run was killed or failed (status running or failed)."),
                 as_json: bool = JsonOpt) -> None:
    """Resume a killed or failed run from its last checkpoint, with its recorded method, data, model and config."""
    quiet()
    from prefline.train.run import is_main_process, resume

    the_ledger = ledger()
    adapter = resume(name, the_ledger)
    if not is_main_process():
        return None
    emit(as_json, adapter, lambda: show.print_adapter(console, adapter, names(the_ledger)))


@adapters_app.command("list")
def adapters_list(as_json: bool = JsonOpt) -> None:
    """List registered adapters."""
    the_ledger = ledger()
    rows = the_ledger.list_adapters()
    emit(as_json, rows, lambda: show.print_adapters(console, rows, names(the_ledger)),
         "prefline adapters show NAME", "prefline eval --suite SUITE --adapter NAME")


@adapters_app.command("show")
def adapters_show(name: str = typer.Argument(..., help="Adapter name or id."), as_json: bool = JsonOpt) -> None:
    """Show one adapter's lineage: base model, dataset, config, metrics, warnings, step history, drift probes."""
    from dataclasses import asdict

    the_ledger = ledger()
    adapter = the_ledger.get_adapter(name, finished=False)
    steps, taken = the_ledger.train_steps(adapter["id"]), [asdict(p) for p in the_ledger.probes(adapter["id"])]
    emit(as_json, {**adapter, "steps": steps, "probes": taken},
         lambda: show.print_adapter_detail(console, adapter, names(the_ledger), steps, taken),
         f"prefline report adapter {adapter['name']} --html {adapter['name']}.html", f"prefline eval --suite SUITE --adapter {adapter['name']}")


@adapters_app.command("export")
def adapters_export(
    name: str = typer.Argument(..., help="Adapter name or id (a finished one)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (must not exist, or be empty)."),
    merge: bool = typer.Option(False, "--merge", help="Merge the adapter into the base weights: a full model folder transformers loads as is."),
) -> None:
    """Export an adapter: its PEFT folder as is, or with --merge a full model with the adapter merged in."""
    quiet()
    from prefline.report.text import safe
    from prefline.train.export import export_adapter

    path = export_adapter(ledger(), name, out, merge=merge)
    console.print(f"adapter {safe(name)} exported to {safe(path)} ({'merged full model' if merge else 'PEFT adapter folder'})")
