"""A typer app with the report commands, registered as bench/cli.py registers them."""

from __future__ import annotations

import typer

from bench.report import commands

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(commands.report)
app.command()(commands.compare)
app.command()(commands.check)
app.command()(commands.history)
