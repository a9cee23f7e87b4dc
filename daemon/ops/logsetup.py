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
    converter = time.gmtime


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    noisy_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("pynetdicom", "alembic", "huey", "sqlalchemy", "highdicom"):
        logging.getLogger(name).setLevel(noisy_level)
