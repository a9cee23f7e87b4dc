"""When is a study ready for analysis? (DESIGN §1, issue: stability)

A study is ready when it has CT images and at least one seed candidate (an
SR or GSPS not written by noduled) and no instance has arrived for
``stable_age_s``.  A study with CT and no seed candidate is "awaiting seeds".
A seed object that arrives after the analysis changes the study's seed
fingerprint, which makes the study ready again: the re-analysis writes an SR
that replaces the earlier one.

:class:`StabilityMonitor` keeps a cursor on the instance table, so each tick
looks only at studies that received something since the last tick.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
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
        .select_from(instances.join(series, series.c.id == instances.c.series_pk).join(studies, studies.c.id == series.c.study_pk))
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
            received = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=dt.timezone.utc)
            last = received if last is None or received > last else last
            if row.sop_class_uid == CT_IMAGE_STORAGE:
                ct += 1
                ct_uids.append(row.sop_instance_uid)
            elif is_seed_candidate(row.sop_class_uid, row.manufacturer):
                uids.append(row.sop_instance_uid)
    if last is None:
        return None
    return StudySnapshot(study_uid, ct, tuple(sorted(uids)), last, tuple(ct_uids))


class StabilityMonitor:
    """Finds studies that became ready and hands them to ``enqueue(study_uid)``."""

    def __init__(self, engine: Engine, enqueue: Callable[[str], None], *, stable_age_s: float, require_seeds: bool = True) -> None:
        self.engine = engine
        self.enqueue = enqueue
        self.stable_age = dt.timedelta(seconds=stable_age_s)
        self.require_seeds = require_seeds
        self._cursor = 0  # highest instance id looked at
        self._waiting: set[str] = set()  # studies that changed and are not yet stable
        self._ticks = 0

    def interrupted(self, *, all_running: bool, now: dt.datetime | None = None) -> list[str]:
        """Analyses that were queued or started and will not finish by themselves (:func:`state.interrupted`)."""
        return state.interrupted(self.engine, all_running=all_running, now=now)

    def resume(self, *, all_running: bool) -> list[str]:
        """Queue again the analyses a crashed process or worker left unfinished."""
        rows = self.interrupted(all_running=all_running)
        state.requeue(self.engine, rows)
        for study_uid in rows:
            log.info("study %s: analysis interrupted by a restart, queued again", study_uid)
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
        self._ticks += 1
        if self._ticks % 60 == 0:  # now and then: analyses whose worker died, studies waiting for priors
            self.resume(all_running=False)
            self.retry_waiting()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(studies.c.study_uid, func.max(instances.c.id))
                .select_from(instances.join(series, series.c.id == instances.c.series_pk).join(studies, studies.c.id == series.c.study_pk))
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
            if now - snap.last_received_at < self.stable_age:
                continue
            self._waiting.discard(study_uid)
            if self._consider(snap, now):
                enqueued.append(study_uid)
        return enqueued

    def _consider(self, snap: StudySnapshot, now: dt.datetime) -> bool:
        if snap.ct_instances == 0:
            return False  # seeds or reports without images: nothing to analyse
        fingerprint = state.study_fingerprint(snap.candidate_uids, snap.ct_uids)
        if not state.consider(
            self.engine, snap.study_uid, fingerprint, has_candidates=bool(snap.candidate_uids),
            require_seeds=self.require_seeds, now=now,
        ):
            return False
        self.enqueue(snap.study_uid)
        return True
