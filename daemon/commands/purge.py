"""``noduled purge``: apply the retention policy now (``--dry-run``: only say what it would delete)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("purge")
    def purge(
        config: Path | None = ConfigOption,
        dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted; delete nothing."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        r"""Delete the CT images of reported, delivered studies past \[storage] retention_days, or over the disk high-water mark.

        SR, SEG, key images, seed objects, the index and the longitudinal record are kept; a study not reported, or with an object not delivered, is never touched.  `noduled serve` does this every \[storage] purge_interval_s by itself.
        """
        from daemon.storage import retention
        from daemon.storage.db import open_index
        from daemon.workflow.state import utcnow

        settings = settings_or_exit(config)
        st = settings.storage
        engine = open_index(settings.database_url)
        try:
            result = retention.purge(
                engine,
                settings.archive_dir,
                settings.data_dir,
                now=utcnow(),
                retention_days=st.retention_days,
                high_water_mark_percent=st.high_water_mark_percent,
                low_water_mark_percent=st.low_water_mark_percent,
                dry_run=dry_run,
            )
        finally:
            engine.dispose()
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "dry_run": result.dry_run,
                        "disk_used_percent": round(result.disk_used_percent, 2),
                        "files_deleted": result.files_deleted,
                        "bytes_freed": result.bytes_freed,
                        "studies": [
                            {
                                "study_uid": c.study_uid,
                                "reported_at": c.reported_at.isoformat(),
                                "reason": c.reason,
                                "files": c.files,
                                "size_bytes": c.size_bytes,
                            }
                            for c in result.studies
                        ],
                    },
                    indent=2,
                )
            )
            return
        verb = "would purge" if dry_run else "purged"
        typer.echo(
            f"disk {result.disk_used_percent:.1f} % used (high-water mark {st.high_water_mark_percent:g} %, "
            f"retention {st.retention_days:g} days): {verb} {len(result.studies)} studies, "
            f"{sum(c.files for c in result.studies)} CT files, {sum(c.size_bytes for c in result.studies) / 1e6:.1f} MB"
        )
        for c in result.studies:
            typer.echo(
                f"  {c.study_uid}  reported {c.reported_at.date().isoformat()}  {c.files} files  "
                f"{c.size_bytes / 1e6:.1f} MB  ({'older than the retention' if c.reason == 'retention' else 'disk over the high-water mark'})"
            )
