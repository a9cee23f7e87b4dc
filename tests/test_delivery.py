"""daemon.workflow.outbox: the outbox against a real pynetdicom Storage SCP on loopback.

Time is a controllable clock handed to the Outbox (no sleeps): the tests
move it past each backoff and check when rows fall due, what the PACS
received, and what the outbox says about it.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE, AllStoragePresentationContexts, evt
from sqlalchemy import select

from daemon.settings import Destination
from daemon.storage.db import open_index
from daemon.storage.schema import outbox
from daemon.workflow.outbox import Outbox, RetryPolicy, parse_destination
from tests.support.ct_series import write_ct_series
from tests.support.servers import free_port

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


class FakeFreePACS:
    """A real pynetdicom Storage SCP on 127.0.0.1 that records what it stores.

    ``status`` is the C-STORE status it answers; ``ae_title`` is the only
    called AE title it accepts (others are rejected at A-ASSOCIATE).
    """

    def __init__(self, port: int | None = None, *, ae_title: str = "PACS", status: int = 0x0000) -> None:
        self.port = port or free_port()
        self.ae_title = ae_title
        self.status = status
        self.received: list[str] = []  # SOP Instance UIDs, in arrival order (duplicates kept)
        self.associations = 0
        self._lock = threading.Lock()
        self._server = None

    def _on_store(self, event: evt.Event) -> int:
        with self._lock:
            if self.status in (0x0000,) or 0xB000 <= self.status <= 0xBFFF:
                self.received.append(str(event.dataset.SOPInstanceUID))
        return self.status

    def _on_established(self, event: evt.Event) -> None:
        with self._lock:
            self.associations += 1

    def start(self) -> FakeFreePACS:
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        ae.supported_contexts = AllStoragePresentationContexts
        self._server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_ESTABLISHED, self._on_established)],
        )
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


@pytest.fixture
def pacs():
    started: list[FakeFreePACS] = []

    def make(port: int | None = None, **kwargs) -> FakeFreePACS:  # type: ignore[no-untyped-def]
        server = FakeFreePACS(port, **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive"


def archive_objects(archive_dir: Path, tmp_path: Path, n: int = 2, seed: int = 0) -> list[tuple[str, str, str]]:
    """Write ``n`` small CT images into the archive layout; (SOP UID, study UID, relative path) each."""
    objects = []
    for src in write_ct_series(tmp_path / f"src{seed}", n, rows=32, cols=32, seed=seed):
        ds = dcmread(src, stop_before_pixels=True)
        relative = f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
        (archive_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, archive_dir / relative)
        objects.append((str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), relative))
    return objects


def rows(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(outbox).order_by(outbox.c.id)).all()


def utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def dest(port: int, ae_title: str = "PACS") -> Destination:
    return Destination(ae_title=ae_title, host="127.0.0.1", port=port)


# ---------------------------------------------------------------- delivery


def test_enqueued_objects_are_delivered_over_one_association(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    server = pacs()
    clock = Clock()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=clock)
    objects = archive_objects(archive_dir, tmp_path, 3)
    for sop, study, rel in objects:
        assert box.enqueue(sop, study, rel) == 1

    assert box.summary()["pending"] == 3
    assert box.deliver_due() == {"delivered": 3, "retry": 0, "expired": 0}

    assert sorted(server.received) == sorted(sop for sop, _, _ in objects)
    assert server.associations == 1
    for row in rows(engine):
        assert row.state == "delivered" and row.attempts == 1 and row.last_error is None
        assert utc(row.delivered_at) == T0
    summary = box.summary()
    assert (summary["pending"], summary["delivered"], summary["expired"]) == (0, 3, 0)
    assert summary["by_destination"] == {f"PACS@127.0.0.1:{server.port}": {"pending": 0, "delivered": 3, "expired": 0}}
    assert summary["oldest_pending"] is None
    # nothing is sent twice
    assert box.deliver_due(now=clock.advance(3600)) == {"delivered": 0, "retry": 0, "expired": 0}
    assert len(server.received) == 3


def test_every_destination_gets_its_own_row_and_copy(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    first, second = pacs(ae_title="PACS"), pacs(ae_title="ARCHIVE2")
    box = Outbox(engine, archive_dir, [dest(first.port), dest(second.port, "ARCHIVE2")], clock=Clock())
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    assert box.enqueue(sop, study, rel) == 2
    assert box.deliver_due()["delivered"] == 2
    assert first.received == [sop] and second.received == [sop]


def test_enqueue_is_idempotent(engine, archive_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = Outbox(engine, archive_dir, [dest(4242), dest(4243, "OTHER")], clock=Clock())
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    assert box.enqueue(sop, study, rel) == 2
    assert box.enqueue(sop, study, rel) == 0
    # a second process with the same configuration does not duplicate either
    assert Outbox(engine, archive_dir, [dest(4242)], clock=Clock()).enqueue(sop, study, rel) == 0
    assert len(rows(engine)) == 2
    assert {r.destination for r in rows(engine)} == {"PACS@127.0.0.1:4242", "OTHER@127.0.0.1:4243"}


def test_no_destinations_means_nothing_queued(engine, archive_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = Outbox(engine, archive_dir, [], clock=Clock())
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    assert box.enqueue(sop, study, rel) == 0
    assert rows(engine) == []


# -------------------------------------------------------- destination down


def test_destination_down_is_retried_with_backoff_then_delivered(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    port = free_port()  # nothing listens here yet
    clock = Clock()
    box = Outbox(engine, archive_dir, [dest(port)], clock=clock, policy=RetryPolicy(initial_s=30, max_s=100))
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    box.enqueue(sop, study, rel)

    # attempt 1 at T0 fails: next try 30 s later
    assert box.deliver_due() == {"delivered": 0, "retry": 1, "expired": 0}
    (row,) = rows(engine)
    assert row.state == "pending" and row.attempts == 1
    assert "connection refused" in row.last_error and str(port) in row.last_error
    assert utc(row.next_attempt_at) == T0 + dt.timedelta(seconds=30)

    # not due before then: nothing is tried
    assert box.deliver_due(now=T0 + dt.timedelta(seconds=29)) == {"delivered": 0, "retry": 0, "expired": 0}
    assert rows(engine)[0].attempts == 1

    # attempts 2 and 3: the wait doubles (60 s), then is capped at max_s (100 s, not 120)
    clock.now = T0 + dt.timedelta(seconds=30)
    assert box.deliver_due()["retry"] == 1
    assert utc(rows(engine)[0].next_attempt_at) == clock.now + dt.timedelta(seconds=60)
    clock.advance(60)
    assert box.deliver_due()["retry"] == 1
    assert utc(rows(engine)[0].next_attempt_at) == clock.now + dt.timedelta(seconds=100)

    summary = box.summary()
    assert summary["pending"] == 1 and summary["oldest_pending"] == T0.isoformat()
    (error,) = summary["recent_errors"]
    assert error["study_uid"] == study and error["attempts"] == 3 and "connection refused" in error["last_error"]

    # the PACS comes up; the next due pass delivers
    server = pacs(port)
    clock.advance(100)
    assert box.deliver_due() == {"delivered": 1, "retry": 0, "expired": 0}
    assert server.received == [sop]
    (row,) = rows(engine)
    assert row.state == "delivered" and row.attempts == 4 and row.last_error is None


def test_rejected_association_is_retried_with_the_reason(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    server = pacs(ae_title="REALPACS")  # rejects our called AE title "PACS"
    box = Outbox(engine, archive_dir, [dest(server.port, "PACS")], clock=Clock())
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    box.enqueue(sop, study, rel)
    assert box.deliver_due() == {"delivered": 0, "retry": 1, "expired": 0}
    (row,) = rows(engine)
    assert row.last_error.startswith(f"association rejected by PACS@127.0.0.1:{server.port}")
    assert "Called AE title not recognised" in row.last_error or "called AE" in row.last_error.lower()
    assert server.received == []


def test_failure_status_is_retried_and_warning_status_counts_as_delivered(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    server = pacs(status=0xA700)
    clock = Clock()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=clock)
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    box.enqueue(sop, study, rel)
    assert box.deliver_due()["retry"] == 1
    (row,) = rows(engine)
    assert "C-STORE status 0xA700 Refused: Out of Resources" in row.last_error

    server.status = 0xB000  # coercion of data elements: the PACS keeps the object
    clock.advance(30)
    assert box.deliver_due()["delivered"] == 1
    assert server.received == [sop]


# ------------------------------------------------------------------ expiry


def test_row_expires_after_max_age_with_a_warning_naming_study_and_destination(
    engine, archive_dir, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    clock = Clock()
    box = Outbox(
        engine, archive_dir, [dest(port)], clock=clock, policy=RetryPolicy(initial_s=30, max_s=3600, max_age_s=100)
    )
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    box.enqueue(sop, study, rel)
    caplog.set_level(logging.INFO, logger="daemon.workflow.outbox")

    assert box.deliver_due()["retry"] == 1  # T0 -> next at T0+30
    clock.advance(30)
    assert box.deliver_due()["retry"] == 1  # T0+30 -> next at T0+90
    clock.advance(60)
    assert box.deliver_due()["retry"] == 1  # T0+90 -> backoff says T0+210, max_age caps it at T0+100
    assert utc(rows(engine)[0].next_attempt_at) == T0 + dt.timedelta(seconds=100)
    ours = lambda: [r for r in caplog.records if r.name == "daemon.workflow.outbox"]  # noqa: E731
    assert not [r for r in ours() if r.levelno >= logging.WARNING]

    clock.now = T0 + dt.timedelta(seconds=100)
    assert box.deliver_due() == {"delivered": 0, "retry": 0, "expired": 1}
    (row,) = rows(engine)
    assert row.state == "expired" and row.attempts == 4
    assert "connection refused" in row.last_error and "4 attempts" in row.last_error
    warnings = [r.getMessage() for r in ours() if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert study in warnings[0] and f"PACS@127.0.0.1:{port}" in warnings[0]
    log_text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Test^Receive" not in log_text and "NODULED-TEST-1" not in log_text  # no patient identifiers

    summary = box.summary()
    assert (summary["pending"], summary["expired"]) == (0, 1)
    assert summary["recent_errors"][0]["state"] == "expired"
    # an expired row is not tried again
    assert box.deliver_due(now=clock.advance(10_000)) == {"delivered": 0, "retry": 0, "expired": 0}


def test_missing_file_expires_with_the_reason_and_others_still_go(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    server = pacs()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=Clock())
    (sop1, study1, rel1), (sop2, study2, rel2) = archive_objects(archive_dir, tmp_path, 2)
    (archive_dir / rel1).unlink()
    box.enqueue(sop1, study1, rel1)
    box.enqueue(sop2, study2, rel2)
    assert box.deliver_due() == {"delivered": 1, "retry": 0, "expired": 1}
    assert server.received == [sop2]
    by_sop = {r.sop_instance_uid: r for r in rows(engine)}
    assert by_sop[sop1].state == "expired" and "missing" in by_sop[sop1].last_error and rel1 in by_sop[sop1].last_error
    assert by_sop[sop2].state == "delivered"


# ------------------------------------------------------------- concurrency


def test_two_outboxes_on_one_database_send_each_row_once(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    server = pacs()
    objects = archive_objects(archive_dir, tmp_path, 12)
    url = str(engine.url)
    other_engine = open_index(url)  # a second "process": its own engine and connections
    try:
        boxes = [
            Outbox(engine, archive_dir, [dest(server.port)], clock=Clock()),
            Outbox(other_engine, archive_dir, [dest(server.port)], clock=Clock()),
        ]
        for sop, study, rel in objects:
            boxes[0].enqueue(sop, study, rel)
        barrier = threading.Barrier(2)
        results: list[dict] = [{}, {}]

        def deliver(i: int) -> None:
            barrier.wait()
            results[i] = boxes[i].deliver_due()

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        other_engine.dispose()

    assert sum(r["delivered"] for r in results) == 12
    assert Counter(server.received) == Counter({sop: 1 for sop, _, _ in objects})
    assert all(r.state == "delivered" and r.attempts == 1 for r in rows(engine))


def test_a_claimed_row_is_not_sent_by_another_process_until_its_lease_runs_out(
    engine, archive_dir, tmp_path, pacs
) -> None:  # type: ignore[no-untyped-def]
    """A process that died after claiming: the row waits for the lease, then goes out."""
    server = pacs()
    clock = Clock()
    box = Outbox(engine, archive_dir, [dest(server.port)], clock=clock, lease_s=120)
    ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
    box.enqueue(sop, study, rel)
    with engine.connect() as conn:  # what a crashed process leaves behind
        (row,) = conn.execute(select(outbox)).all()
    from daemon.workflow.outbox import _Row

    claimed = box._claim([_Row(row.id, sop, study, rel, row.destination, 0, T0)], T0)
    assert len(claimed) == 1
    assert box.deliver_due(now=T0 + dt.timedelta(seconds=60))["delivered"] == 0
    assert server.received == []
    assert box.deliver_due(now=T0 + dt.timedelta(seconds=120))["delivered"] == 1
    assert server.received == [sop]


# ---------------------------------------------------------------- the loop


def test_run_loop_delivers_on_wake_and_stops(engine, archive_dir, tmp_path, pacs) -> None:  # type: ignore[no-untyped-def]
    server = pacs()
    box = Outbox(engine, archive_dir, [dest(server.port)])  # real clock
    stop = threading.Event()
    thread = threading.Thread(target=box.run, args=(stop,), kwargs={"poll_s": 30.0}, daemon=True)
    thread.start()
    try:
        ((sop, study, rel),) = archive_objects(archive_dir, tmp_path, 1)
        box.enqueue(sop, study, rel)
        box.wake()  # the loop would otherwise wait 30 s
        for _ in range(200):
            if server.received:
                break
            threading.Event().wait(0.05)
        assert server.received == [sop]
    finally:
        stop.set()
        box.wake()
        thread.join(timeout=10)
    assert not thread.is_alive()


# ----------------------------------------------------------------- helpers


def test_retry_policy_backoff_doubles_and_caps() -> None:
    policy = RetryPolicy(initial_s=30, max_s=3600)
    assert [policy.delay_s(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert policy.delay_s(8) == 3600 and policy.delay_s(500) == 3600
    with pytest.raises(ValueError, match="max_s"):
        RetryPolicy(initial_s=60, max_s=30)


def test_destination_keys_parse_back() -> None:
    assert parse_destination("PACS@127.0.0.1:4242") == ("PACS", "127.0.0.1", 4242)
    assert parse_destination("A@B@::1:104") == ("A@B", "::1", 104)
    with pytest.raises(ValueError, match="AE@host:port"):
        parse_destination("PACS-127.0.0.1")
