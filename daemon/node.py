"""The running node: wires settings, index, archive and the SCP together."""

from __future__ import annotations

import logging
import threading

from daemon.archive import Archive
from daemon.db import open_index
from daemon.scp import StorageSCP
from daemon.settings import Settings

log = logging.getLogger(__name__)


class Node:
    """Everything ``noduled serve`` runs, started and stopped as one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = open_index(settings.database_url)
        self.archive = Archive(settings.archive_dir, self.engine, min_free_disk_mb=settings.storage.min_free_disk_mb)
        self.scp = StorageSCP(settings.scp, self.archive)
        self._stopped = threading.Event()

    def start(self) -> None:
        recovered = self.archive.recover()
        if any(recovered.values()):
            log.warning(
                "recovered from an interrupted run: %(partial_files_removed)d partial files removed, "
                "%(unacknowledged_rows_removed)d unacknowledged index rows removed",
                recovered,
            )
        self.scp.start()

    def stop(self) -> None:
        self.scp.stop()
        self.engine.dispose()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()
