"""The outbox's order (an SR after the SEG it references), Storage Commitment bookkeeping, and prompt retry.

Against real pynetdicom SCPs on loopback; time is a clock the test moves (except the prompt-retry
test, which measures seconds of real time on purpose: that is its point).
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AllStoragePresentationContexts, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from daemon.network.commitment import CommitmentReport
from daemon.settings import Destination
from daemon.storage.db import open_index
from daemon.workflow.outbox import Outbox, RetryPolicy, destination_key
from daemon.workflow.probe import DestinationProbe
from dicom_sr.report import build_report
from dicom_sr.seg import build_segmentation
from tests.dicom_sr_support import make_assessment, make_ct_series
from tests.support.servers import free_port
from tests.test_delivery import T0, Clock, FakeFreePACS, rows


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def pacs():  # type: ignore[no-untyped-def]
    started: list[FakeFreePACS] = []

    def make(port: int | None = None, **kwargs) -> FakeFreePACS:  # type: ignore[no-untyped-def]
        server = FakeFreePACS(port, **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


def _save(ds: Dataset, archive: Path) -> tuple[str, str, str]:
    relative = f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    path = archive / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path.write_bytes(buf.getvalue())
    return str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), relative


@pytest.fixture(scope="module")
def report_pair() -> tuple[Dataset, Dataset]:
    """A real SEG and the TID 1500 SR that references it (dicom_sr's builders)."""
    ct = make_ct_series()
    assessment = make_assessment(ct)
    seg = build_segmentation(assessment.findings, ct)
    return seg, build_report(assessment, ct, seg=seg)


def _enqueue_sr_first(box: Outbox, archive: Path, pair: tuple[Dataset, Dataset]) -> tuple[str, str]:
    seg, sr = pair
    sr_row, seg_row = _save(sr, archive), _save(seg, archive)
    assert box.enqueue(*sr_row) == 1  # the worst order: the SR is queued first
    assert box.enqueue(*seg_row) == 1
    return seg_row[0], sr_row[0]


class CommitPACS(FakeFreePACS):
    """A Storage SCP that also takes Storage Commitment requests (N-ACTION), answering success, reporting later."""

    def __init__(self, port: int | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(port, **kwargs)
        self.requests: list[tuple[str, list[str]]] = []  # (transaction UID, SOP Instance UIDs)

    def _on_action(self, event: evt.Event):  # type: ignore[no-untyped-def]
        info = event.action_information
        self.requests.append(
            (str(info.TransactionUID), [str(i.ReferencedSOPInstanceUID) for i in info.ReferencedSOPSequence])
        )
        return 0x0000, None

    def start(self) -> CommitPACS:
        from pynetdicom import AE

        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(StorageCommitmentPushModel)
        self._server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_N_ACTION, self._on_action)],
        )
        return self


def dest(port: int, commitment: bool | str = False) -> Destination:
    return Destination(ae_title="PACS", host="127.0.0.1", port=port, storage_commitment=commitment)  # type: ignore[arg-type]


# ------------------------------------------------------------------- order


def test_sr_goes_after_the_seg_it_references_even_when_queued_first(engine, archive_dir, pacs, report_pair) -> None:  # type: ignore[no-untyped-def]
    server = pacs()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=Clock())
    seg_uid, sr_uid = _enqueue_sr_first(box, archive_dir, report_pair)
    assert box.deliver_due() == {"delivered": 2, "retry": 0, "expired": 0}
    assert server.received == [seg_uid, sr_uid]


def test_seg_and_its_sr_go_on_one_association_seg_first(engine, archive_dir, pacs, report_pair) -> None:  # type: ignore[no-untyped-def]
    server = pacs()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=Clock())
    seg_uid, sr_uid = _enqueue_sr_first(box, archive_dir, report_pair)
    assert box.deliver_due() == {"delivered": 2, "retry": 0, "expired": 0}
    assert server.received == [seg_uid, sr_uid]
    assert server.associations == 1  # not one association per dependency level


def test_sr_is_not_sent_while_its_seg_is_held_by_a_process_that_died(engine, archive_dir, pacs, report_pair) -> None:  # type: ignore[no-untyped-def]
    server = pacs()
    clock = Clock()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=clock, lease_s=120)
    seg_uid, sr_uid = _enqueue_sr_first(box, archive_dir, report_pair)
    # a process claimed the SEG and died mid-delivery (before recording anything)
    dead = Outbox(engine, archive_dir, [dest(server.port)], clock=clock, lease_s=120)
    (seg_row,) = [r for r in rows(engine) if r.sop_instance_uid == seg_uid]
    from daemon.workflow.outbox import _Row

    assert dead._claim([_Row(seg_row.id, seg_uid, seg_row.study_uid, seg_row.path, seg_row.destination, 0, T0)], T0)
    # the restarted node: the SR waits, nothing reaches the PACS
    assert box.deliver_due() == {"delivered": 0, "retry": 0, "expired": 0}
    assert server.received == []
    # the claim runs out: SEG, then SR
    assert box.deliver_due(now=clock.advance(121)) == {"delivered": 2, "retry": 0, "expired": 0}
    assert server.received == [seg_uid, sr_uid]


def test_a_failing_seg_holds_its_sr_back_and_an_expired_one_releases_it(engine, archive_dir, pacs, report_pair) -> None:  # type: ignore[no-untyped-def]
    server = pacs(status=0xA700)  # Out of Resources for everything
    clock = Clock()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=clock, policy=RetryPolicy(initial_s=30, max_age_s=600))
    seg_uid, sr_uid = _enqueue_sr_first(box, archive_dir, report_pair)
    assert box.deliver_due() == {"delivered": 0, "retry": 1, "expired": 0}  # only the SEG was tried
    (sr_row,) = [r for r in rows(engine) if r.sop_instance_uid == sr_uid]
    assert sr_row.attempts == 0 and sr_row.state == "pending"
    server.status = 0x0000
    assert box.deliver_due(now=clock.advance(30)) == {"delivered": 2, "retry": 0, "expired": 0}
    assert server.received == [seg_uid, sr_uid]


# -------------------------------------------------------------- commitment


def test_with_commitment_an_object_is_delivered_only_when_the_report_says_committed(
    engine, archive_dir, report_pair
) -> None:  # type: ignore[no-untyped-def]
    server = CommitPACS().start()
    try:
        clock = Clock()
        box = Outbox(engine, archive_dir, [dest(server.port, True)], clock=clock, commitment_timeout_s=300)
        seg_uid, sr_uid = _enqueue_sr_first(box, archive_dir, report_pair)
        assert box.deliver_due() == {"delivered": 0, "retry": 0, "expired": 0}
        assert server.received == [seg_uid]  # stored, asked to commit; the SR waits for the SEG's commitment
        ((uid, named),) = server.requests
        assert named == [seg_uid]
        summary = box.summary()
        assert (summary["pending"], summary["delivered"], summary["awaiting_commitment"]) == (2, 0, 1)
        assert box.deliver_due(now=clock.advance(60)) == {"delivered": 0, "retry": 0, "expired": 0}
        assert server.received == [seg_uid]

        assert box.record_commitment(CommitmentReport(uid, (seg_uid,), ()), now=clock.now) == {
            "delivered": 1,
            "retry": 0,
        }
        assert box.deliver_due() == {"delivered": 0, "retry": 0, "expired": 0}
        assert server.received == [seg_uid, sr_uid]
        (_, sr_uid_uid) = server.requests[1][0], server.requests[1][1]
        assert sr_uid_uid == [sr_uid]
        box.record_commitment(CommitmentReport(server.requests[1][0], (sr_uid,), ()))
        assert [r.state for r in rows(engine)] == ["delivered", "delivered"]
    finally:
        server.stop()


def test_a_commitment_failure_is_retried_and_a_missing_report_resends(engine, archive_dir, report_pair) -> None:  # type: ignore[no-untyped-def]
    server = CommitPACS().start()
    try:
        clock = Clock()
        box = Outbox(
            engine,
            archive_dir,
            [dest(server.port, True)],
            clock=clock,
            commitment_timeout_s=300,
            policy=RetryPolicy(initial_s=30),
        )
        seg, _ = report_pair
        sop, study, rel = _save(seg, archive_dir)
        box.enqueue(sop, study, rel)
        box.deliver_due()
        uid = server.requests[0][0]
        assert box.record_commitment(CommitmentReport(uid, (), ((sop, 0x0112),)), now=clock.now) == {
            "delivered": 0,
            "retry": 1,
        }
        (row,) = rows(engine)
        assert (
            row.state == "pending"
            and "did not commit" in row.last_error
            and "0x0112 (No such object instance)" in row.last_error
        )
        # retried after the backoff; this time no report comes: sent again after the timeout, saying why
        assert box.deliver_due(now=clock.advance(30)) == {"delivered": 0, "retry": 0, "expired": 0}
        assert len(server.received) == 2
        box.deliver_due(now=clock.advance(301))
        assert len(server.received) == 3 and len(server.requests) == 3
        (row,) = rows(engine)
        assert row.state == "pending" and "no Storage Commitment report" in row.last_error
        # a report of the replaced transaction changes nothing; the current one delivers
        assert box.record_commitment(CommitmentReport(server.requests[1][0], (sop,), ())) == {
            "delivered": 0,
            "retry": 0,
        }
        assert box.record_commitment(CommitmentReport(server.requests[2][0], (sop,), ())) == {
            "delivered": 1,
            "retry": 0,
        }
    finally:
        server.stop()


def test_auto_commitment_without_support_delivers_on_store_and_required_does_not(
    engine, archive_dir, pacs, tmp_path, report_pair
) -> None:  # type: ignore[no-untyped-def]
    server = pacs()  # no Storage Commitment presentation context
    seg, _ = report_pair
    sop, study, rel = _save(seg, archive_dir)
    auto = Outbox(engine, archive_dir, [dest(server.port, "auto")], clock=Clock())
    auto.enqueue(sop, study, rel)
    assert auto.deliver_due() == {"delivered": 1, "retry": 0, "expired": 0}

    other = FakeFreePACS(ae_title="PACS").start()
    try:
        required = Outbox(engine, archive_dir, [dest(other.port, True)], clock=Clock())
        required.enqueue(sop, study, rel)
        assert required.deliver_due() == {"delivered": 0, "retry": 1, "expired": 0}
        (row,) = [r for r in rows(engine) if r.destination == destination_key(dest(other.port))]
        assert "does not accept Storage Commitment" in row.last_error and other.received == [sop]
    finally:
        other.stop()


# -------------------------------------------------------------- prompt retry


def test_delivery_resumes_within_seconds_when_the_destination_returns(engine, archive_dir, report_pair) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    target = dest(port)
    box = Outbox(engine, archive_dir, [target], policy=RetryPolicy(initial_s=3600, max_s=3600))  # next slot: 1 h
    seg, _ = report_pair
    box.enqueue(*_save(seg, archive_dir))
    assert box.deliver_due() == {"delivered": 0, "retry": 1, "expired": 0}  # down: connection refused
    probe = DestinationProbe(engine, box, [destination_key(target)], calling_ae="NODULED", down_alert_s=60)
    stop = threading.Event()
    threads = [
        threading.Thread(target=box.run, args=(stop,), kwargs={"poll_s": 0.2}, daemon=True),
        threading.Thread(target=probe.run, args=(stop,), kwargs={"interval_s": 0.2}, daemon=True),
    ]
    for t in threads:
        t.start()
    server = None
    try:
        time.sleep(0.6)
        assert probe.states[destination_key(target)].up is False
        server = FakeFreePACS(port, ae_title="PACS").start()
        back = time.monotonic()
        while not server.received and time.monotonic() - back < 10:
            time.sleep(0.05)
        took = time.monotonic() - back
        assert server.received == [str(seg.SOPInstanceUID)], "not delivered within 10 s of the destination's return"
        assert took < 3, f"delivered {took:.1f} s after the destination came back"
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        if server is not None:
            server.stop()


def test_healthz_check_fails_naming_a_destination_down_longer_than_the_alert_time(engine, archive_dir) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    answers: dict[str, str | None] = {
        "PACS@127.0.0.1:4242": None,
        "VNA@127.0.0.1:4243": "connection refused by 127.0.0.1:4243",
    }
    box = Outbox(engine, archive_dir, [], clock=clock)
    probe = DestinationProbe(
        engine,
        box,
        list(answers),
        calling_ae="NODULED",
        down_alert_s=120,
        clock=clock,
        echo_fn=lambda destination, **_: answers[destination],
    )
    assert probe.health() == (True, "no destination probed yet")
    probe.probe_once()
    ok, detail = probe.health()
    assert ok and "VNA@127.0.0.1:4243 DOWN for 0 s" in detail and "PACS@127.0.0.1:4242 up" in detail
    clock.advance(121)
    probe.probe_once()
    ok, detail = probe.health()
    assert not ok and "VNA@127.0.0.1:4243 DOWN for 121 s" in detail and "connection refused" in detail
    assert probe.down_count() == 1
    answers["VNA@127.0.0.1:4243"] = None
    probe.probe_once()
    assert probe.health()[0] and probe.down_count() == 0


def test_sr_after_its_seg_also_when_the_delivering_process_is_killed_mid_store(
    engine, archive_dir, tmp_path, report_pair
) -> None:  # type: ignore[no-untyped-def]
    """A real process crash (SIGKILL) while the PACS is storing the SEG: the restarted outbox sends the SEG again
    before the SR, never the SR first."""
    import os
    import signal
    import subprocess
    import sys

    from pynetdicom import AE

    arrivals: list[str] = []
    storing = threading.Event()

    def on_store(event: evt.Event) -> int:
        arrivals.append(str(event.request.AffectedSOPInstanceUID))
        if len(arrivals) == 1:
            storing.set()
            time.sleep(3)  # the first C-STORE is slow: the sender is killed meanwhile
        return 0x0000

    ae = AE(ae_title="PACS")
    ae.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        box = Outbox(engine, archive_dir, [dest(port)], lease_s=2)
        seg_uid, sr_uid = _enqueue_sr_first(box, archive_dir, report_pair)
        script = (
            "import sys\n"
            "from daemon.storage.db import open_index\n"
            "from daemon.settings import Destination\n"
            "from daemon.workflow.outbox import Outbox\n"
            f"engine = open_index({str(engine.url)!r})\n"
            f"Outbox(engine, {str(archive_dir)!r}, [Destination(ae_title='PACS', host='127.0.0.1', port={port})],"
            " lease_s=2).deliver_due()\n"
        )
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
        proc = subprocess.Popen([sys.executable, "-c", script], env=env)
        try:
            assert storing.wait(60), "the delivering process never reached the PACS"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(30)
        assert arrivals == [seg_uid]
        # the restarted node: while the dead process's claim lasts (2 s) nothing goes, then SEG, then SR
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and box.summary()["delivered"] < 2:
            box.deliver_due()
            time.sleep(0.2)
        assert arrivals == [seg_uid, seg_uid, sr_uid]
        assert [r.state for r in rows(engine)] == ["delivered", "delivered"]
    finally:
        server.shutdown()
