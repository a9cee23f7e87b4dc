"""``noduled status``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("status")
    def _status() -> None:
        """Not yet implemented."""
        raise typer.Exit(code=2)
