"""``noduled measure``: not yet implemented (see the project's issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("measure", hidden=True)
    def _measure() -> None:
        """Not yet implemented."""
        typer.echo("noduled measure: not implemented yet", err=True)
        raise typer.Exit(code=2)
