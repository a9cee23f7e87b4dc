"""Logging: one line per event on stderr.

Lines at INFO and above carry job and study keys only, never patient names,
IDs or birth dates (DESIGN §5).  pynetdicom's own INFO chatter (which can
include dataset summaries) is held to WARNING unless DEBUG is asked for.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings

# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators: a peer's value containing
# them (a UID with a newline, an AE title with an escape sequence) could forge or hide log lines
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# pydicom's value warnings quote the offending value, which may be a patient's name or ID
_PYDICOM_VALUE = re.compile(r"(Invalid value for VR \w+): .*?(?=\. Please see|$)", re.DOTALL)


def escape_control(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``, ...)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class _UTCFormatter(logging.Formatter):
    """One line per record: the message (peer values included) has its control characters escaped.

    A traceback, when there is one, follows on its own lines as usual.
    """

    converter = time.gmtime  # type: ignore[assignment]  # typeshed's signature differs; the stdlib documents this use

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging naming)
        record.message = escape_control(record.message)
        return super().formatMessage(record)


def _format_warning(message, category, filename, lineno, line=None) -> str:  # type: ignore[no-untyped-def]
    text = _PYDICOM_VALUE.sub(r"\1 (value not logged)", str(message))
    return f"{category.__name__}: {text} ({filename}:{lineno})"


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
    handler.setFormatter(
        _UTCFormatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    noisy_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("pynetdicom", "alembic", "huey", "sqlalchemy", "highdicom"):
        logging.getLogger(name).setLevel(noisy_level)
    # pydicom reports a questionable value twice, through its logger and as a Python warning (which
    # would reach stderr without a timestamp): the warning is captured into this log format, once per
    # place in the code (the warnings module's default), the logger's copy is dropped unless DEBUG
    logging.getLogger("pydicom").setLevel(logging.DEBUG if level == "DEBUG" else logging.ERROR)
    warnings.formatwarning = _format_warning
    logging.captureWarnings(True)
