"""The `prefline` command: assembles the command modules into one Typer app, in the order help lists them."""

from __future__ import annotations

import typer

from prefline.cli import data, demo, evals, gate, release, report, suite, train
from prefline.cli._shared import Group

app = typer.Typer(cls=Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="prefline: preference data in, LoRA adapters out, and a gate that decides whether they ship.")

app.command("eval")(evals.eval_cmd)
app.command("compare")(gate.compare_cmd)
app.command("gate", help=gate.GATE_HELP)(gate.gate_cmd)
app.command("diagnose")(gate.diagnose_cmd)
app.command("doctor")(demo.doctor_cmd)
app.command("demo")(demo.demo_cmd)

app.add_typer(data.data_app, name="data")
app.add_typer(train.train_app, name="train")
app.add_typer(train.adapters_app, name="adapters")
app.add_typer(evals.runs_app, name="runs")
app.add_typer(suite.suite_app, name="suite")
app.add_typer(evals.preference_app, name="preference")
app.add_typer(release.release_app, name="release")
app.add_typer(report.report_app, name="report")
app.add_typer(suite.scorers_app, name="scorers")


def _terminate(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt  # SIGTERM behaves like Ctrl-C: the same clean-up, the same exit


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    app()
