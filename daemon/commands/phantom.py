"""``noduled phantom``: not yet implemented (see the project's issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("phantom", hidden=True)
    def _phantom() -> None:
        """Not yet implemented."""
        typer.echo("noduled phantom: not implemented yet", err=True)
        raise typer.Exit(code=2)
