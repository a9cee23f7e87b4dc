"""Logging: one line per event on stderr.

Lines at INFO and above carry job and study keys only, never patient names,
IDs or birth dates (DESIGN §5).  pynetdicom's own INFO chatter (which can
include dataset summaries) is held to WARNING unless DEBUG is asked for.
"""

from __future__ import annotations

import logging
import sys
import time


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime  # type: ignore[assignment]  # typeshed's signature differs; the stdlib documents this use


class QuietRepeats(logging.Filter):
    """The job queue's errors, once a minute and on one line: a Redis that is away made huey's
    consumer log a traceback 4 times a second per worker thread (37,767 lines in 90 s)."""

    def __init__(self, prefix: str = "huey", every_s: float = 60.0) -> None:
        super().__init__()
        self.prefix, self.every_s = prefix, every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix) or record.levelno < logging.WARNING:
            return True
        key = f"{record.name.split('.', 2)[:2]}:{record.msg}"
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            first = str(exc).splitlines()[0] if str(exc) else ""
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {first}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            record.msg = f"{record.getMessage()} ({skipped} more like it in the last {self.every_s:.0f} s)"
            record.args = ()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(QuietRepeats())
    handler.setFormatter(_UTCFormatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    noisy_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("pynetdicom", "alembic", "huey", "sqlalchemy", "highdicom"):
        logging.getLogger(name).setLevel(noisy_level)
