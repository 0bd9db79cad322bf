"""The prefline command line: parse, call the library, print. Nothing else lives here.

One module per command group (data, train, evals, suite, gate, release, report, demo); app.py
assembles them; _shared.py holds the results console, the --json output helper and the error
handling every command shares. What a command prints is rendered in prefline.report.terminal*.
"""

from prefline.cli.app import app, main

__all__ = ["app", "main"]
