"""The job queue (huey): analyses run as tasks.

``SqliteHuey`` in the data directory by default (durable on one machine,
workers embedded in ``noduled serve``), ``RedisHuey`` when ``[queue]
redis_url`` is set (workers anywhere: ``noduled worker``).  The queue carries
only study UIDs; the analysis state itself lives in the index (``analyses``):
one analysis per study at a time is a lease on its row (see
:func:`daemon.workflow.study.claim_study`), and an analysis interrupted by a crash
is found there and queued again (:class:`daemon.workflow.stability.StabilityMonitor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey

log = logging.getLogger(__name__)

RETRIES = 4  # transient failures (study busy in another worker, database busy, disk full for a while ...)
RETRY_DELAY_S = 5


class QueueUnreachable(Exception):
    """The job queue cannot be reached at start-up (the message is one line naming the key and URL)."""


def redacted_url(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def make_huey(data_dir: Path, redis_url: str = "") -> Huey:
    if redis_url:
        return RedisHuey("noduled", url=redis_url, results=False)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return SqliteHuey("noduled", filename=str(Path(data_dir) / "queue.sqlite"), results=False)


class JobQueue:
    """``enqueue(study_uid)`` -> ``run_analysis(study_uid)`` in a worker, one per study at a time."""

    def __init__(self, huey: Huey, run_analysis: Callable[[str, int], None]) -> None:
        self.huey = huey
        self._consumer: Any = None

        @huey.task(retries=RETRIES, retry_delay=RETRY_DELAY_S, retry_backoff=2, context=True, name="analyze_study")  # type: ignore[untyped-decorator]
        def analyze_study_task(study_uid: str, task=None) -> None:  # type: ignore[no-untyped-def]
            attempt = RETRIES - (task.retries if task is not None else RETRIES) + 1
            run_analysis(study_uid, attempt)

        self._task = analyze_study_task

    def enqueue(self, study_uid: str) -> None:
        self._task(study_uid)

    def depth(self) -> int:
        return int(self.huey.pending_count())

    def ping(self) -> None:
        """Raises when the queue's storage cannot be reached."""
        self.huey.pending_count()

    def wait_reachable(self, url: str, *, attempts: int = 5, delay_s: float = 2.0, sleep=time.sleep) -> None:  # type: ignore[no-untyped-def]
        """At start-up: a few tries (``attempts`` x ``delay_s``), then :class:`QueueUnreachable`, one line."""
        for attempt in range(1, attempts + 1):
            try:
                self.ping()
                return
            except Exception as exc:
                if attempt == attempts:
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise QueueUnreachable(
                        f"job queue unreachable: [queue] redis_url = {redacted_url(url)}: {first} "
                        f"(tried {attempts} times in {(attempts - 1) * delay_s:.0f} s)"
                    ) from None
                if attempt == 1:
                    log.warning("job queue [queue] redis_url = %s not reachable yet, retrying", redacted_url(url))
                sleep(delay_s)

    @property
    def single_process(self) -> bool:
        """SQLite queue: one node process owns queue and analyses, so a running analysis found at start is a crash's."""
        return not isinstance(self.huey, RedisHuey)

    def start_workers(self, workers: int) -> None:
        """Start ``workers`` worker threads in this process (non-blocking)."""
        if workers <= 0:
            return
        self._consumer = self._create_consumer(workers)
        self._consumer.start()
        log.info("%d analysis worker(s) started", workers)

    def stop_workers(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def run_forever(self, workers: int) -> None:
        """``noduled worker``: run workers in the foreground until SIGINT/SIGTERM."""
        self._create_consumer(max(1, workers)).run()

    def _create_consumer(self, workers: int):  # type: ignore[no-untyped-def]
        return self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=0.1,  # an idle worker looks for new jobs 10 times a second (one indexed read)
        )
