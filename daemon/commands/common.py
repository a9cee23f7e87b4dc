"""Options and helpers shared by the sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    help="TOML configuration file (default: $NODULED_CONFIG, else embedded defaults).",
    envvar="NODULED_CONFIG",
    show_default=False,
)


def settings_or_exit(config: Path | None):  # type: ignore[no-untyped-def]
    """Load the settings or print the configuration error and exit 2."""
    from daemon.settings import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(f"noduled: {exc}", err=True)
        raise typer.Exit(code=2) from None
