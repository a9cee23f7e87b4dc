"""``noduled report SR.dcm``: a readable summary of any TID 1500 measurement report.

noduled's own reports are shown as the NLCSP assessment (exam category, A
flag, management, follow-up) and one row per nodule; third-party reports
(OHIF/dcmjs, highdicom, ...) as their measurement groups.  ``--json``
prints the same content as JSON (the fields of
:class:`dicom_sr.read_report.ReportContents`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer


def _fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if digits == 0:
        return f"{value:.0f}{unit}"
    return f"{value:.{digits}f}{unit}"


def _jsonable(obj: Any) -> Any:
    import dataclasses
    import datetime as dt

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _print_noduled(console: Any, contents: Any) -> None:
    from rich.table import Table

    a = contents.assessment
    console.print(
        f"[bold]NLCSP category {a.category}{'A' if a.additional_findings else ''}[/bold]"
        f" — {a.descriptor or ''} ({a.screening_round}, exam {a.exam_date})"
    )
    if a.management:
        console.print(f"Management: {a.management}")
    if a.follow_up_months is not None or a.due_date is not None:
        console.print(f"Follow-up: {_fmt(a.follow_up_months, 0, ' months')}, due {a.due_date or '–'}")
    for reason in a.reasons:
        console.print(f"  rule: {reason}")
    for note in a.notes:
        console.print(f"  note: {note}")
    table = Table(title="Nodules")
    for column in (
        "",
        "nodule",
        "vol mm³",
        "mean Ø mm",
        "long×short mm",
        "composition",
        "status",
        "Δvol %",
        "VDT d",
        "vs study",
        "PanCan %",
        "cat",
    ):
        table.add_column(column)
    for f in a.findings:
        m = f.measurement
        comp = f.characterization.composition
        comparison = next((c for c in f.comparisons if c.is_comparison_study), None)
        table.add_row(
            "★" if f.tracking_uid == a.decisive_tracking_uid else "",
            f.tracking_id,
            _fmt(m.volume_mm3, 0) if m else (f.error or "no nodule"),
            _fmt(m.mean_diameter_mm) if m else "–",
            f"{_fmt(m.long_axis_mm)}×{_fmt(m.short_axis_mm)}" if m else "–",
            f"{comp.value} ({comp.origin})" if comp else "–",
            f.status or "–",
            _fmt(comparison.volume_change_pct) if comparison else "–",
            _fmt(comparison.vdt_days, 0) if comparison else "–",
            str(comparison.prior_study_date) if comparison else "–",
            _fmt(f.pancan_risk_pct, 2),
            f.category or "–",
        )
    console.print(table)


def _print_groups(console: Any, contents: Any) -> None:
    from rich.table import Table

    table = Table(title="Measurement groups")
    for column in (
        "tracking id",
        "template",
        "finding",
        "volume mm³",
        "diameter mm",
        "long×short mm",
        "length mm",
        "other",
    ):
        table.add_column(column)
    for g in contents.groups:
        named = {"Volume", "Diameter", "Long axis", "Short axis", "Long Axis", "Short Axis", "Length"}
        other = "; ".join(f"{name} {value:g} {unit}" for name, value, unit in g.measurements if name not in named)
        table.add_row(
            g.tracking_id or "–",
            g.template,
            g.finding or "–",
            _fmt(g.volume_mm3, 0),
            _fmt(g.diameter_mm),
            f"{_fmt(g.long_axis_mm)}×{_fmt(g.short_axis_mm)}" if g.long_axis_mm or g.short_axis_mm else "–",
            _fmt(g.length_mm),
            other,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        path: Path = typer.Argument(..., help="A TID 1500 SR file (noduled's or another viewer's)."),
        json_output: bool = typer.Option(False, "--json", help="Print the content as JSON."),
    ) -> None:
        """Print a readable summary of a TID 1500 measurement report (SR)."""
        import json

        from rich.console import Console

        from dicom_sr.read_report import ReportError, read_report

        if not path.is_file():
            typer.echo(f"noduled report: {path} does not exist", err=True)
            raise typer.Exit(code=2)
        try:
            contents = read_report(path)
        except ReportError as exc:
            typer.echo(f"noduled report: {exc}", err=True)
            raise typer.Exit(code=2) from None
        except Exception as exc:  # unreadable file
            typer.echo(f"noduled report: cannot read {path} as DICOM: {exc}", err=True)
            raise typer.Exit(code=2) from None
        if json_output:
            typer.echo(json.dumps(_jsonable(contents), indent=2, allow_nan=False))
            return
        console = Console()
        console.print(f"[bold]{contents.title}[/bold]  SR {contents.sop_instance_uid}")
        console.print(
            f"Study {contents.study_uid} ({contents.study_date or 'no date'}), content date "
            f"{contents.content_date or '–'}; written by {'noduled' if contents.is_noduled else 'another system'}"
            + (f"; reader {contents.person_observer}" if contents.person_observer else "")
        )
        if contents.predecessor_uids:
            console.print(f"Replaces {', '.join(contents.predecessor_uids)}")
        if contents.is_noduled and contents.assessment is not None:
            _print_noduled(console, contents)
        else:
            _print_groups(console, contents)
