"""``noduled verify``: check the whole archive against its index (read-only).

Every index row must have its file, of the size indexed; every file under the
archive must have its row.  ``--hash`` also reads every file completely: it
must pass the checks a received instance passes (daemon/validation.py) and
hold the SOP Instance UID its row names; the SHA-256 of each file is given
with ``--json``.  Exit status 0 when the archive is consistent, 1 when
anything is missing, damaged or orphaned (listed), 2 on a configuration error.
Repairs are made by ``noduled serve`` at start-up (daemon/integrity.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit

_KIND_TEXT = {
    "missing": "indexed, file missing",
    "size": "file of the wrong size",
    "unreadable": "file unreadable",
    "orphan": "file without an index row",
}


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        config: Path | None = ConfigOption,
        hash_files: bool = typer.Option(False, "--hash", help="Also read, check and hash every file (slower)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Check that every index row has its file and every archived file its row."""
        from daemon.storage.archive import Archive
        from daemon.storage.db import open_index
        from daemon.storage.integrity import scan, summary

        settings = settings_or_exit(config)
        if not settings.archive_dir.is_dir():
            typer.echo(f"noduled: no archive at {settings.archive_dir} (storage.data_dir)", err=True)
            raise typer.Exit(code=2)
        engine = open_index(settings.database_url)
        archive = Archive(settings.archive_dir, engine)
        t0 = time.monotonic()
        result = scan(archive, read_files=hash_files)
        lost = summary(archive)
        engine.dispose()
        elapsed = time.monotonic() - t0
        problems = len(result.findings) + len(lost["still_missing"])
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "archive": str(settings.archive_dir),
                        "rows": result.rows,
                        "files": result.files,
                        "findings": [f.__dict__ for f in result.findings],
                        "lost_at_start_up_still_missing": lost["still_missing"],
                        "sha256": result.sha256 if hash_files else None,
                        "ok": problems == 0,
                    },
                    indent=2,
                )
            )
        else:
            typer.echo(
                f"archive {settings.archive_dir}: {result.rows} index rows, {result.files} files"
                f"{', every file read and hashed' if hash_files else ''} ({elapsed:.1f} s)"
            )
            for f in result.findings:
                uid = f" (SOP Instance UID {f.sop_instance_uid})" if f.sop_instance_uid else ""
                typer.echo(f"  {_KIND_TEXT.get(f.kind, f.kind)}: {f.path}{uid}: {f.detail}")
            for e in lost["still_missing"]:
                typer.echo(
                    f"  acknowledged, found missing at start-up {e.get('found_at', '')} and not received again: "
                    f"{e['path']} (SOP Instance UID {e['sop_instance_uid']})"
                )
            if problems == 0:
                typer.echo("OK: every index row has its file and every file its row")
            else:
                typer.echo(
                    f"{problems} problems; instances that are missing are restored by sending them again from the PACS"
                )
        if problems:
            raise typer.Exit(code=1)
