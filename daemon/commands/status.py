"""``noduled status``: what the node has received (and, later, analysed and delivered)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from daemon.commands.common import ConfigOption, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        config: Optional[Path] = ConfigOption,
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Show the studies, series and instance counts in the node's archive."""
        from rich.console import Console
        from rich.table import Table

        from daemon.db import open_index
        from daemon.status import archive_status

        settings = settings_or_exit(config)
        engine = open_index(settings.database_url)
        data = archive_status(engine)
        engine.dispose()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        console = Console()
        table = Table(title=f"noduled archive: {settings.archive_dir}", show_lines=False)
        for col in ("study date", "accession", "study / series", "modality", "thickness mm", "kernel", "instances"):
            table.add_column(col, justify="right" if col in ("instances", "thickness mm") else "left")
        for study in data["studies"]:
            table.add_row(
                study["study_date"] or "-",
                study["accession_number"] or "-",
                f"[bold]{study['description'] or '(no description)'}[/bold]\n{study['study_uid']}",
                "",
                "",
                "",
                str(study["instances"]),
            )
            for s in study["series"]:
                table.add_row(
                    "",
                    "",
                    f"  #{s['series_number'] if s['series_number'] is not None else '-'} {s['description'] or ''}",
                    s["modality"] or "-",
                    f"{s['slice_thickness_mm']:.2f}" if s["slice_thickness_mm"] is not None else "-",
                    s["convolution_kernel"] or "-",
                    str(s["instances"]),
                )
        console.print(table)
        t = data["totals"]
        console.print(f"{t['studies']} studies, {t['series']} series, {t['instances']} instances")
