"""``noduled analyze``: not yet implemented (see the project's issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("analyze", hidden=True)
    def _analyze() -> None:
        """Not yet implemented."""
        typer.echo("noduled analyze: not implemented yet", err=True)
        raise typer.Exit(code=2)
