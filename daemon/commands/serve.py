"""``noduled serve``: run the node in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from daemon.commands.common import ConfigOption, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(config: Path | None = ConfigOption) -> None:
        """Run the DICOM node (Storage SCP) in the foreground; Ctrl-C stops it cleanly."""
        import logging

        from daemon.node import Node
        from daemon.ops.logsetup import configure_logging

        settings = settings_or_exit(config)
        configure_logging(settings.logging.level)
        log = logging.getLogger("daemon.serve")
        from daemon.node import StartupError
        from daemon.workflow.jobs import QueueUnreachable

        try:
            node = Node(settings)
            node.start()
        except (StartupError, QueueUnreachable) as exc:
            typer.echo(f"noduled: {exc}", err=True)
            raise typer.Exit(code=2) from None
        except OSError as exc:
            log.error("cannot start: %s", exc)
            raise typer.Exit(code=1) from None

        def _stop(signum: int, _frame: object) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            node.stop()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        node.wait()
        log.info("stopped")
