"""The outbox against a real Orthanc: delivery, resend without duplicates, PACS down and back."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select, update

from daemon.settings import Destination
from daemon.storage.archive import Archive
from daemon.storage.db import open_index
from daemon.storage.schema import outbox
from daemon.workflow.outbox import Outbox, RetryPolicy
from tests.support.ct_series import write_ct_series

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def orthanc_sop_uids(pacs) -> list[str]:  # type: ignore[no-untyped-def]
    """SOP Instance UIDs of every instance Orthanc holds (duplicates would show twice)."""
    return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in pacs.rest("GET", "/instances?expand"))


def archive_series(archive: Archive, box: Outbox, src: Path, n: int, seed: int) -> dict[str, Path]:
    """Write a small CT series, store it in the archive the way the SCP does, queue it.

    Returns the archived file of each SOP Instance UID.
    """
    archived = {}
    for path in write_ct_series(src, n, rows=32, cols=32, seed=seed):
        stored = archive.store(path.read_bytes(), calling_ae="TEST")
        relative = archive.relative_path(stored.study_uid, stored.series_uid, stored.sop_instance_uid)
        assert box.enqueue(stored.sop_instance_uid, stored.study_uid, relative) == 1
        archived[stored.sop_instance_uid] = archive.path_of(relative)
    return archived


def test_outbox_delivers_to_orthanc_and_survives_orthanc_restart(orthanc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pacs = orthanc()
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    try:
        archive = Archive(tmp_path / "archive", engine)
        clock = Clock()
        box = Outbox(
            engine,
            archive.root,
            [Destination(ae_title=pacs.aet, host="127.0.0.1", port=pacs.dicom_port)],
            calling_ae="NODULED",
            clock=clock,
            policy=RetryPolicy(initial_s=30),
        )

        # 1. delivered, byte-for-byte the same pixels
        first = archive_series(archive, box, tmp_path / "src1", 2, seed=1)
        assert box.deliver_due() == {"delivered": 2, "retry": 0, "expired": 0}
        assert orthanc_sop_uids(pacs) == sorted(first)
        for instance in pacs.rest("GET", "/instances?expand"):
            got = dcmread(io.BytesIO(pacs.rest("GET", f"/instances/{instance['ID']}/file")))
            sent = dcmread(first[got.SOPInstanceUID])
            assert got.PixelData == sent.PixelData and got.StudyInstanceUID == sent.StudyInstanceUID

        # 2. a resend (what happens after a crash between sending and recording) replaces, never duplicates
        with engine.begin() as conn:
            conn.execute(update(outbox).values(state="pending", next_attempt_at=T0))
        assert box.deliver_due()["delivered"] == 2
        assert orthanc_sop_uids(pacs) == sorted(first)

        # 3. Orthanc down: the new object waits with the reason
        pacs.stop()
        second = archive_series(archive, box, tmp_path / "src2", 1, seed=2)
        assert box.deliver_due() == {"delivered": 0, "retry": 1, "expired": 0}
        with engine.connect() as conn:
            (row,) = conn.execute(select(outbox).where(outbox.c.state == "pending")).all()
        assert row.sop_instance_uid in second and row.attempts == 1
        assert "connection refused" in row.last_error and str(pacs.dicom_port) in row.last_error
        assert box.summary()["pending"] == 1

        # 4. Orthanc back (same storage): delivered at the next due time, nothing lost
        pacs.start()
        clock.now = T0 + dt.timedelta(seconds=30)
        assert box.deliver_due() == {"delivered": 1, "retry": 0, "expired": 0}
        assert orthanc_sop_uids(pacs) == sorted([*first, *second])
        summary = box.summary()
        assert (summary["pending"], summary["delivered"], summary["expired"]) == (0, 3, 0)
    finally:
        engine.dispose()
