"""When is a study ready for analysis? (DESIGN §1, issue: stability)

A study is ready when it has CT images and at least one seed candidate (an
SR or GSPS not written by noduled) and either the association that carried
its last instance was released and ``release_quiet_s`` (2 s) passed without
another instance, or no instance has arrived for ``stable_age_s`` (the upper
bound, for senders that keep their associations open).  A study with CT and no seed candidate is "awaiting seeds".
A seed object that arrives after the analysis changes the study's seed
fingerprint, which makes the study ready again: the re-analysis writes an SR
that replaces the earlier one.

:class:`StabilityMonitor` keeps a cursor on the instance table, so each tick
looks only at studies that received something since the last tick.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from daemon.analysis.sop_classes import CT_IMAGE_STORAGE, is_noduled_object, is_seed_candidate
from daemon.storage.schema import instances, series, studies
from daemon.workflow import state
from daemon.workflow.state import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudySnapshot:
    study_uid: str
    ct_instances: int
    candidate_uids: tuple[str, ...]
    last_received_at: dt.datetime  # of anything not written by noduled
    ct_uids: tuple[str, ...] = ()


def snapshot(engine: Engine, study_uid: str) -> StudySnapshot | None:
    q = (
        select(instances.c.sop_class_uid, instances.c.sop_instance_uid, instances.c.received_at, series.c.manufacturer)
        .select_from(
            instances.join(series, series.c.id == instances.c.series_pk).join(
                studies, studies.c.id == series.c.study_pk
            )
        )
        .where(studies.c.study_uid == study_uid)
    )
    ct = 0
    uids: list[str] = []
    ct_uids: list[str] = []
    last: dt.datetime | None = None
    with engine.connect() as conn:
        for row in conn.execute(q):
            if is_noduled_object(row.manufacturer):
                continue  # our own reports do not make a study unstable
            received = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=dt.UTC)
            last = received if last is None or received > last else last
            if row.sop_class_uid == CT_IMAGE_STORAGE:
                ct += 1
                ct_uids.append(row.sop_instance_uid)
            elif is_seed_candidate(row.sop_class_uid, row.manufacturer):
                uids.append(row.sop_instance_uid)
    if last is None:
        return None
    return StudySnapshot(study_uid, ct, tuple(sorted(uids)), last, tuple(ct_uids))


SWEEP_EVERY = dt.timedelta(seconds=10)  # expired leases and lost jobs are looked for this often
LOST_JOB_AFTER = dt.timedelta(seconds=30)  # a study queued this long without a worker taking it is queued again
PRIORS_RETRY_EVERY = dt.timedelta(seconds=60)


class StabilityMonitor:
    """Finds studies that became ready and hands them to ``enqueue(study_uid)``; sweeps for lost jobs."""

    def __init__(
        self,
        engine: Engine,
        enqueue: Callable[[str], None],
        *,
        stable_age_s: float,
        require_seeds: bool = True,
        release_quiet_s: float = 2.0,
        queue_depth: Callable[[], int] | None = None,
    ) -> None:
        self.engine = engine
        # jobs waiting in the queue: while there are any, a study queued for long is behind them, not lost
        self._queue_depth = queue_depth
        self._enqueue = enqueue
        self.stable_age = dt.timedelta(seconds=stable_age_s)
        self.release_quiet = dt.timedelta(seconds=min(release_quiet_s, stable_age_s))
        self.require_seeds = require_seeds
        self._cursor = 0  # highest instance id looked at
        self._waiting: set[str] = set()  # studies that changed and are not yet stable
        self._released: dict[str, dt.datetime] = {}  # study -> when an association that carried it was released
        self._lock = threading.Lock()
        self.wakeup = threading.Event()  # set on a release: the next tick comes at once
        self._last_sweep: dt.datetime | None = None
        self._last_priors_retry: dt.datetime | None = None
        self._swept: dict[str, dt.datetime] = {}  # lost jobs queued again, when
        self._queue_down_logged: dt.datetime | None = None

    def released(self, study_uids: Iterable[str], *, now: dt.datetime | None = None) -> None:
        """The SCP's hook: an association that carried instances of ``study_uids`` was released."""
        now = now or utcnow()
        with self._lock:
            for uid in study_uids:
                self._released[uid] = now
        self.wakeup.set()

    def enqueue(self, study_uid: str) -> bool:
        """Hand the study to the queue; a queue that cannot be reached is logged (once a minute), and the
        study, ``queued`` in the index, is queued again by :meth:`sweep` when the queue is back."""
        try:
            self._enqueue(study_uid)
        except Exception as exc:
            now = utcnow()
            if self._queue_down_logged is None or now - self._queue_down_logged > dt.timedelta(minutes=1):
                self._queue_down_logged = now
                log.warning(
                    "job queue unreachable (%s: %s); study %s stays queued in the index and is queued again when it is back",
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    study_uid,
                )
            return False
        return True

    def sweep(self, now: dt.datetime | None = None) -> list[str]:
        """The index is the source of truth: queue again every analysis whose lease ran out (dead worker)
        and every queued study whose job was lost (queue restarted without persistence, unreachable)."""
        now = now or utcnow()
        again = []
        for study_uid in self.resume(all_running=False, now=now):
            again.append(study_uid)
        stale = state.stale_queued(self.engine, LOST_JOB_AFTER, now=now)
        if stale and self._queue_depth is not None:
            try:
                waiting = self._queue_depth()
            except Exception:  # unreachable: enqueueing would fail too; the next sweep looks again
                return again
            if waiting > 0:
                # a burst: the workers are busy and the studies wait their turn; a job queued again now
                # would only be a duplicate (a restarted queue without persistence, or one unreachable at
                # enqueue time, holds no job for them: depth 0, and they are queued again below)
                return again
        for study_uid in stale:
            last = self._swept.get(study_uid)
            if last is not None and now - last < LOST_JOB_AFTER:
                continue
            self._swept[study_uid] = now
            if self.enqueue(study_uid):
                log.info("study %s: queued for %s without a worker taking it; queued again", study_uid, LOST_JOB_AFTER)
                again.append(study_uid)
        if len(self._swept) > 10000:
            self._swept = {k: v for k, v in self._swept.items() if now - v < LOST_JOB_AFTER}
        return again

    def interrupted(self, *, all_running: bool, now: dt.datetime | None = None) -> list[str]:
        """Analyses that were queued or started and will not finish by themselves (:func:`state.interrupted`)."""
        return state.interrupted(self.engine, all_running=all_running, now=now)

    def resume(self, *, all_running: bool, now: dt.datetime | None = None) -> list[str]:
        """Queue again the analyses a crashed process or worker left unfinished."""
        rows = self.interrupted(all_running=all_running, now=now)
        state.requeue(self.engine, rows, now=now)
        for study_uid in rows:
            log.info("study %s: analysis interrupted (restart or dead worker), queued again", study_uid)
            self.enqueue(study_uid)
        return list(rows)

    def retry_waiting(self) -> list[str]:
        """Queue again the studies waiting for their priors from PACS."""
        rows = state.requeue_waiting_for_priors(self.engine)
        for study_uid in rows:
            self.enqueue(study_uid)
        return rows

    def tick(self, now: dt.datetime | None = None) -> list[str]:
        """One pass; returns the studies enqueued."""
        now = now or utcnow()
        self.wakeup.clear()
        if self._last_sweep is None or now - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = now
            self.sweep(now)
        if self._last_priors_retry is None:
            self._last_priors_retry = now
        elif now - self._last_priors_retry >= PRIORS_RETRY_EVERY:
            self._last_priors_retry = now
            self.retry_waiting()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(studies.c.study_uid, func.max(instances.c.id))
                .select_from(
                    instances.join(series, series.c.id == instances.c.series_pk).join(
                        studies, studies.c.id == series.c.study_pk
                    )
                )
                .where(instances.c.id > self._cursor)
                .group_by(studies.c.study_uid)
            ).all()
        for study_uid, max_id in rows:
            self._waiting.add(study_uid)
            self._cursor = max(self._cursor, int(max_id))
        enqueued = []
        for study_uid in sorted(self._waiting):
            snap = snapshot(self.engine, study_uid)
            if snap is None:  # only our own objects changed
                self._waiting.discard(study_uid)
                continue
            quiet = now - snap.last_received_at
            with self._lock:
                released_at = self._released.get(study_uid)
            released = released_at is not None and released_at >= snap.last_received_at
            if quiet < self.stable_age and not (released and quiet >= self.release_quiet):
                continue
            self._waiting.discard(study_uid)
            with self._lock:
                self._released.pop(study_uid, None)
            if self._consider(snap, now):
                enqueued.append(study_uid)
        with self._lock:  # a release of a study with nothing new to look at (duplicates only) is forgotten
            for study_uid, at in list(self._released.items()):
                if study_uid not in self._waiting and now - at > self.stable_age:
                    del self._released[study_uid]
        return enqueued

    def _consider(self, snap: StudySnapshot, now: dt.datetime) -> bool:
        if snap.ct_instances == 0:
            return False  # seeds or reports without images: nothing to analyse
        fingerprint = state.study_fingerprint(snap.candidate_uids, snap.ct_uids)
        if not state.consider(
            self.engine,
            snap.study_uid,
            fingerprint,
            has_candidates=bool(snap.candidate_uids),
            require_seeds=self.require_seeds,
            now=now,
        ):
            return False
        self.enqueue(snap.study_uid)
        return True

    def next_tick_s(self, default_s: float) -> float:
        """How long the tick loop may sleep: until the first released study's quiet time is over."""
        with self._lock:
            first = min(self._released.values(), default=None)
        if first is None:
            return default_s
        due_s = (first + self.release_quiet - utcnow()).total_seconds()
        if due_s < 0:  # overdue (its instances not seen yet, or more came): look again soon
            return min(default_s, max(0.05, self.release_quiet.total_seconds() / 4))
        return min(default_s, max(0.01, due_s + 0.005))
