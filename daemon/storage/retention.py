"""Retention: the archive does not fill the disk (``[storage] retention_days`` and the water marks).

The CT images of a study are the bulk of the archive (~150 MB a study) and the PACS keeps them; what
only noduled has is small.  So, for a study that is **reported** (analysis done) and whose every
outbox row is **delivered** (committed, where the destination commits), the CT image files are
deleted:

- ``retention_days`` after the report (0 = never by age);
- sooner, oldest report first, while the data_dir's filesystem is fuller than
  ``high_water_mark_percent``, until it is below ``low_water_mark_percent``.

Kept always: SR, SEG, key images, seed objects, every index row and the longitudinal record.  A
study that is not reported, or has an object not (yet) delivered (pending or expired), is never
purged.  A purged instance keeps its index row with ``purged_at`` set: readers of files skip it,
and the prior lookup sees the series as missing, so the priors come back from the PACS when a later
study needs them (:meth:`daemon.storage.archive.Archive.store` restores the row).

Order of a purge: the rows are marked first, then the files deleted, so a crash in between leaves
an orphan file, never an index row without its file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, and_, exists, func, select, update

from daemon.analysis.sop_classes import CT_IMAGE_STORAGE
from daemon.storage.schema import analyses, instances, outbox, series, studies

log = logging.getLogger(__name__)

PURGED_CLASSES = (str(CT_IMAGE_STORAGE), "1.2.840.10008.5.1.4.1.1.2.1")  # CT Image, Enhanced CT Image Storage
_DONE = "done"
_DELIVERED = "delivered"


@dataclass(frozen=True)
class PurgeCandidate:
    study_uid: str
    reported_at: dt.datetime
    files: int  # CT image files still on disk
    size_bytes: int
    reason: str = ""  # "retention" (older than retention_days) | "disk" (high-water mark)


@dataclass
class PurgeResult:
    studies: list[PurgeCandidate] = field(default_factory=list)
    files_deleted: int = 0
    bytes_freed: int = 0
    dry_run: bool = False
    disk_used_percent: float = 0.0


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def purge_candidates(engine: Engine) -> list[PurgeCandidate]:
    """Reported studies whose every outbox row is delivered and that still have CT files, oldest report first."""
    ct = (
        select(
            series.c.study_pk,
            func.count().label("files"),
            func.coalesce(func.sum(instances.c.size_bytes), 0).label("size"),
        )
        .select_from(instances.join(series, series.c.id == instances.c.series_pk))
        .where(instances.c.sop_class_uid.in_(PURGED_CLASSES), instances.c.purged_at.is_(None))
        .group_by(series.c.study_pk)
        .subquery()
    )
    undelivered = exists().where(and_(outbox.c.study_uid == studies.c.study_uid, outbox.c.state != _DELIVERED))
    delivered = exists().where(and_(outbox.c.study_uid == studies.c.study_uid, outbox.c.state == _DELIVERED))
    q = (
        select(studies.c.study_uid, analyses.c.finished_at, ct.c.files, ct.c.size)
        .select_from(
            studies.join(analyses, analyses.c.study_uid == studies.c.study_uid).join(ct, ct.c.study_pk == studies.c.id)
        )
        .where(analyses.c.state == _DONE, analyses.c.finished_at.is_not(None), delivered, ~undelivered)
        .order_by(analyses.c.finished_at, studies.c.study_uid)
    )
    with engine.connect() as conn:
        return [PurgeCandidate(r.study_uid, _utc(r.finished_at), int(r.files), int(r.size)) for r in conn.execute(q)]


def disk_used_percent(path: Path, disk_usage: Callable[[Path], shutil._ntuple_diskusage] = shutil.disk_usage) -> float:
    usage = disk_usage(path)
    return 100.0 * (usage.total - usage.free) / usage.total if usage.total else 0.0


def plan_purge(
    engine: Engine,
    data_dir: Path,
    *,
    now: dt.datetime,
    retention_days: float,
    high_water_mark_percent: float,
    low_water_mark_percent: float,
    disk_usage: Callable[[Path], shutil._ntuple_diskusage] = shutil.disk_usage,
) -> tuple[list[PurgeCandidate], float]:
    """What a purge at ``now`` deletes, and the filesystem's use in percent now."""
    candidates = purge_candidates(engine)
    usage = disk_usage(data_dir)
    used = usage.total - usage.free
    percent = 100.0 * used / usage.total if usage.total else 0.0
    chosen: list[PurgeCandidate] = []
    rest = []
    cutoff = now - dt.timedelta(days=retention_days) if retention_days > 0 else None
    for c in candidates:
        if cutoff is not None and c.reported_at <= cutoff:
            chosen.append(PurgeCandidate(c.study_uid, c.reported_at, c.files, c.size_bytes, "retention"))
        else:
            rest.append(c)
    if usage.total and percent > high_water_mark_percent:
        target = usage.total * low_water_mark_percent / 100.0
        projected = used - sum(c.size_bytes for c in chosen)
        for c in rest:  # oldest report first
            if projected <= target:
                break
            chosen.append(PurgeCandidate(c.study_uid, c.reported_at, c.files, c.size_bytes, "disk"))
            projected -= c.size_bytes
    return chosen, percent


def purge(
    engine: Engine,
    archive_root: Path,
    data_dir: Path,
    *,
    now: dt.datetime,
    retention_days: float,
    high_water_mark_percent: float,
    low_water_mark_percent: float,
    dry_run: bool = False,
    disk_usage: Callable[[Path], shutil._ntuple_diskusage] = shutil.disk_usage,
) -> PurgeResult:
    """Plan (:func:`plan_purge`) and, unless ``dry_run``, delete the CT files of the chosen studies."""
    chosen, percent = plan_purge(
        engine,
        data_dir,
        now=now,
        retention_days=retention_days,
        high_water_mark_percent=high_water_mark_percent,
        low_water_mark_percent=low_water_mark_percent,
        disk_usage=disk_usage,
    )
    result = PurgeResult(studies=chosen, dry_run=dry_run, disk_used_percent=percent)
    if dry_run:
        return result
    for c in chosen:
        files, freed = purge_study(engine, archive_root, c.study_uid, now=now)
        result.files_deleted += files
        result.bytes_freed += freed
        log.info(
            "study %s: %d CT files purged (%.1f MB, %s; reported %s)",
            c.study_uid,
            files,
            freed / 1e6,
            c.reason,
            c.reported_at.date().isoformat(),
        )
    return result


def purge_study(engine: Engine, archive_root: Path, study_uid: str, *, now: dt.datetime) -> tuple[int, int]:
    """Mark the study's CT instances purged, then delete their files; (files deleted, bytes freed)."""
    with engine.begin() as conn:
        q = (
            select(instances.c.id, instances.c.path, instances.c.size_bytes)
            .select_from(
                instances.join(series, series.c.id == instances.c.series_pk).join(
                    studies, studies.c.id == series.c.study_pk
                )
            )
            .where(
                studies.c.study_uid == study_uid,
                instances.c.sop_class_uid.in_(PURGED_CLASSES),
                instances.c.purged_at.is_(None),
            )
        )
        rows = conn.execute(q).all()
        if rows:
            conn.execute(update(instances).where(instances.c.id.in_([r.id for r in rows])).values(purged_at=now))
    files = freed = 0
    folders = set()
    for r in rows:
        path = Path(archive_root) / r.path
        try:
            path.unlink()
            files += 1
            freed += int(r.size_bytes or 0)
        except FileNotFoundError:
            pass
        folders.add(path.parent)
    for folder in folders:  # a series folder left empty goes too
        try:
            os.rmdir(folder)
        except OSError:
            pass
    return files, freed


def archive_bytes(engine: Engine) -> int:
    """Bytes of the instance files the index says are on disk (the ``noduled_archive_bytes`` gauge)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.coalesce(func.sum(instances.c.size_bytes), 0)).where(instances.c.purged_at.is_(None))
            ).scalar_one()
        )
