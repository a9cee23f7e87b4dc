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
    assert (count(archive, patients), count(archive, studies), count(archive, series), count(archive, instances)) == (
        1,
        1,
        1,
        1,
    )
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
    assert (count(archive, patients), count(archive, studies), count(archive, series), count(archive, instances)) == (
        1,
        1,
        1,
        5,
    )


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
    archive._insert_rows(
        dcmread(io.BytesIO(data), stop_before_pixels=True),
        archive.relative_path("1.2.3.4", "1.2.3.4.5", ds.SOPInstanceUID),
        len(data),
        None,
    )
    (archive.incoming / f"{ds.SOPInstanceUID}.0a1b2c.part").write_bytes(data[:1000])  # cut short
    (archive.incoming / "1.2.3.99.ffff.part").write_bytes(data[:10])  # another, never indexed
    counts = archive.recover()
    assert counts["partial_files_removed"] == 2 and counts["unacknowledged_rows_removed"] == 1
    assert counts["lost_rows_removed"] == 0  # never acknowledged: not lost
    assert count(archive, instances) == 0
    assert list(archive.incoming.iterdir()) == []
    # the sender sends it again: stored normally
    assert not archive.store(data).duplicate


def test_recovery_keeps_an_acknowledged_instance(archive: Archive) -> None:
    data = encode(make())
    stored = archive.store(data)
    (archive.incoming / f"{stored.sop_instance_uid}.1234.part").write_bytes(data)  # a second copy was in flight
    counts = archive.recover()
    assert counts["partial_files_removed"] == 1 and counts["unacknowledged_rows_removed"] == 0
    assert counts["lost_rows_removed"] == 0
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
    assert not any(archive.recover().values())
    assert list(archive.spare_dir.iterdir()) == [] and list(archive.incoming.iterdir()) == []
    assert count(archive, instances) == 2


# --- issue 17: the durability invariant, validation of what is acknowledged, colliding UIDs


def test_a_copy_whose_file_was_removed_is_stored_again_not_taken_as_duplicate(archive: Archive) -> None:
    ds = make()
    data = encode(ds)
    first = archive.store(data, expected_sop_uid=ds.SOPInstanceUID)
    first.path.unlink()  # moved away by an administrator, or lost to a full disk after the commit
    again = archive.store(data, expected_sop_uid=ds.SOPInstanceUID)
    assert not again.duplicate and again.path.read_bytes() == data and count(archive, instances) == 1
    first.path.write_bytes(data[:1000])  # damaged: the wrong size
    assert not archive.store(data).duplicate and first.path.read_bytes() == data
    assert archive.store(data).duplicate  # intact now: a real duplicate


def test_recover_removes_rows_without_files_records_them_and_a_resend_restores_them(archive: Archive) -> None:
    from daemon.storage.integrity import scan, summary

    kept, lost = make(0), make(1)
    archive.store(encode(kept))
    gone = archive.store(encode(lost))
    gone.path.unlink()
    assert [f.kind for f in scan(archive).findings] == ["missing"]
    counts = archive.recover()
    assert counts["lost_rows_removed"] == 1 and count(archive, instances) == 1
    s = summary(archive)
    assert [e["sop_instance_uid"] for e in s["still_missing"]] == [lost.SOPInstanceUID]
    assert not archive.recover()["lost_rows_removed"]  # a second start-up keeps the record ...
    assert len(summary(archive)["still_missing"]) == 1
    archive.store(encode(lost))  # ... until the PACS sends the instance again
    assert summary(archive)["still_missing"] == [] and summary(archive)["restored"] == 1
    assert scan(archive).findings == []


def test_recover_indexes_complete_files_without_rows_and_quarantines_the_rest(archive: Archive) -> None:
    ds = make(0)
    data = encode(ds)
    place = archive.root / archive.relative_path("1.2.3.4", "1.2.3.4.5", ds.SOPInstanceUID)
    place.parent.mkdir(parents=True)
    place.write_bytes(data)  # restored by hand from a backup, say
    junk = place.with_name("1.2.3.999.dcm")
    junk.write_bytes(data[:700])
    counts = archive.recover()
    assert counts["orphans_indexed"] == 1 and counts["quarantined"] == 1
    assert count(archive, instances) == 1 and not junk.exists()
    assert list((archive.root / ".quarantine").rglob("1.2.3.999.dcm"))
    assert archive.store(data).duplicate


def test_an_instance_uid_archived_under_another_study_is_refused_without_leaving_rows(archive: Archive) -> None:
    from daemon.storage.archive import STATUS_UID_CONFLICT

    ds = make(0)
    archive.store(encode(ds))
    moved = make(0, study="1.2.3.8", series_uid="1.2.3.8.1")
    moved.SOPInstanceUID = ds.SOPInstanceUID
    moved.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for expected in (None, ds.SOPInstanceUID):
        with pytest.raises(RejectedInstance, match="archived already under study 1.2.3.4 series 1.2.3.4.5") as err:
            archive.store(encode(moved), expected_sop_uid=expected)
        assert err.value.status == STATUS_UID_CONFLICT
    assert (count(archive, studies), count(archive, series), count(archive, instances)) == (1, 1, 1)


def test_a_series_uid_reused_under_another_study_is_refused(archive: Archive) -> None:
    archive.store(encode(make(0)))
    other = make(1, study="1.2.3.9", series_uid="1.2.3.4.5")
    with pytest.raises(RejectedInstance, match="Series Instance UID 1.2.3.4.5 is archived already under study 1.2.3.4"):
        archive.store(encode(other), expected_sop_uid=other.SOPInstanceUID)
    fresh = Archive(archive.root, archive.engine)  # no cache: the index says so too
    with pytest.raises(RejectedInstance, match="not study 1.2.3.9"):
        fresh.store(encode(other))
    assert (count(archive, studies), count(archive, series), count(archive, instances)) == (1, 1, 1)


@pytest.mark.parametrize("cut", [1, 200, 5000, 8192 + 12, 8192 + 200])
def test_a_data_set_cut_short_is_refused(archive: Archive, cut: int) -> None:
    data = encode(ct_slice("1.2.3.4", "1.2.3.4.5", 0, np.ones((64, 64), dtype=np.int16)))
    with pytest.raises(RejectedInstance) as err:
        archive.store(data[: len(data) - cut])
    assert err.value.status == STATUS_CANNOT_UNDERSTAND
    if cut < 8192:
        assert "element (7FE0,0010) declares 8192 bytes but" in str(err.value)
    elif cut == 8192 + 12:  # cut exactly before the Pixel Data element
        assert "no Pixel Data" in str(err.value)
    assert count(archive, instances) == 0


def test_pixel_data_of_the_wrong_size_is_refused_with_the_sizes(archive: Archive) -> None:
    ds = make()
    ds.Rows = 9  # 9 x 8 x 16 bits need 144 bytes, the pixel data has 128
    with pytest.raises(RejectedInstance, match=r"Pixel Data is 128 bytes; Rows 9 x Columns 8 .* need 144"):
        archive.store(encode(ds))


def test_an_image_without_pixel_data_is_refused(archive: Archive) -> None:
    ds = make()
    del ds.PixelData
    with pytest.raises(RejectedInstance, match="no Pixel Data"):
        archive.store(encode(ds))


def test_request_sop_class_must_match_the_data_set(archive: Archive) -> None:
    ds = make()
    with pytest.raises(RejectedInstance, match="SOP Class UID 1.2.840.10008.5.1.4.1.1.2 differs") as err:
        archive.store(encode(ds), expected_sop_class="1.2.840.10008.5.1.4.1.1.88.22")
    assert err.value.status == STATUS_DATASET_MISMATCH


def test_a_deflate_bomb_is_refused(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    import daemon.storage.archive as archive_module
    from daemon.network.filemeta import file_meta_bytes

    monkeypatch.setattr(archive_module, "INFLATED_LIMIT_BYTES", 1 << 20)
    body = (
        b"\x08\x00\x16\x00UI\x02\x001\x00"
        + b"\x09\x00\x10\x00OB\x00\x00"
        + (8 << 20).to_bytes(4, "little")
        + bytes(8 << 20)
    )
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = packer.compress(body) + packer.flush()
    assert len(deflated) < 20_000
    data = file_meta_bytes("1.2.840.10008.5.1.4.1.1.2", "1.2.3.7", "1.2.840.10008.1.2.1.99") + deflated
    with pytest.raises(RejectedInstance, match="inflates to more than 1 MB"):
        archive.store(data)


def test_encapsulated_pixel_data_needs_its_fragment_structure(archive: Archive) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    ds = make()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    good = encode(ds)
    assert not archive.store(good).duplicate
    tail = good.rindex(b"\xfe\xff\xdd\xe0")  # the sequence delimiter
    with pytest.raises(RejectedInstance, match="no sequence delimiter"):
        archive.store(good[:tail])


def test_reconcile_leaves_a_row_alone_while_its_part_file_says_a_store_is_in_flight(archive: Archive) -> None:
    from daemon.storage.integrity import reconcile

    ds = make(0)
    stored = archive.store(encode(ds))
    data = stored.path.read_bytes()
    stored.path.unlink()
    part = archive.incoming / f"{ds.SOPInstanceUID}.abc123.part"  # another node sharing the archive, mid-store
    part.write_bytes(data)
    assert reconcile(archive)["lost_rows_removed"] == 0 and count(archive, instances) == 1
    part.unlink()
    assert reconcile(archive)["lost_rows_removed"] == 1 and count(archive, instances) == 0


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"])
def test_implicit_big_endian_and_deflated_data_sets_are_walked_too(archive: Archive, syntax: str) -> None:
    from pydicom.uid import UID

    ds = ct_slice("1.2.3.4", "1.2.3.4.5", 0, np.arange(64 * 64, dtype=np.int16).reshape(64, 64))
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.SequenceOfUltrasoundRegions = []  # an (empty) sequence among the elements
    data = encode(ds)
    stored = archive.store(data)
    assert np.array_equal(dcmread(stored.path).pixel_array, ds.pixel_array)
    if syntax != "1.2.840.10008.1.2.1.99":
        with pytest.raises(RejectedInstance, match="declares 8192 bytes"):
            archive.store(data[:-100])
