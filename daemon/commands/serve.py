"""``noduled serve``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def _serve() -> None:
        """Not yet implemented."""
        raise typer.Exit(code=2)
