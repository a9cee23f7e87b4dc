"""``noduled participants import FILE.csv``: participant data from a RIS / booking export."""

from __future__ import annotations

from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit

participants_app = typer.Typer(
    help="Screening participants (smoking history, family history, consent ...).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(participants_app, name="participants")


@participants_app.command("import")
def import_participants(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="CSV file (columns: see the README)."
    ),
    config: Path | None = ConfigOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report what would change; write nothing."),
) -> None:
    """Insert or update participants by Patient ID + issuer (idempotent; empty cells keep stored values)."""
    from daemon.registry.csvfiles import CSVFileError, parse_participants
    from daemon.storage.db import open_index
    from daemon.storage.registry import upsert_participants

    try:
        rows = parse_participants(file.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        typer.echo(f"noduled: {file}: not UTF-8 text ({exc})", err=True)
        raise typer.Exit(code=2) from None
    except CSVFileError as exc:
        typer.echo(f"noduled: {file}: {exc}", err=True)
        raise typer.Exit(code=2) from None
    settings = settings_or_exit(config)
    engine = open_index(settings.database_url)
    try:
        s = upsert_participants(engine, rows, dry_run=dry_run)
    finally:
        engine.dispose()
    verb = "would be" if dry_run else "were"
    typer.echo(
        f"{s.rows} participants read: {s.inserted} {verb} added, {s.updated} {verb} updated, {s.unchanged} unchanged"
        + (" (dry run: nothing written)" if dry_run else "")
    )
