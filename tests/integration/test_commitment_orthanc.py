"""Storage Commitment and delivery order against a real Orthanc.

Orthanc answers a Storage Commitment request (N-ACTION) at once and sends its report (N-EVENT-REPORT)
later, on a new association it opens to the node's SCP (it must know the node: DicomModalities).
Checked: an object is "delivered" only once Orthanc committed it; while Orthanc cannot report, the
row stays pending although Orthanc holds the object; the SR reaches Orthanc only after its SEG was
committed (Orthanc's own change log gives the order of arrival).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.network.scp import StorageSCP
from daemon.settings import Destination, SCPSettings
from daemon.storage.archive import Archive
from daemon.storage.db import open_index
from daemon.storage.schema import outbox
from daemon.workflow.outbox import Outbox
from dicom_sr.report import build_report
from dicom_sr.seg import build_segmentation
from tests.dicom_sr_support import make_assessment, make_ct_series
from tests.support.servers import free_port
from tests.test_delivery_order import _save

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def _states(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {r.sop_instance_uid: r.state for r in conn.execute(select(outbox))}


def _arrival_order(pacs) -> list[str]:  # type: ignore[no-untyped-def]
    """SOP Instance UIDs in the order Orthanc received them (its change log)."""
    changes = pacs.rest("GET", "/changes?limit=1000")["Changes"]
    order = []
    for change in sorted(changes, key=lambda c: c["Seq"]):
        if change["ChangeType"] == "NewInstance":
            tags = pacs.rest("GET", f"/instances/{change['ID']}/simplified-tags")
            order.append(tags["SOPInstanceUID"])
    return order


def test_delivered_only_after_orthanc_commits_and_the_sr_only_after_its_seg(orthanc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scp_port = free_port()
    pacs = orthanc({"noduled": ["NODULED", "127.0.0.1", scp_port]})
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    scp = None
    try:
        archive = Archive(tmp_path / "archive", engine)
        clock = Clock()
        box = Outbox(
            engine,
            archive.root,
            [Destination(ae_title=pacs.aet, host="127.0.0.1", port=pacs.dicom_port, storage_commitment=True)],
            calling_ae="NODULED",
            clock=clock,
            commitment_timeout_s=60,
        )
        ct = make_ct_series()
        assessment = make_assessment(ct)
        seg = build_segmentation(assessment.findings, ct)
        sr = build_report(assessment, ct, seg=seg)
        sr_uid, seg_uid = str(sr.SOPInstanceUID), str(seg.SOPInstanceUID)
        box.enqueue(*_save(sr, archive.root))  # queued first, sent last
        box.enqueue(*_save(seg, archive.root))

        # 1. the node's SCP is not listening: Orthanc stores the SEG, but cannot report the commitment
        assert box.deliver_due() == {"delivered": 0, "retry": 0, "expired": 0}
        time.sleep(3)  # Orthanc's report job tries, and fails
        assert _arrival_order(pacs) == [seg_uid]
        assert _states(engine) == {seg_uid: "pending", sr_uid: "pending"}
        assert box.summary()["awaiting_commitment"] == 1
        assert box.deliver_due() == {"delivered": 0, "retry": 0, "expired": 0}
        assert _arrival_order(pacs) == [seg_uid]  # no SR before its SEG is committed

        # 2. the SCP listens; the commitment timed out: the SEG is sent again, Orthanc reports on a new association
        scp = StorageSCP(SCPSettings(ae_title="NODULED", port=scp_port), archive, on_commitment=box.record_commitment)
        scp.start()
        clock.now += dt.timedelta(seconds=61)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(_states(engine).values()) != {"delivered"}:
            box.deliver_due()
            time.sleep(0.2)
        assert _states(engine) == {seg_uid: "delivered", sr_uid: "delivered"}
        order = _arrival_order(pacs)
        assert order.index(seg_uid) < order.index(sr_uid) and set(order) == {seg_uid, sr_uid}
        with engine.connect() as conn:
            by_uid = {r.sop_instance_uid: r for r in conn.execute(select(outbox))}
        assert by_uid[seg_uid].commitment_uid is None and by_uid[seg_uid].stored_at is not None
        assert by_uid[sr_uid].attempts == 1  # one C-STORE, committed
        summary = box.summary()
        assert (summary["pending"], summary["delivered"], summary["awaiting_commitment"]) == (0, 2, 0)
    finally:
        if scp is not None:
            scp.stop()
        engine.dispose()
