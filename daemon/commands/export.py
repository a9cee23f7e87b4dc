"""``noduled export --format lcsr|csv|fhir --from --to``: the registry export (pseudonymised by default)."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit


class Format(str, Enum):  # noqa: UP042 (typer reads str-mixin enums as choices)
    lcsr = "lcsr"
    csv = "csv"
    fhir = "fhir"


def parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        typer.echo(f"noduled: {option} {value!r} is not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(code=2) from None


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        fmt: Format = typer.Option(
            ..., "--format", help="lcsr (pipe-delimited LCSR exam file), csv (exams + nodules), fhir (R4 Bundle)."
        ),
        date_from: str = typer.Option(..., "--from", help="First exam date (YYYY-MM-DD)."),
        date_to: str = typer.Option(..., "--to", help="Last exam date (YYYY-MM-DD)."),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Output file (csv: a directory). Default: in the current directory."
        ),
        identified: bool = typer.Option(
            False, "--identified", help="Include names, Patient IDs, birth dates and accession numbers."
        ),
        config: Path | None = ConfigOption,
    ) -> None:
        """Export the screening exams of a period; participants who opted out are never exported."""
        from daemon.registry.export import csv_files, fhir_json, lcsr_file, lcsr_side_report
        from daemon.registry.pseudonym import PseudonymKeyMissing
        from daemon.storage.db import open_index
        from daemon.storage.registry import export_records

        start, end = parse_date(date_from, "--from"), parse_date(date_to, "--to")
        if end < start:
            typer.echo(f"noduled: --to {end} is before --from {start}", err=True)
            raise typer.Exit(code=2)
        settings = settings_or_exit(config)
        engine = open_index(settings.database_url)
        try:
            exams, excluded = export_records(
                engine,
                key=settings.registry.pseudonym_key,
                period_from=start,
                period_to=end,
                identified=identified,
                facility_id=settings.registry.facility_id,
            )
        except PseudonymKeyMissing as exc:
            typer.echo(f"noduled: {exc}", err=True)
            raise typer.Exit(code=2) from None
        finally:
            engine.dispose()
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        if fmt is Format.lcsr:
            path = out or Path(f"lcsr_exam_{stamp}.txt")
            f = lcsr_file(exams, identified=identified)
            path.write_bytes(f.text.encode("utf-8"))
            side = path.with_name(path.stem + ".missing.txt")
            side.write_text(lcsr_side_report(f, identified=identified, excluded_opted_out=excluded))
            typer.echo(f"{f.records} exams -> {path} (what is left empty and why: {side})")
        elif fmt is Format.csv:
            folder = out or Path(f"noduled_export_{stamp}")
            folder.mkdir(parents=True, exist_ok=True)
            exam_csv, nodule_csv = csv_files(exams, identified=identified)
            (folder / "exams.csv").write_text(exam_csv)
            (folder / "nodules.csv").write_text(nodule_csv)
            typer.echo(
                f"{len(exams)} exams, {sum(len(x.nodules) for x in exams)} nodules -> {folder}/exams.csv, nodules.csv"
            )
        else:
            path = out or Path(f"noduled_fhir_{stamp}.json")
            path.write_text(fhir_json(exams, identified=identified))
            typer.echo(f"{len(exams)} exams -> {path} (FHIR R4 Bundle)")
        if excluded:
            typer.echo(f"{excluded} exams of participants who opted out were not exported")
