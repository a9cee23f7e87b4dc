"""The archive: durable storage of received instances and their index rows.

DESIGN §5: a C-STORE success status is sent only after the instance is on
disk and in the index.  The write protocol (one instance):

1. write ``archive/.incoming/<SOPUID>.<random>.part`` and fsync it;
2. insert the index rows (patient, study, series, instance) and commit
   (SQLite: WAL + synchronous=FULL, so the commit is on disk); the fsync of
   1 runs in a pool thread meanwhile (and, when the request's SOP Instance
   UID is known, while the header is parsed), both are waited for;
3. rename the file to ``archive/<StudyUID>/<SeriesUID>/<SOPUID>.dcm``
   (atomic on one filesystem) and fsync the directory;
4. only then report success.

A crash before 2 leaves a ``.part`` file, removed by :meth:`Archive.recover`.
A crash between 2 and 3 leaves an index row without its file; ``recover``
finds the ``.part`` of it, and deletes row and file: that instance was never
acknowledged, so the sender still has it and will send it again.  Therefore
after recovery every index row has its complete file and no file is half
written.  A second copy of an instance already archived is acknowledged and
discarded (the first copy is kept).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import shutil
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from daemon.analysis.dicomvalues import da_to_date, to_float, to_int
from daemon.storage.schema import instances, patients, series, studies

log = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class RejectedInstance(ValueError):
    """The instance cannot be archived; ``status`` is the DIMSE status to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# DIMSE C-STORE status codes (PS3.4 B.2.3)
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DATASET_MISMATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000


@dataclass(frozen=True)
class StoreResult:
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    path: Path
    duplicate: bool


def _valid_uid(value: object) -> str | None:
    text = str(value or "").strip().rstrip("\x00")
    if not text or len(text) > 64 or not _UID_RE.match(text):
        return None
    return text


def _text(ds: Dataset, keyword: str, max_len: int) -> str | None:
    """A (possibly multi-valued) element as text; numbers normalised ("1\\0\\0")."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    values = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    text = "\\".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
    return text[:max_len]


def parse_header(data: bytes) -> Dataset:
    """Parse the header of an encoded DICOM file (preamble + meta + dataset).

    Raises :class:`RejectedInstance` (0xC000) when the data are not DICOM or a
    required UID is missing or malformed.
    """
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
        # touch the identifying elements now so that a broken header fails here
        _ = ds.get("SOPInstanceUID"), ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID")
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError, NotImplementedError) as exc:
        raise RejectedInstance(STATUS_CANNOT_UNDERSTAND, f"dataset does not parse: {exc}") from None
    except Exception as exc:  # pydicom raises a wide range on garbage input
        raise RejectedInstance(STATUS_CANNOT_UNDERSTAND, f"dataset does not parse: {type(exc).__name__}: {exc}") from None
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"):
        raw = ds.get(keyword)
        if raw in (None, ""):
            raise RejectedInstance(STATUS_CANNOT_UNDERSTAND, f"dataset has no {keyword}")
        if _valid_uid(raw) is None:
            raise RejectedInstance(STATUS_CANNOT_UNDERSTAND, f"{keyword} {str(raw)[:70]!r} is not a valid UID")
    return ds


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_MAX_SPARES = 2


def _write_fsync_close(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, fsync and close it (runs in the archive's pool)."""
    try:
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


class Archive:
    """Files under ``archive_dir`` plus their rows in the index database."""

    def __init__(self, archive_dir: Path, engine: Engine, *, min_free_disk_mb: int = 0) -> None:
        self.root = Path(archive_dir)
        self.incoming = self.root / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.spare_dir = self.root / ".spare"  # see _make_spare()
        self.spare_dir.mkdir(exist_ok=True)
        self.engine = engine
        self.min_free_disk_bytes = min_free_disk_mb * 1024 * 1024
        self._series_pk: dict[str, int] = {}  # series UID -> index row id, filled as series are seen
        self._dirs: set[str] = set()  # series folders known to exist
        self._spares: list[tuple[Path, int]] = []  # empty files ready to become part files
        self._spares_lock = threading.Lock()
        self._fsync_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fsync")
        self._sqlite = engine.dialect.name == "sqlite"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        columns = ("sop_instance_uid", "series_pk", "sop_class_uid", "instance_number", "transfer_syntax_uid",
                   "path", "size_bytes", "calling_ae", "received_at")
        self._insert_sql = f"INSERT INTO instances ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"

    # ------------------------------------------------------------------ paths
    def relative_path(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{study_uid}/{series_uid}/{sop_uid}.dcm"

    def path_of(self, relative: str) -> Path:
        return self.root / relative

    # ------------------------------------------------------------------ store
    def store(self, data: bytes, *, calling_ae: str | None = None, expected_sop_uid: str | None = None) -> StoreResult:
        """Archive one encoded instance (preamble + file meta + dataset).

        Returns once the instance is durable (file and index row on disk).
        Raises :class:`RejectedInstance` with the DIMSE status and a message
        naming the problem; nothing is left behind in that case.
        """
        # With the request's SOP Instance UID known the bytes go to disk first and their fsync runs
        # while the header is parsed and the index row committed; the part file carries that UID
        # (see recover()), and an instance whose dataset names another UID is refused below.
        early_uid = _valid_uid(expected_sop_uid) if expected_sop_uid else None
        self._check_free_space(len(data))
        part = synced = None
        try:
            if early_uid is not None:
                part, synced = self._write_part(early_uid, data)
            ds = parse_header(data)
            sop_uid = _valid_uid(ds.SOPInstanceUID)
            study_uid = _valid_uid(ds.StudyInstanceUID)
            series_uid = _valid_uid(ds.SeriesInstanceUID)
            assert sop_uid and study_uid and series_uid  # checked by parse_header
            if expected_sop_uid and _valid_uid(expected_sop_uid) != sop_uid:
                raise RejectedInstance(
                    STATUS_DATASET_MISMATCH,
                    f"dataset SOP Instance UID {sop_uid} differs from the request's {expected_sop_uid}",
                )
            relative = self.relative_path(study_uid, series_uid, sop_uid)
            final = self.path_of(relative)
            if part is None and final.exists() and self._has_row(sop_uid):
                return StoreResult(sop_uid, study_uid, series_uid, final, duplicate=True)
            # (with the part already written a second copy is told by the unique index below)
            if part is None:
                part, synced = self._write_part(sop_uid, data)
            assert synced is not None
            try:
                # the file's fsync runs meanwhile: both must be on disk before the rename,
                # neither depends on the other.
                self._insert_rows(ds, relative, len(data), calling_ae)
            except IntegrityError:
                # the same instance was archived meanwhile (another association)
                self._discard(part, synced)
                return StoreResult(sop_uid, study_uid, series_uid, final, duplicate=True)
            try:
                synced.result()  # the fsync's OSError, if any, is raised here
                self._ensure_dir(final.parent)
                try:
                    os.replace(part, final)
                except FileNotFoundError:  # the folder went away since it was made: make it again
                    self._ensure_dir(final.parent, known=False)
                    os.replace(part, final)
                _fsync_dir(final.parent)
            except OSError:
                self._delete_row(sop_uid)
                raise
        except OSError as exc:
            self._discard(part, synced)
            raise RejectedInstance(STATUS_OUT_OF_RESOURCES, f"cannot write the instance: {exc.strerror or exc}") from None
        except BaseException:  # refused (RejectedInstance) or unexpected: nothing is left behind
            self._discard(part, synced)
            raise
        return StoreResult(sop_uid, study_uid, series_uid, final, duplicate=False)

    def _check_free_space(self, size: int) -> None:
        if self.min_free_disk_bytes and shutil.disk_usage(self.root).free < self.min_free_disk_bytes + size:
            raise RejectedInstance(
                STATUS_OUT_OF_RESOURCES,
                f"less than {self.min_free_disk_bytes // (1024 * 1024)} MB free in {self.root}",
            )

    def _write_part(self, sop_uid: str, data: bytes) -> tuple[Path, Future[None]]:
        """Create a part file; writing ``data``, its fsync and close run in the pool (the future).

        The part file is named by its SOP Instance UID so that recovery can find the
        index row of a part that was cut short (see recover()).
        """
        part = self.incoming / f"{sop_uid}.{uuid.uuid4().hex[:12]}.part"
        fd = self._take_spare(part)
        if fd is None:
            fd = os.open(part, _CREATE_FLAGS, 0o666)
        try:
            synced = self._fsync_pool.submit(_write_fsync_close, fd, data)
        except BaseException:
            os.close(fd)
            part.unlink(missing_ok=True)
            raise
        self._fsync_pool.submit(self._make_spare)
        return part, synced

    # Creating a file costs up to ~0.5 ms of kernel time on a busy ext4 (inode allocation);
    # an empty "spare" made beforehand in the pool is renamed to the part's name instead.
    # Spares (in archive/.spare, same filesystem) carry no data and no UID; recover() removes any left over.
    def _make_spare(self) -> None:
        with self._spares_lock:
            if len(self._spares) >= _MAX_SPARES:
                return
        path = self.spare_dir / f"{uuid.uuid4().hex}.spare"
        try:
            fd = os.open(path, _CREATE_FLAGS, 0o666)
        except OSError:
            return  # the receive path creates its part files itself
        with self._spares_lock:
            self._spares.append((path, fd))

    def _take_spare(self, part: Path) -> int | None:
        """An open, empty file renamed to ``part``, or None (no spare ready)."""
        with self._spares_lock:
            if not self._spares:
                return None
            path, fd = self._spares.pop()
        try:
            os.rename(path, part)
        except OSError:  # removed meanwhile (recover()): make the part file directly
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _discard(part: Path | None, synced: Future[None] | None) -> None:
        """Remove a part file that will not be archived (after its fsync/close has finished)."""
        if synced is not None:
            try:
                synced.result()
            except OSError:
                pass
        if part is not None:
            part.unlink(missing_ok=True)

    def _ensure_dir(self, path: Path, *, known: bool = True) -> None:
        """Create a series folder (once per process); a new folder's entry is fsynced in its parent."""
        key = str(path)
        if known and key in self._dirs:
            return
        missing = []
        p = path
        while p != self.root and not p.is_dir():
            missing.append(p)
            p = p.parent
        for p in reversed(missing):
            p.mkdir(exist_ok=True)
            _fsync_dir(p.parent)
        if len(self._dirs) > 10_000:
            self._dirs.clear()
        self._dirs.add(key)

    def _has_row(self, sop_uid: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(instances.c.id).where(instances.c.sop_instance_uid == sop_uid)).first() is not None

    def _delete_row(self, sop_uid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(instances).where(instances.c.sop_instance_uid == sop_uid))

    def _insert_rows(self, ds: Dataset, relative: str, size: int, calling_ae: str | None) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        series_uid = str(ds.SeriesInstanceUID)
        series_pk = self._series_pk.get(series_uid)
        if series_pk is None:  # first instance of a series: patient, study, series rows (SQLAlchemy Core)
            with self.engine.begin() as conn:
                series_pk = self._create_series(conn, ds)
            self._series_pk[series_uid] = series_pk
        row = (
            str(ds.SOPInstanceUID),
            series_pk,
            str(ds.SOPClassUID),
            to_int(ds.get("InstanceNumber")),
            str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else "",
            relative,
            size,
            (calling_ae or "")[:16] or None,
            now.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else now,
        )
        # the hot path (one row per received instance) on the pooled DBAPI connection: SQLAlchemy's
        # statement execution costs ~1 ms per row here, the plain DBAPI call ~0.1 ms
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                cur.execute(self._insert_sql, row)
                raw.commit()
            except self.engine.dialect.dbapi.IntegrityError:
                raw.rollback()
                raise IntegrityError(self._insert_sql, row, Exception("duplicate SOP Instance UID")) from None
            except Exception:
                raw.rollback()
                raise
            finally:
                cur.close()
        finally:
            raw.close()  # back to the pool

    def _create_series(self, conn, ds: Dataset) -> int:  # type: ignore[no-untyped-def]
        """Patient, study and series rows for the first instance of a series (get or create)."""
        patient_pk = self._get_or_create(
            conn,
            patients,
            {"patient_id": str(ds.get("PatientID", "") or "")[:64], "issuer": str(ds.get("IssuerOfPatientID", "") or "")[:64]},
            {
                "name": str(ds.get("PatientName", "") or "")[:324] or None,
                "birth_date": da_to_date(ds.get("PatientBirthDate")),
                "sex": _text(ds, "PatientSex", 16),
            },
        )
        study_pk = self._get_or_create(
            conn,
            studies,
            {"study_uid": str(ds.StudyInstanceUID)},
            {
                "patient_pk": patient_pk,
                "study_date": da_to_date(ds.get("StudyDate")),
                "study_time": _text(ds, "StudyTime", 16),
                "accession_number": _text(ds, "AccessionNumber", 16),
                "description": _text(ds, "StudyDescription", 64),
                "patient_age": _text(ds, "PatientAge", 4),
            },
        )
        return self._get_or_create(
            conn,
            series,
            {"series_uid": str(ds.SeriesInstanceUID)},
            {
                "study_pk": study_pk,
                "modality": _text(ds, "Modality", 16),
                "series_number": to_int(ds.get("SeriesNumber")),
                "description": _text(ds, "SeriesDescription", 64),
                "frame_of_reference_uid": _valid_uid(ds.get("FrameOfReferenceUID")),
                "slice_thickness_mm": to_float(ds.get("SliceThickness")),
                "convolution_kernel": _text(ds, "ConvolutionKernel", 64),
                "image_orientation": _text(ds, "ImageOrientationPatient", 128),
                "ctdivol_mgy": to_float(ds.get("CTDIvol")),
                "manufacturer": _text(ds, "Manufacturer", 64),
            },
        )

    @staticmethod
    def _get_or_create(conn, table, key: dict, values: dict) -> int:  # type: ignore[no-untyped-def]
        where = [table.c[k] == v for k, v in key.items()]
        row = conn.execute(select(table.c.id).where(*where)).first()
        if row is not None:
            return int(row.id)
        try:
            with conn.begin_nested():
                return int(conn.execute(insert(table).values(**key, **values)).inserted_primary_key[0])
        except IntegrityError:  # created concurrently by another association
            row = conn.execute(select(table.c.id).where(*where)).first()
            assert row is not None
            return int(row.id)

    # --------------------------------------------------------------- recovery
    def recover(self) -> dict[str, int]:
        """Undo what a crash left half done (call before accepting associations).

        Removes ``.part`` files (and the empty ``.spare`` ones); where a part's instance has an index row but
        no final file (a crash between the commit and the rename) the row goes
        too: that instance was never acknowledged.  Returns counts for the log.
        """
        removed_parts = removed_rows = 0
        for part in sorted(self.incoming.glob("*.part")):
            sop_uid = _valid_uid(part.name.split(".part")[0].rsplit(".", 1)[0])
            if sop_uid is not None:
                with self.engine.begin() as conn:
                    row = conn.execute(
                        select(instances.c.id, instances.c.path).where(instances.c.sop_instance_uid == sop_uid)
                    ).first()
                    if row is not None and not self.path_of(row.path).exists():
                        conn.execute(delete(instances).where(instances.c.id == row.id))
                        removed_rows += 1
            part.unlink(missing_ok=True)
            removed_parts += 1
        for spare in self.spare_dir.glob("*.spare"):  # empty files made ahead of need (_make_spare)
            spare.unlink(missing_ok=True)
        return {"partial_files_removed": removed_parts, "unacknowledged_rows_removed": removed_rows}
