"""``noduled report``: not yet implemented (see the project's issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("report", hidden=True)
    def _report() -> None:
        """Not yet implemented."""
        typer.echo("noduled report: not implemented yet", err=True)
        raise typer.Exit(code=2)
