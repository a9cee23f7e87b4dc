"""``noduled outcomes import FILE.csv`` and ``noduled outcomes add``: follow-up and diagnoses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit

outcomes_app = typer.Typer(
    help="Follow-up procedures and diagnoses linked to a participant and exam.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(outcomes_app, name="outcomes")


@outcomes_app.command("import")
def import_outcomes_command(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="CSV file (columns: see the README)."
    ),
    config: Path | None = ConfigOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report what would change; write nothing."),
) -> None:
    """Record every outcome of the file (idempotent by participant, date and type; all rows or none)."""
    from daemon.registry.csvfiles import CSVFileError, parse_outcomes
    from daemon.storage.db import open_index
    from daemon.storage.registry import RegistryError, import_outcomes

    try:
        rows = parse_outcomes(file.read_text(encoding="utf-8-sig"))
    except (CSVFileError, UnicodeDecodeError) as exc:
        typer.echo(f"noduled: {file}: {exc}", err=True)
        raise typer.Exit(code=2) from None
    settings = settings_or_exit(config)
    engine = open_index(settings.database_url)
    try:
        s = import_outcomes(engine, rows, dry_run=dry_run)
    except RegistryError as exc:
        typer.echo(f"noduled: {file}: {exc}", err=True)
        raise typer.Exit(code=2) from None
    finally:
        engine.dispose()
    verb = "would be" if dry_run else "were"
    typer.echo(
        f"{s.rows} outcomes read: {s.inserted} {verb} added, {s.updated} {verb} updated, {s.unchanged} unchanged"
        + (" (dry run: nothing written)" if dry_run else "")
    )


@outcomes_app.command("add")
def add_outcome_command(
    patient_id: str = typer.Option(..., "--patient-id", help="Patient ID (0010,0020)."),
    outcome_date: str = typer.Option(..., "--date", help="YYYY-MM-DD"),
    outcome_type: str = typer.Option(
        ..., "--type", help="ldct, diagnostic-ct, pet-ct, bronchoscopy, biopsy, surgery, other"
    ),
    issuer: str = typer.Option("", "--issuer", help="Issuer of Patient ID."),
    study_uid: str = typer.Option(
        "", "--study-uid", help="The screening exam it follows (default: the latest before the date)."
    ),
    accession_number: str = typer.Option("", "--accession", help="... or that exam's accession number."),
    tissue_diagnosis: str = typer.Option(
        "",
        "--diagnosis",
        help="benign, invasive-lung-cancer, minimally-invasive-adenocarcinoma, "
        "adenocarcinoma-in-situ, carcinoid, other-malignancy, non-diagnostic, none",
    ),
    histology: str = typer.Option("", "--histology"),
    stage: str = typer.Option("", "--stage", help="Overall stage, e.g. IA2."),
    tnm: str = typer.Option("", "--tnm", help="e.g. T1bN0M0"),
    tnm_edition: str = typer.Option("", "--tnm-edition", help="7, 8 or other"),
    config: Path | None = ConfigOption,
) -> None:
    """Record one outcome (same checks as a row of the outcome file)."""
    import csv
    import io

    from daemon.registry.csvfiles import CSVFileError, parse_outcomes
    from daemon.storage.db import open_index
    from daemon.storage.registry import RegistryError, add_outcome

    cells = {
        "patient_id": patient_id,
        "issuer": issuer,
        "outcome_date": outcome_date,
        "outcome_type": outcome_type,
        "study_uid": study_uid,
        "accession_number": accession_number,
        "tissue_diagnosis": tissue_diagnosis,
        "histology": histology,
        "stage": stage,
        "tnm": tnm,
        "tnm_edition": tnm_edition,
    }
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cells)
    w.writerow(cells.values())
    try:
        (row,) = parse_outcomes(buf.getvalue())
    except CSVFileError as exc:
        message = "\n".join(e.replace("row 2, column ", "--") for e in exc.errors)
        typer.echo(f"noduled: {message}", err=True)
        raise typer.Exit(code=2) from None
    settings = settings_or_exit(config)
    engine = open_index(settings.database_url)
    try:
        result = add_outcome(engine, row.patient_id, row.issuer, row.values)
    except RegistryError as exc:
        typer.echo(f"noduled: {exc}", err=True)
        raise typer.Exit(code=2) from None
    finally:
        engine.dispose()
    typer.echo(f"outcome {result}: {outcome_type} on {dt.date.fromisoformat(outcome_date)}")
