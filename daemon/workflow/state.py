"""The analysis state machine: one row per study in ``analyses``, and every transition of it.

Every write of ``analyses.state`` in the node is a function of this module, each one a
conditional UPDATE (or an INSERT for a study seen for the first time), so two processes
sharing the index cannot both take the same study::

    new ──> awaiting-seeds ──> queued ──> running ──> done
     │           ▲               ▲  ▲        │  │
     └───────────┴───────────────┘  │        │  └──> failed
                                    │        └──> waiting-priors
                                    └─── (a lease run out, a restart, priors to try again)

``running`` is a lease (:data:`LEASE`), renewed by the analysing worker every :data:`HEARTBEAT`
(:func:`renew`): a worker that dies holding it loses the study when the lease runs out (<= 30 s),
and the sweeper (:meth:`daemon.workflow.stability.StabilityMonitor.sweep`) queues it again.

The database is the source of truth, the job queue only a wake-up: a ``queued`` study whose
job was lost (Redis restarted without persistence, unreachable when the study became ready) is
queued again by the sweeper; a job for a study analysed already does nothing.

The fingerprint of a study (:func:`study_fingerprint`) covers its seed candidates AND its CT
images, so CT slices that arrive after the analysis make the study ready again, like new seeds.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Engine, and_, insert, or_, select, update

from daemon.storage.schema import analyses

LEASE = dt.timedelta(seconds=30)  # renewed every HEARTBEAT while the analysis runs; a dead worker's runs out
HEARTBEAT = dt.timedelta(seconds=10)


class AnalysisState(enum.StrEnum):
    """The values of ``analyses.state``."""

    NEW = "new"  # seen with CT, not yet decided
    AWAITING_SEEDS = "awaiting-seeds"  # CT and no seed object yet (``[analysis] require_seeds``)
    QUEUED = "queued"  # handed to the job queue
    RUNNING = "running"  # a worker holds the lease
    WAITING_PRIORS = "waiting-priors"  # the PACS did not give the priors yet; the monitor queues it again
    DONE = "done"  # reported: SR (and SEG) stored, recorded and queued for delivery
    FAILED = "failed"  # cannot be analysed as it is; the reason is in ``analyses.reason``


class StudyBusy(Exception):
    """Another worker is analysing the study right now (try again later)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Clock = Callable[[], dt.datetime]


def candidates_fingerprint(sop_uids: Iterable[str]) -> str:
    """Identifies the set of seed candidates of a study; a new one means re-analysis
    (``analyses.seeds_fingerprint`` and ``analysed_fingerprint``)."""
    return hashlib.sha256("\n".join(sorted(sop_uids)).encode()).hexdigest()[:32]


def study_fingerprint(candidate_uids: Iterable[str], ct_uids: Iterable[str] = ()) -> str:
    """Identifies what an analysis of the study reads: its seed candidates and its CT images.

    A new seed object or a new CT slice (late data) changes it, and the study is analysed again.
    """
    return candidates_fingerprint([*candidate_uids, *(f"ct:{uid}" for uid in ct_uids)])


# ------------------------------------------------------------------ reads
def current(engine: Engine, study_uid: str):  # type: ignore[no-untyped-def]
    """The study's ``analyses`` row, or None."""
    with engine.connect() as conn:
        return conn.execute(select(analyses).where(analyses.c.study_uid == study_uid)).first()


def is_analysed(engine: Engine, study_uid: str, fingerprint: str) -> bool:
    """The study is done and its seed candidates are those analysed."""
    row = current(engine, study_uid)
    return row is not None and row.state == AnalysisState.DONE and row.analysed_fingerprint == fingerprint


def stale_queued(engine: Engine, older_than: dt.timedelta, *, now: dt.datetime | None = None) -> list[str]:
    """Studies ``queued`` for longer than ``older_than``: their job may have been lost with the queue."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(analyses.c.study_uid, analyses.c.updated_at).where(analyses.c.state == AnalysisState.QUEUED)
        ).all()
    return [uid for uid, updated in rows if (updated or now) <= now - older_than]


def interrupted(engine: Engine, *, all_running: bool, now: dt.datetime | None = None) -> list[str]:
    """Analyses that were queued or started and will not finish by themselves.

    ``all_running``: this process owns every analysis (SQLite queue), so at start any queued or
    running one was cut off by a crash; otherwise only running ones whose lease ran out count.
    """
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(analyses.c.study_uid, analyses.c.state, analyses.c.lease_until).where(
                analyses.c.state.in_((AnalysisState.QUEUED, AnalysisState.RUNNING))
            )
        )
        out = []
        for uid, state, lease in rows:  # lease: aware UTC (storage.types.UTCDateTime)
            if all_running or (state == AnalysisState.RUNNING and lease is not None and lease < now):
                out.append(uid)
        return out


# ------------------------------------------------------------ transitions
def consider(
    engine: Engine,
    study_uid: str,
    fingerprint: str,
    *,
    has_candidates: bool,
    require_seeds: bool,
    now: dt.datetime | None = None,
) -> bool:
    """A stable study with CT: queue it (True) unless analysed or on its way already, or without seeds."""
    now = now or utcnow()
    with engine.begin() as conn:
        row = conn.execute(select(analyses).where(analyses.c.study_uid == study_uid)).first()
        if row is None:
            conn.execute(
                insert(analyses).values(study_uid=study_uid, state=AnalysisState.NEW, attempts=0, updated_at=now)
            )
        elif row.analysed_fingerprint == fingerprint and row.state in (AnalysisState.DONE, AnalysisState.FAILED):
            return False  # nothing new since the last analysis
        elif row.state in (AnalysisState.QUEUED, AnalysisState.RUNNING) and row.seeds_fingerprint == fingerprint:
            return False  # already on its way
        elif row.state == AnalysisState.RUNNING and (row.lease_until or now) > now:
            # new data while a worker analyses the older set: it finishes, then :func:`done` queues the study again
            conn.execute(
                update(analyses)
                .where(analyses.c.study_uid == study_uid)
                .values(seeds_fingerprint=fingerprint, updated_at=now)
            )
            return True
        if not has_candidates and require_seeds:
            conn.execute(
                update(analyses)
                .where(analyses.c.study_uid == study_uid)
                .values(
                    state=AnalysisState.AWAITING_SEEDS,
                    reason="CT received, no seed object (SR or GSPS) yet",
                    updated_at=now,
                )
            )
            return False
        conn.execute(
            update(analyses)
            .where(analyses.c.study_uid == study_uid)
            .values(
                state=AnalysisState.QUEUED, seeds_fingerprint=fingerprint, queued_at=now, reason=None, updated_at=now
            )
        )
    return True


def requeue(engine: Engine, study_uids: Sequence[str], *, now: dt.datetime | None = None) -> None:
    """Queue again analyses a crashed process or a dead worker left unfinished."""
    if study_uids:
        with engine.begin() as conn:
            conn.execute(
                update(analyses)
                .where(analyses.c.study_uid.in_(list(study_uids)))
                .values(state=AnalysisState.QUEUED, lease_until=None, updated_at=now or utcnow())
            )


def requeue_waiting_for_priors(engine: Engine, *, now: dt.datetime | None = None) -> list[str]:
    """Queue again the studies waiting for their priors from PACS; returns them."""
    with engine.begin() as conn:
        rows = list(
            conn.execute(select(analyses.c.study_uid).where(analyses.c.state == AnalysisState.WAITING_PRIORS)).scalars()
        )
        if rows:
            conn.execute(
                update(analyses)
                .where(analyses.c.study_uid.in_(rows), analyses.c.state == AnalysisState.WAITING_PRIORS)
                .values(state=AnalysisState.QUEUED, updated_at=now or utcnow())
            )
    return rows


def awaiting_seeds(
    engine: Engine, study_uid: str, fingerprint: str, reason: str, *, now: dt.datetime | None = None
) -> None:
    """The study has no seed object to analyse yet."""
    _set(engine, study_uid, now, state=AnalysisState.AWAITING_SEEDS, seeds_fingerprint=fingerprint, reason=reason)


class AlreadyAnalysed(Exception):
    """A second job for a study whose data was analysed meanwhile (duplicate wake-ups are harmless)."""


def claim(engine: Engine, study_uid: str, fingerprint: str, *, now: dt.datetime | None = None) -> None:
    """Take the study's analysis lease (one analysis per study at a time), or raise :class:`StudyBusy`
    (another worker holds it) or :class:`AlreadyAnalysed`."""
    now = now or utcnow()
    with engine.begin() as conn:
        free = or_(
            analyses.c.state != AnalysisState.RUNNING, analyses.c.lease_until.is_(None), analyses.c.lease_until < now
        )
        not_done = or_(
            analyses.c.state != AnalysisState.DONE,
            analyses.c.analysed_fingerprint.is_(None),
            analyses.c.analysed_fingerprint != fingerprint,
        )
        free = and_(free, not_done)
        taken = conn.execute(
            update(analyses)
            .where(analyses.c.study_uid == study_uid, free)
            .values(
                state=AnalysisState.RUNNING,
                started_at=now,
                lease_until=now + LEASE,
                seeds_fingerprint=fingerprint,
                attempts=analyses.c.attempts + 1,
                reason=None,
                updated_at=now,
            )
        ).rowcount
        if not taken:
            exists = conn.execute(select(analyses.c.id).where(analyses.c.study_uid == study_uid)).first()
            if exists is None:
                conn.execute(
                    insert(analyses).values(
                        study_uid=study_uid,
                        state=AnalysisState.RUNNING,
                        started_at=now,
                        lease_until=now + LEASE,
                        seeds_fingerprint=fingerprint,
                        attempts=1,
                        updated_at=now,
                    )
                )
                return
            row = conn.execute(select(analyses).where(analyses.c.study_uid == study_uid)).first()
            if row is not None and row.state == AnalysisState.DONE and row.analysed_fingerprint == fingerprint:
                raise AlreadyAnalysed(study_uid)
            raise StudyBusy(study_uid)


def renew(engine: Engine, study_uid: str, *, now: dt.datetime | None = None) -> bool:
    """The analysing worker's heartbeat: extend its lease (False when the study is no longer running)."""
    now = now or utcnow()
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(analyses)
                .where(analyses.c.study_uid == study_uid, analyses.c.state == AnalysisState.RUNNING)
                .values(lease_until=now + LEASE)
            ).rowcount
        )


def waiting_for_priors(engine: Engine, study_uid: str, reason: str, *, now: dt.datetime | None = None) -> None:
    """The PACS could not give the priors: the lease is given up and the study waits."""
    _set(engine, study_uid, now, state=AnalysisState.WAITING_PRIORS, reason=reason, lease_until=None)


def done(
    engine: Engine,
    study_uid: str,
    fingerprint: str,
    *,
    report_sop_uid: str,
    seg_sop_uid: str | None,
    now: dt.datetime | None = None,
) -> None:
    """The study is reported (SR and SEG stored, recorded and queued for delivery).

    When data arrived during the analysis (``seeds_fingerprint`` moved on), the study is
    ``queued`` again instead: the sweeper or the job already queued analyses the newer data.
    """
    now = now or utcnow()
    with engine.begin() as conn:
        done_now(conn, study_uid, fingerprint, report_sop_uid=report_sop_uid, seg_sop_uid=seg_sop_uid, now=now)


def done_now(  # type: ignore[no-untyped-def]
    conn,
    study_uid: str,
    fingerprint: str,
    *,
    report_sop_uid: str,
    seg_sop_uid: str | None,
    now: dt.datetime,
    note: str | None = None,
) -> None:
    """:func:`done` inside the caller's transaction (the one that records the assessment and its outbox rows)."""
    row = conn.execute(select(analyses.c.seeds_fingerprint).where(analyses.c.study_uid == study_uid)).first()
    newer = row is not None and row.seeds_fingerprint not in (None, fingerprint)
    conn.execute(
        update(analyses)
        .where(analyses.c.study_uid == study_uid)
        .values(
            state=AnalysisState.QUEUED if newer else AnalysisState.DONE,
            finished_at=now,
            lease_until=None,
            analysed_fingerprint=fingerprint,
            report_sop_uid=report_sop_uid,
            seg_sop_uid=seg_sop_uid,
            reason="new data arrived during the analysis; analysing again" if newer else note,
            updated_at=now,
        )
    )


def failed(engine: Engine, study_uid: str, reason: str, *, now: dt.datetime | None = None) -> None:
    """The study cannot be analysed as it is: it stays failed until its seed candidates change."""
    now = now or utcnow()
    _set(
        engine,
        study_uid,
        now,
        state=AnalysisState.FAILED,
        reason=reason,
        finished_at=now,
        lease_until=None,
        analysed_fingerprint=analyses.c.seeds_fingerprint,
    )


def _set(engine: Engine, study_uid: str, now: dt.datetime | None, **values) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(
            update(analyses).where(analyses.c.study_uid == study_uid).values(updated_at=now or utcnow(), **values)
        )
