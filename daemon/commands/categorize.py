"""``noduled categorize``: not yet implemented (see the project's issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("categorize", hidden=True)
    def _categorize() -> None:
        """Not yet implemented."""
        typer.echo("noduled categorize: not implemented yet", err=True)
        raise typer.Exit(code=2)
