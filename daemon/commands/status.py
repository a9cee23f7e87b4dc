"""``noduled status``: what the node has received (and, later, analysed and delivered)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        config: Path | None = ConfigOption,
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Show the studies, series and instance counts in the node's archive."""
        from rich.console import Console
        from rich.table import Table

        from daemon.ops.status import archive_status, describe_delivery_error
        from daemon.storage.db import open_index
        from daemon.storage.integrity import archive_integrity
        from daemon.workflow.outbox import outbox_summary

        settings = settings_or_exit(config)
        engine = open_index(settings.database_url)
        data = archive_status(engine)
        data["outbox"] = outbox_summary(engine)
        data["integrity"] = archive_integrity(settings.archive_dir, engine)
        engine.dispose()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        console = Console()
        table = Table(title=f"noduled archive: {settings.archive_dir}", show_lines=False)
        for col in ("study date", "study / series", "modality", "mm", "instances", "analysis"):
            table.add_column(col, justify="right" if col in ("instances", "mm") else "left")
        for study in data["studies"]:
            a = study.get("analysis") or {}
            state = a.get("state", "-")
            if a.get("category"):
                name = {"nlcsp": "NLCSP", "lung-rads-2022": "Lung-RADS"}.get(a.get("protocol") or "", a.get("protocol"))
                state += f": Category {a['category']} ({name}{' ' + a['protocol_version'] if a.get('protocol_version') else ''})"
            if a.get("reason"):
                state += f" ({a['reason']})"
            if study.get("purged_instances"):
                state += f"; {study['purged_instances']} CT images purged (retention)"
            table.add_row(
                study["study_date"] or "-",
                f"[bold]{study['description'] or '(no description)'}[/bold] {study['accession_number'] or ''}\n{study['study_uid']}",
                "",
                "",
                str(study["instances"]),
                state,
            )
            for s in study["series"]:
                table.add_row(
                    "",
                    f"  #{s['series_number'] if s['series_number'] is not None else '-'} {s['description'] or ''}",
                    s["modality"] or "-",
                    f"{s['slice_thickness_mm']:.2f}" if s["slice_thickness_mm"] is not None else "",
                    str(s["instances"]),
                    "",
                )
        console.print(table)
        t = data["totals"]
        console.print(f"{t['studies']} studies, {t['series']} series, {t['instances']} instances")
        o = data["outbox"]
        waiting = f" ({o['awaiting_commitment']} stored, awaiting commitment)" if o.get("awaiting_commitment") else ""
        console.print(
            f"deliveries: {o.get('pending', 0)} pending{waiting}, {o.get('delivered', 0)} delivered, {o.get('expired', 0)} expired"
        )
        for err in o.get("recent_errors", [])[:5]:
            console.print(f"  last error: {describe_delivery_error(err)}", markup=False, highlight=False)
        i = data["integrity"]
        if i["still_missing"]:
            console.print(
                f"[bold red]{len(i['still_missing'])} acknowledged instances are missing from the archive[/bold red] "
                f"(found at start-up {i['checked_at']}): send them again from the PACS; 'noduled verify' lists them"
            )
        if i["quarantined"]:
            console.print(f"{i['quarantined']} damaged or unindexable files were moved to archive/.quarantine")
