"""The archive's durability invariant, checked: every index row has its file, every file its row.

An acknowledged instance is a file plus an index row, always.  What can break
that from outside the receive path: a disk that filled up between an index
commit and the rename (the clean-up could not run either), files moved away by
an administrator to free space, a file damaged on disk.  This module

- :func:`scan` compares the index rows with the files under the archive
  (``noduled verify``; ``read_files`` also reads every file through the
  receive checks of :mod:`daemon.storage.validation` and hashes it);
- :func:`reconcile` repairs at start-up what can be repaired (called by
  :meth:`daemon.storage.archive.Archive.recover`): a file without a row that is a
  complete instance in its right place is indexed; a row whose file is gone
  is removed and the instance recorded as *lost*; a file that does not match
  its row (size) or cannot be indexed is moved to ``archive/.quarantine/``;
- :func:`summary` tells ``noduled status`` and ``/healthz`` which lost
  instances are still missing.  A lost instance is restored by the sender
  sending it again (a second copy counts as a duplicate only when the first
  one's file is intact, daemon/archive.py), after which it no longer counts.

The record is ``archive/.integrity.json`` (written atomically).  It holds
UIDs and paths only, no patient data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from daemon.storage.schema import instances, series, studies

if TYPE_CHECKING:
    from daemon.storage.archive import Archive

log = logging.getLogger(__name__)

REPORT_NAME = ".integrity.json"
QUARANTINE_DIR = ".quarantine"
_MAX_LISTED = 10_000  # lost instances kept in the record


@dataclass(frozen=True)
class Finding:
    """One disagreement between the index and the files."""

    kind: str  # "missing" (row, no file), "size" (row, file of another size), "orphan" (file, no row), "unreadable"
    path: str  # relative to the archive directory
    sop_instance_uid: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    detail: str = ""


@dataclass
class ScanResult:
    rows: int = 0
    files: int = 0
    findings: list[Finding] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)  # relative path -> hex digest (read_files only)

    def by_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


def _archive_files(root: Path) -> dict[str, int]:
    """Relative path -> size of every ``*.dcm`` under the archive, outside its dot folders."""
    out: dict[str, int] = {}
    root_s = str(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root_s)
        for name in filenames:
            if not name.endswith(".dcm"):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                out[rel] = os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return out


def _rows(archive: Archive) -> list[Any]:
    q = select(
        instances.c.id,
        instances.c.sop_instance_uid,
        instances.c.path,
        instances.c.size_bytes,
        instances.c.received_at,
        series.c.series_uid,
        studies.c.study_uid,
    ).select_from(
        instances.join(series, series.c.id == instances.c.series_pk).join(studies, studies.c.id == series.c.study_pk)
    )
    q = q.where(instances.c.purged_at.is_(None))  # a purged instance (retention) has no file by design
    with archive.engine.connect() as conn:
        return list(conn.execute(q))


def _read_check(archive: Archive, path: Path, sop_uid: str) -> tuple[str | None, str]:
    """(problem or None, sha256) of reading one archived file completely."""
    from daemon.storage.archive import RejectedInstance, parse_instance

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        ds = parse_instance(data)
    except RejectedInstance as exc:
        return str(exc), digest
    if str(ds.SOPInstanceUID) != sop_uid:
        return f"file holds SOP Instance UID {ds.SOPInstanceUID}, its row says {sop_uid}", digest
    return None, digest


def scan(archive: Archive, *, read_files: bool = False) -> ScanResult:
    """Compare rows with files; with ``read_files`` every file is also read, checked and hashed."""
    files = _archive_files(archive.root)
    rows = _rows(archive)
    result = ScanResult(rows=len(rows), files=len(files))
    indexed: set[str] = set()
    for row in rows:
        indexed.add(row.path)
        where = {
            "path": row.path,
            "sop_instance_uid": row.sop_instance_uid,
            "study_uid": row.study_uid,
            "series_uid": row.series_uid,
        }
        size = files.get(row.path)
        if size is None:
            result.findings.append(Finding("missing", detail="indexed, but the file is not there", **where))
        elif size != row.size_bytes:
            result.findings.append(
                Finding("size", detail=f"file is {size} bytes, the index says {row.size_bytes}", **where)
            )
        elif read_files:
            try:
                problem, digest = _read_check(archive, archive.path_of(row.path), row.sop_instance_uid)
            except OSError as exc:
                problem, digest = f"cannot read: {exc.strerror or exc}", ""
            if digest:
                result.sha256[row.path] = digest
            if problem:
                result.findings.append(Finding("unreadable", detail=problem, **where))
    for rel in sorted(set(files) - indexed):
        result.findings.append(Finding("orphan", path=rel, detail="file in the archive without an index row"))
    return result


def _quarantine(archive: Archive, relative: str, stamp: str) -> str:
    target = archive.root / QUARANTINE_DIR / stamp / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(archive.path_of(relative), target)
    return str(target.relative_to(archive.root))


def _index_orphan(archive: Archive, relative: str) -> str | None:
    """Index a file that has no row; None when done, else why it cannot be."""
    from daemon.storage.archive import RejectedInstance, parse_instance

    path = archive.path_of(relative)
    try:
        data = path.read_bytes()
        ds = parse_instance(data)
    except RejectedInstance as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    expected = archive.relative_path(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    if expected != relative:
        return f"file holds the instance whose place is {expected}"
    try:
        archive.index_file(ds, relative, len(data))
    except RejectedInstance as exc:
        return str(exc)
    return None


def _in_flight(archive: Archive, sop_uid: str | None, relative: str) -> bool:
    """Another receiving node (sharing archive and index) is storing this instance right now.

    Between its index commit and its rename a store has its part file in ``archive/.incoming``;
    the rename makes the part disappear as the file appears, so looking at the part first and
    the file second never misses both.
    """
    if sop_uid and any(archive.incoming.glob(f"{sop_uid}.*.part")):
        return True
    return archive.path_of(relative).exists()


def reconcile(archive: Archive) -> dict[str, int]:
    """Repair rows without files and files without rows (start-up); record what is lost."""
    result = scan(archive)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    lost: list[dict[str, Any]] = []
    counts = {"orphans_indexed": 0, "quarantined": 0, "lost_rows_removed": 0}
    for f in result.findings:
        if f.kind == "missing" and _in_flight(archive, f.sop_instance_uid, f.path):
            continue
        if f.kind in ("missing", "size"):
            if f.kind == "size":
                _quarantine(archive, f.path, stamp)
                counts["quarantined"] += 1
            with archive.engine.begin() as conn:
                conn.execute(delete(instances).where(instances.c.sop_instance_uid == f.sop_instance_uid))
            counts["lost_rows_removed"] += 1
            lost.append(asdict(f) | {"found_at": stamp})
        elif f.kind == "orphan":
            problem = _index_orphan(archive, f.path)
            if problem is None:
                counts["orphans_indexed"] += 1
            else:
                moved = _quarantine(archive, f.path, stamp)
                counts["quarantined"] += 1
                log.warning(
                    "archive file %s has no index row and cannot be indexed (%s): moved to %s", f.path, problem, moved
                )
    if lost or counts["quarantined"] or (archive.root / REPORT_NAME).exists():
        previous = _read_report(archive.root)
        still = [e for e in previous.get("lost", []) if not _restored(archive, e)]
        known = {e["sop_instance_uid"] for e in still}
        still.extend(e for e in lost if e["sop_instance_uid"] not in known)
        quarantined = previous.get("quarantined", 0) + counts["quarantined"]
        _write_report(archive.root, {"checked_at": stamp, "lost": still[-_MAX_LISTED:], "quarantined": quarantined})
    return counts


def _read_report(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / REPORT_NAME).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_report(root: Path, data: dict[str, Any]) -> None:
    tmp = root / f"{REPORT_NAME}.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, root / REPORT_NAME)


def _restored(archive: Archive, entry: dict[str, Any]) -> bool:
    with archive.engine.connect() as conn:
        row = conn.execute(
            select(instances.c.path, instances.c.size_bytes).where(
                instances.c.sop_instance_uid == entry["sop_instance_uid"]
            )
        ).first()
    if row is None:
        return False
    try:
        return bool(archive.path_of(row.path).stat().st_size == row.size_bytes)
    except OSError:
        return False


def summary(archive: Archive) -> dict[str, Any]:
    """The last check's lost instances that are still missing (``noduled status``, ``/healthz``)."""
    report = _read_report(archive.root)
    lost = report.get("lost", [])
    missing = [e for e in lost if not _restored(archive, e)]
    return {
        "checked_at": report.get("checked_at"),
        "lost": len(lost),
        "still_missing": missing,
        "restored": len(lost) - len(missing),
        "quarantined": int(report.get("quarantined", 0)),
    }


def health_check(archive: Archive):  # type: ignore[no-untyped-def]
    """A ``/healthz`` check: fails while acknowledged instances found lost have not been received again."""

    def check() -> tuple[bool, str]:
        s = summary(archive)
        if s["still_missing"]:
            return False, (
                f"{len(s['still_missing'])} acknowledged instances are missing from the archive (found at start-up "
                f"{s['checked_at']}): send them again from the PACS; 'noduled verify' lists them"
            )
        extra = f", {s['restored']} lost instances received again" if s["restored"] else ""
        quarantined = f", {s['quarantined']} files quarantined in archive/{QUARANTINE_DIR}" if s["quarantined"] else ""
        return True, f"every index row has its file (last check {s['checked_at'] or 'at start-up'}){extra}{quarantined}"

    return check


def archive_integrity(archive_dir: Path, engine: Any) -> dict[str, Any]:
    """:func:`summary` for an archive directory (``noduled status``, without opening an Archive)."""

    class _View:
        root = Path(archive_dir)

        def __init__(self) -> None:
            self.engine = engine

        def path_of(self, relative: str) -> Path:
            return self.root / relative

    return summary(_View())  # type: ignore[arg-type]
