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
import struct
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from daemon.analysis.dicomvalues import da_to_date, to_float, to_int
from daemon.storage.schema import instances, patients, series, studies
from daemon.storage.validation import (
    DEFLATED_EXPLICIT_LE,
    DatasetProblem,
    check_pixel_data,
    check_structure,
    inflate_bounded,
)

log = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class RejectedInstance(ValueError):
    """The instance cannot be archived; ``status`` is the DIMSE status to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# DIMSE C-STORE status codes (PS3.4 B.2.3)
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700  # the archive's filesystem is full or failing
STATUS_INDEX_OUT_OF_RESOURCES = 0xA701  # the index database is full or unavailable
STATUS_DATASET_MISMATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_UID_CONFLICT = 0xC001  # a UID already archived under another study / series

INFLATED_LIMIT_BYTES = 512 * 1024 * 1024  # a deflated data set may not inflate to more than this


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


def _dataset_offset(data: bytes) -> tuple[int, str] | None:
    """Where the data set starts after preamble and File Meta Information, and the transfer syntax.

    None when the bytes do not start like a Part 10 file (pydicom then says why).
    """
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    pos, syntax = 132, ""
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            return pos, syntax
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            if pos + 12 > len(data):
                return None
            (length,) = struct.unpack_from("<L", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if element == 0x0010:
            syntax = data[start : start + length].decode("ascii", "replace").strip("\x00 ")
        pos = start + length
    return (pos, syntax) if pos <= len(data) else None


def parse_instance(data: bytes, *, expected_sop_class: str | None = None) -> Dataset:
    """Parse and check an encoded DICOM file (preamble + meta + data set) before it is acknowledged.

    The whole data set is walked (:mod:`daemon.storage.validation`): complete elements,
    delimited sequences, fragment structure of encapsulated pixel data, native
    pixel data of the size the image attributes give, a bounded inflated size
    for deflated data sets; the SOP class must be the request's.  Raises
    :class:`RejectedInstance` (0xC000, or 0xA900 for a SOP class mismatch) with
    a message naming the problem.
    """
    located = _dataset_offset(data)
    if located is not None:
        offset, syntax = located
        try:
            body: bytes | memoryview = memoryview(data)[offset:]
            if syntax == DEFLATED_EXPLICIT_LE:
                body = inflate_bounded(bytes(body), INFLATED_LIMIT_BYTES)
            structure = check_structure(body, syntax)
        except DatasetProblem as exc:
            raise RejectedInstance(STATUS_CANNOT_UNDERSTAND, f"dataset does not parse: {exc}") from None
    ds = parse_header(data)
    if located is not None:
        try:
            check_pixel_data(structure, syntax, str(ds.SOPClassUID))
        except DatasetProblem as exc:
            raise RejectedInstance(STATUS_CANNOT_UNDERSTAND, str(exc)) from None
    if expected_sop_class and _valid_uid(expected_sop_class) != _valid_uid(ds.SOPClassUID):
        raise RejectedInstance(
            STATUS_DATASET_MISMATCH,
            f"dataset SOP Class UID {_valid_uid(ds.SOPClassUID)} differs from the request's {expected_sop_class}",
        )
    return ds


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
        raise RejectedInstance(
            STATUS_CANNOT_UNDERSTAND, f"dataset does not parse: {type(exc).__name__}: {exc}"
        ) from None
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
        self._series_pk: dict[str, tuple[int, str]] = {}  # series UID -> (index row id, study UID), as series are seen
        self._dirs: set[str] = set()  # series folders known to exist
        self._spares: list[tuple[Path, int]] = []  # empty files ready to become part files
        self._spares_lock = threading.Lock()
        self._fsync_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fsync")
        self._sqlite = engine.dialect.name == "sqlite"
        self._dbapi_operational: type[Exception] = getattr(engine.dialect.dbapi, "OperationalError", OperationalError)
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        columns = (
            "sop_instance_uid",
            "series_pk",
            "sop_class_uid",
            "instance_number",
            "transfer_syntax_uid",
            "path",
            "size_bytes",
            "calling_ae",
            "received_at",
        )
        self._insert_sql = f"INSERT INTO instances ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"

    # ------------------------------------------------------------------ paths
    def relative_path(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{study_uid}/{series_uid}/{sop_uid}.dcm"

    def path_of(self, relative: str) -> Path:
        return self.root / relative

    # ------------------------------------------------------------------ store
    def store(
        self,
        data: bytes,
        *,
        calling_ae: str | None = None,
        expected_sop_uid: str | None = None,
        expected_sop_class: str | None = None,
    ) -> StoreResult:
        """Archive one encoded instance (preamble + file meta + dataset).

        Returns once the instance is durable (file and index row on disk).
        Raises :class:`RejectedInstance` with the DIMSE status and a message
        naming the problem; nothing is left behind in that case.  A second copy
        counts as a duplicate only while the first one's file is there with its
        indexed size; otherwise the new copy is stored in its place.
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
            ds = parse_instance(data, expected_sop_class=expected_sop_class)
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
            if part is None and final.exists():
                existing = self._existing(sop_uid)
                if (
                    existing is not None
                    and self._same_place(existing, study_uid, series_uid)
                    and self._intact(existing)
                ):
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
                # the same SOP Instance UID is indexed already (an earlier copy, or another association now)
                existing = self._existing(sop_uid)
                if existing is None:  # removed meanwhile (its store failed): index this copy
                    self._insert_rows(ds, relative, len(data), calling_ae)
                elif not self._same_place(existing, study_uid, series_uid):
                    raise self._conflict(sop_uid, existing, study_uid, series_uid) from None
                elif self._intact(existing):
                    self._discard(part, synced)
                    return StoreResult(sop_uid, study_uid, series_uid, final, duplicate=True)
                elif existing.purged_at is not None:
                    # its CT file was deleted by the retention policy: this copy brings it back (a prior fetched again)
                    self._replace_row(existing.id, ds, relative, len(data), calling_ae)
                else:
                    # indexed, but its file is gone or damaged (a full disk, removed by hand): this copy replaces it
                    log.warning(
                        "instance %s was indexed but its file %s; storing the copy received now",
                        sop_uid,
                        "is missing" if not self.path_of(existing.path).exists() else "has the wrong size",
                    )
                    self._replace_row(existing.id, ds, relative, len(data), calling_ae)
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
                self._delete_row_quietly(sop_uid, len(data))
                raise
        except OSError as exc:
            self._discard(part, synced)
            raise RejectedInstance(
                STATUS_OUT_OF_RESOURCES, f"cannot write the instance: {exc.strerror or exc}"
            ) from None
        except (OperationalError, self._dbapi_operational) as exc:  # "database or disk is full", unreachable server
            self._discard(part, synced)
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise RejectedInstance(
                STATUS_INDEX_OUT_OF_RESOURCES,
                f"index database cannot take the instance: {detail[0] if detail else type(exc).__name__}",
            ) from None
        except BaseException:  # refused (RejectedInstance) or unexpected: nothing is left behind
            self._discard(part, synced)
            raise
        return StoreResult(sop_uid, study_uid, series_uid, final, duplicate=False)

    # ------------------------------------------------------- existing copies
    def _existing(self, sop_uid: str):  # type: ignore[no-untyped-def]
        """The index row of ``sop_uid`` with its study and series UIDs, or None."""
        q = (
            select(
                instances.c.id,
                instances.c.path,
                instances.c.size_bytes,
                instances.c.purged_at,
                series.c.series_uid,
                studies.c.study_uid,
            )
            .select_from(
                instances.join(series, series.c.id == instances.c.series_pk).join(
                    studies, studies.c.id == series.c.study_pk
                )
            )
            .where(instances.c.sop_instance_uid == sop_uid)
        )
        with self.engine.connect() as conn:
            return conn.execute(q).first()

    def _intact(self, row) -> bool:  # type: ignore[no-untyped-def]
        """The row's file is there with the size the row says (what makes a second copy a duplicate)."""
        try:
            return bool(self.path_of(row.path).stat().st_size == row.size_bytes)
        except OSError:
            return False

    @staticmethod
    def _same_place(row, study_uid: str, series_uid: str) -> bool:  # type: ignore[no-untyped-def]
        return bool(row.study_uid == study_uid and row.series_uid == series_uid)

    @staticmethod
    def _conflict(sop_uid: str, row, study_uid: str, series_uid: str) -> RejectedInstance:  # type: ignore[no-untyped-def]
        return RejectedInstance(
            STATUS_UID_CONFLICT,
            f"SOP Instance UID {sop_uid} is archived already under study {row.study_uid} series {row.series_uid}, "
            f"not study {study_uid} series {series_uid}",
        )

    def _replace_row(self, row_id: int, ds: Dataset, relative: str, size: int, calling_ae: str | None) -> None:
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(instances)
                .where(instances.c.id == row_id)
                .values(
                    path=relative,
                    size_bytes=size,
                    sop_class_uid=str(ds.SOPClassUID),
                    transfer_syntax_uid=str(ds.file_meta.get("TransferSyntaxUID", ""))
                    if hasattr(ds, "file_meta")
                    else "",
                    calling_ae=(calling_ae or "")[:16] or None,
                    received_at=now,
                    purged_at=None,  # a purged instance received again has its file back
                )
            )
        if done.rowcount == 0:  # removed meanwhile: index this copy afresh
            self._insert_rows(ds, relative, size, calling_ae)

    def _delete_row_quietly(self, sop_uid: str, size: int) -> None:
        """Remove the row of an instance that could not be made durable (unless another copy completed meanwhile).

        When this fails too (the index is on the full disk) the row stays; it is harmless: a
        resend finds no intact file and stores the instance again, and recover() removes it.
        """
        try:
            existing = self._existing(sop_uid)
            if existing is not None and existing.size_bytes == size and self._intact(existing):
                return  # another association stored this instance meanwhile
            self._delete_row(sop_uid)
        except Exception as exc:  # noqa: BLE001 - the store's own error is what the sender is told
            log.debug("could not remove the index row of %s after a failed store: %s", sop_uid, exc)

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
            return (
                conn.execute(select(instances.c.id).where(instances.c.sop_instance_uid == sop_uid)).first() is not None
            )

    def _delete_row(self, sop_uid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(instances).where(instances.c.sop_instance_uid == sop_uid))

    def _insert_rows(self, ds: Dataset, relative: str, size: int, calling_ae: str | None) -> None:
        now = dt.datetime.now(dt.UTC)
        series_uid = str(ds.SeriesInstanceUID)
        study_uid = str(ds.StudyInstanceUID)
        known = self._series_pk.get(series_uid)
        if known is not None and known[1] != study_uid:
            raise self._series_conflict(series_uid, known[1], study_uid)
        if known is None:  # first instance of a series: patient, study, series rows (SQLAlchemy Core)
            # an instance indexed under another study/series is refused before any row is made for it
            existing = self._existing(str(ds.SOPInstanceUID))
            if existing is not None and not self._same_place(existing, study_uid, series_uid):
                raise self._conflict(str(ds.SOPInstanceUID), existing, study_uid, series_uid)
            with self.engine.connect() as conn:
                owner = conn.execute(
                    select(studies.c.study_uid)
                    .select_from(series.join(studies, studies.c.id == series.c.study_pk))
                    .where(series.c.series_uid == series_uid)
                ).scalar()
            if owner is not None and owner != study_uid:
                raise self._series_conflict(series_uid, str(owner), study_uid)
            with self.engine.begin() as conn:
                series_pk, series_study = self._create_series(conn, ds)
                if series_study != study_uid:  # made concurrently under another study
                    raise self._series_conflict(series_uid, series_study, study_uid)
            if len(self._series_pk) > 100_000:
                self._series_pk.clear()
            self._series_pk[series_uid] = (series_pk, study_uid)
        else:
            series_pk = known[0]
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
            except self.engine.dialect.dbapi.IntegrityError:  # type: ignore[union-attr]  # set once connected
                raw.rollback()
                raise IntegrityError(self._insert_sql, row, Exception("duplicate SOP Instance UID")) from None
            except Exception:
                raw.rollback()
                raise
            finally:
                cur.close()
        finally:
            raw.close()  # back to the pool

    def _create_series(self, conn, ds: Dataset) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        """Patient, study and series rows for the first instance of a series (get or create).

        Returns the series row id and the UID of the study the series row belongs to (which is not
        this instance's study when a series UID is reused under another study: refused by the caller).
        """
        patient_pk = self._get_or_create(
            conn,
            patients,
            {
                "patient_id": str(ds.get("PatientID", "") or "")[:64],
                "issuer": str(ds.get("IssuerOfPatientID", "") or "")[:64],
            },
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
        series_pk = self._get_or_create(
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
        owner = conn.execute(
            select(studies.c.study_uid)
            .select_from(series.join(studies, studies.c.id == series.c.study_pk))
            .where(series.c.id == series_pk)
        ).scalar_one()
        return series_pk, str(owner)

    @staticmethod
    def _series_conflict(series_uid: str, owner_study: str, study_uid: str) -> RejectedInstance:
        return RejectedInstance(
            STATUS_UID_CONFLICT,
            f"Series Instance UID {series_uid} is archived already under study {owner_study}, not study {study_uid}",
        )

    @staticmethod
    def _get_or_create(conn, table, key: dict[str, Any], values: dict[str, Any]) -> int:  # type: ignore[no-untyped-def]
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
    def recover(self, *, reconcile: bool = True) -> dict[str, int]:
        """Undo what a crash left half done and reconcile rows with files (call before accepting associations).

        Removes ``.part`` files (and the empty ``.spare`` ones); where a part's instance has an index row but
        no final file (a crash between the commit and the rename) the row goes
        too: that instance was never acknowledged.  Then (``reconcile``) every
        row is checked against its file and every file against its row
        (:func:`daemon.storage.integrity.reconcile`).  Returns counts for the log.
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
        counts = {"partial_files_removed": removed_parts, "unacknowledged_rows_removed": removed_rows}
        if reconcile:
            from daemon.storage.integrity import reconcile as reconcile_rows_and_files

            counts.update(reconcile_rows_and_files(self))
        return counts

    def index_file(self, ds: Dataset, relative: str, size: int) -> None:
        """Index an archived file that has no row (recovery); refuses UIDs that collide (RejectedInstance)."""
        try:
            self._insert_rows(ds, relative, size, None)
        except IntegrityError:
            raise RejectedInstance(
                STATUS_UID_CONFLICT, f"SOP Instance UID {ds.SOPInstanceUID} is indexed already"
            ) from None
