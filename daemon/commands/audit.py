"""``noduled audit --from --to --out audit.html``: the practice audit report (self-contained HTML)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit
from daemon.commands.export import parse_date


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        date_from: str = typer.Option(..., "--from", help="First exam date (YYYY-MM-DD)."),
        date_to: str = typer.Option(..., "--to", help="Last exam date (YYYY-MM-DD)."),
        out: Path = typer.Option(Path("audit.html"), "--out", "-o", help="The HTML file to write."),
        as_of: str | None = typer.Option(None, "--as-of", help="Count follow-up up to this date (default: today)."),
        identified: bool = typer.Option(
            False, "--identified", help="List overdue participants by Patient ID, not pseudonymous key."
        ),
        config: Path | None = ConfigOption,
    ) -> None:
        """Category distribution, positive rate, adherence, outcomes, dose, turnaround, AI quality -- for programme staff."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from daemon.registry.audit_html import render_audit
        from daemon.registry.measures import AuditOptions, compute_audit
        from daemon.registry.pseudonym import PseudonymKeyMissing
        from daemon.storage.db import open_index
        from daemon.storage.registry import audit_records

        start, end = parse_date(date_from, "--from"), parse_date(date_to, "--to")
        until = parse_date(as_of, "--as-of") if as_of else dt.date.today()
        if end < start:
            typer.echo(f"noduled: --to {end} is before --from {start}", err=True)
            raise typer.Exit(code=2)
        settings = settings_or_exit(config)
        r = settings.registry
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task("reading the registry", total=4)
            engine = open_index(settings.database_url)
            try:
                exams, outcomes = audit_records(
                    engine,
                    key=r.pseudonym_key,
                    as_of=max(until, end),
                    identified=identified,
                    protocol=settings.analysis.protocol,
                )
            except PseudonymKeyMissing as exc:
                progress.stop()
                typer.echo(f"noduled: {exc}", err=True)
                raise typer.Exit(code=2) from None
            finally:
                engine.dispose()
            progress.update(task, advance=1, description=f"computing the measures ({len(exams)} exams)")
            figures = compute_audit(
                exams,
                outcomes,
                AuditOptions(
                    period_from=start,
                    period_to=end,
                    as_of=until,
                    protocol=settings.analysis.protocol,
                    adherence_tolerance_days=r.adherence_tolerance_days,
                    ctdivol_target_mgy=r.ctdivol_target_mgy,
                    expected_category_pct={k: (v[0], v[1]) for k, v in r.expected_category_pct.items()},
                ),
            )
            progress.update(task, advance=1, description="drawing the figures")
            page = render_audit(figures, site=r.facility_id, identified=identified)
            progress.update(task, advance=1, description=f"writing {out}")
            out.write_text(page, encoding="utf-8")
            progress.update(task, advance=1, description="done")
        typer.echo(f"{figures['exams']} exams of {figures['participants']} participants -> {out}")
