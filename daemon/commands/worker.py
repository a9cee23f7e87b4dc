"""``noduled worker``: analysis workers only (scale-out: several machines share Redis + PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        config: Path | None = ConfigOption,
        # help texts are rich markup: "[queue]" unescaped would be read as a style tag and vanish
        workers: int | None = typer.Option(
            None, "--workers", "-w", help=r"Worker threads (default: \[queue] workers)."
        ),
    ) -> None:
        """Run analysis workers in the foreground (no DICOM listener); Ctrl-C stops them."""
        from daemon.node import Node, StartupError
        from daemon.ops.logsetup import configure_logging
        from daemon.settings import ConfigError
        from daemon.workflow.jobs import QueueUnreachable

        settings = settings_or_exit(config)
        configure_logging(settings.logging.level)
        try:
            node = Node(settings, serve_dicom=False)
            if settings.queue.redis_url:
                node.queue.wait_reachable(settings.queue.redis_url)
        except (StartupError, QueueUnreachable, ConfigError) as exc:
            typer.echo(f"noduled: {exc}", err=True)
            raise typer.Exit(code=2) from None
        node.warm_up()
        node.queue.run_forever(workers if workers is not None else max(1, settings.queue.workers))
