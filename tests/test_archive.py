"""daemon.storage.archive: durable, idempotent storage with index rows; specific refusals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from daemon.storage.archive import STATUS_CANNOT_UNDERSTAND, STATUS_DATASET_MISMATCH, Archive, RejectedInstance
from daemon.storage.db import open_index
from daemon.storage.schema import instances, patients, series, studies
from tests.support.ct_series import ct_slice


def encode(ds) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    return Archive(tmp_path / "archive", engine)


def count(archive: Archive, table) -> int:  # type: ignore[no-untyped-def]
    with archive.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def make(i: int = 0, study: str = "1.2.3.4", series_uid: str = "1.2.3.4.5"):  # type: ignore[no-untyped-def]
    return ct_slice(study, series_uid, i, np.full((8, 8), i, dtype=np.int16))


def test_store_writes_file_and_index_rows(archive: Archive) -> None:
    ds = make()
    data = encode(ds)
    result = archive.store(data, calling_ae="ORTHANC")
    assert not result.duplicate
    assert result.path == archive.root / "1.2.3.4" / "1.2.3.4.5" / f"{ds.SOPInstanceUID}.dcm"
    assert result.path.read_bytes() == data
    assert (count(archive, patients), count(archive, studies), count(archive, series), count(archive, instances)) == (1, 1, 1, 1)
    with archive.engine.connect() as conn:
        row = conn.execute(select(series)).one()
        st = conn.execute(select(studies)).one()
    assert row.modality == "CT" and row.slice_thickness_mm == 1.0 and row.convolution_kernel == "B30f"
    assert row.ctdivol_mgy == pytest.approx(1.2) and row.image_orientation == "1\\0\\0\\0\\1\\0"
    assert str(st.study_date) == "2026-06-01" and st.accession_number == "ACC1"
    assert list(archive.incoming.iterdir()) == []


def test_same_instance_twice_is_harmless(archive: Archive) -> None:
    data = encode(make())
    first = archive.store(data)
    second = archive.store(data)
    assert second.duplicate and second.path == first.path
    assert count(archive, instances) == 1
    assert list(archive.incoming.iterdir()) == []


def test_many_instances_share_patient_study_series(archive: Archive) -> None:
    for i in range(5):
        archive.store(encode(make(i)))
    assert (count(archive, patients), count(archive, studies), count(archive, series), count(archive, instances)) == (1, 1, 1, 5)


@pytest.mark.parametrize("missing", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uid_is_refused_with_its_name(archive: Archive, missing: str) -> None:
    ds = make()
    delattr(ds, missing)
    with pytest.raises(RejectedInstance) as err:
        archive.store(encode(ds))
    assert err.value.status == STATUS_CANNOT_UNDERSTAND
    assert f"dataset has no {missing}" in str(err.value)
    assert count(archive, instances) == 0 and list(archive.incoming.iterdir()) == []


def test_uid_that_would_escape_the_archive_is_refused(archive: Archive) -> None:
    ds = make()
    ds.StudyInstanceUID = "../../etc"
    with pytest.raises(RejectedInstance, match="StudyInstanceUID '../../etc' is not a valid UID"):
        archive.store(encode(ds))
    assert not (archive.root.parent / "etc").exists()


def test_garbage_is_refused(archive: Archive) -> None:
    with pytest.raises(RejectedInstance, match="dataset does not parse|dataset has no SOPInstanceUID") as err:
        archive.store(b"\x00" * 128 + b"DICM" + b"\xff" * 500)
    assert err.value.status == STATUS_CANNOT_UNDERSTAND
    assert count(archive, instances) == 0 and list(archive.incoming.iterdir()) == []


def test_request_uid_mismatch_is_refused(archive: Archive) -> None:
    with pytest.raises(RejectedInstance) as err:
        archive.store(encode(make()), expected_sop_uid="1.2.999")
    assert err.value.status == STATUS_DATASET_MISMATCH and "differs from the request's 1.2.999" in str(err.value)


def test_out_of_disk_space_is_refused(tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'i.sqlite'}")
    full = Archive(tmp_path / "a", engine, min_free_disk_mb=10**9)  # a petabyte free required
    with pytest.raises(RejectedInstance, match="MB free") as err:
        full.store(encode(make()))
    assert err.value.status == 0xA700


def test_recovery_after_crash_between_commit_and_rename(archive: Archive) -> None:
    """A crash after the index commit but before the rename leaves a row without
    its file: the instance was never acknowledged, so recovery removes both."""
    ds = make()
    data = encode(ds)
    archive._insert_rows(dcmread(io.BytesIO(data), stop_before_pixels=True), archive.relative_path("1.2.3.4", "1.2.3.4.5", ds.SOPInstanceUID), len(data), None)
    (archive.incoming / f"{ds.SOPInstanceUID}.0a1b2c.part").write_bytes(data[:1000])  # cut short
    (archive.incoming / "1.2.3.99.ffff.part").write_bytes(data[:10])  # another, never indexed
    counts = archive.recover()
    assert counts == {"partial_files_removed": 2, "unacknowledged_rows_removed": 1}
    assert count(archive, instances) == 0
    assert list(archive.incoming.iterdir()) == []
    # the sender sends it again: stored normally
    assert not archive.store(data).duplicate


def test_recovery_keeps_an_acknowledged_instance(archive: Archive) -> None:
    data = encode(make())
    stored = archive.store(data)
    (archive.incoming / f"{stored.sop_instance_uid}.1234.part").write_bytes(data)  # a second copy was in flight
    assert archive.recover() == {"partial_files_removed": 1, "unacknowledged_rows_removed": 0}
    assert stored.path.read_bytes() == data and count(archive, instances) == 1


# --- the receive path: request UID known, part written and fsynced while the header is parsed


def test_store_with_the_request_uid_writes_first_and_keeps_every_rule(archive: Archive) -> None:
    ds = make()
    data = encode(ds)
    first = archive.store(data, expected_sop_uid=ds.SOPInstanceUID)
    assert not first.duplicate and first.path.read_bytes() == data and count(archive, instances) == 1
    second = archive.store(data, expected_sop_uid=ds.SOPInstanceUID)  # told by the unique index
    assert second.duplicate and second.path == first.path and first.path.read_bytes() == data
    assert count(archive, instances) == 1 and list(archive.incoming.iterdir()) == []


def test_refused_instances_leave_no_part_file(archive: Archive) -> None:
    ds = make()
    with pytest.raises(RejectedInstance) as err:
        archive.store(encode(ds), expected_sop_uid="1.2.999")
    assert err.value.status == STATUS_DATASET_MISMATCH
    with pytest.raises(RejectedInstance) as err:
        archive.store(b"\x00" * 128 + b"DICM" + b"\xff" * 500, expected_sop_uid="1.2.3")
    assert err.value.status == STATUS_CANNOT_UNDERSTAND
    assert count(archive, instances) == 0 and list(archive.incoming.iterdir()) == []


def test_failed_fsync_is_refused_and_its_row_removed(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    import daemon.storage.archive as archive_module

    def broken(fd: int, data: bytes) -> None:
        import os

        os.close(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(archive_module, "_write_fsync_close", broken)
    ds = make()
    with pytest.raises(RejectedInstance, match="Input/output error") as err:
        archive.store(encode(ds), expected_sop_uid=ds.SOPInstanceUID)
    assert err.value.status == 0xA700
    assert count(archive, instances) == 0 and list(archive.incoming.iterdir()) == []
    assert not (archive.root / "1.2.3.4" / "1.2.3.4.5" / f"{ds.SOPInstanceUID}.dcm").exists()


def test_series_folder_removed_behind_the_archive_is_made_again(archive: Archive) -> None:
    import shutil

    first = archive.store(encode(make(0)))
    shutil.rmtree(first.path.parent)  # cached as existing
    ds = make(1)
    second = archive.store(encode(ds), expected_sop_uid=ds.SOPInstanceUID)
    assert second.path.exists() and second.path.parent == first.path.parent


def test_part_files_come_from_spares_made_ahead_and_recovery_removes_left_overs(archive: Archive) -> None:
    archive._make_spare()
    archive._make_spare()
    archive._make_spare()  # at most two are kept
    assert len(list(archive.spare_dir.iterdir())) == 2
    ds = make(0)
    archive.store(encode(ds), expected_sop_uid=ds.SOPInstanceUID)  # uses one, a new one is made in the pool
    archive._fsync_pool.submit(lambda: None).result()
    assert 1 <= len(list(archive.spare_dir.iterdir())) <= 2
    for path, _ in list(archive._spares):  # gone behind the archive's back: parts are created directly
        path.unlink()
    ds = make(1)
    assert archive.store(encode(ds), expected_sop_uid=ds.SOPInstanceUID).path.read_bytes() == encode(ds)
    archive._fsync_pool.submit(lambda: None).result()
    archive._make_spare()
    assert archive.recover() == {"partial_files_removed": 0, "unacknowledged_rows_removed": 0}
    assert list(archive.spare_dir.iterdir()) == [] and list(archive.incoming.iterdir()) == []
    assert count(archive, instances) == 2
