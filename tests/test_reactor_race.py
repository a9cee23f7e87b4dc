"""A requestor's send_c_store() gets its own response, however late the association's reactor thread wakes.

pynetdicom 3.0 pauses an association's reactor for a send_*() with a handshake
(``_reactor_checkpoint.clear()``, then wait for ``_is_paused``).  When the
reactor thread was woken by the previous send's ``set()`` but has not run yet,
``_is_paused`` is still True from before: the next send goes ahead, the reactor
then runs on, takes that send's C-STORE-RSP off the queue ("Received unexpected
C-STORE service message") and the sender waits for the DIMSE timeout and gets an
empty Dataset.  Seen as a 30 s hang of test_retention's sender under CPU load
(thread ``RequestorThread`` logged the warning); noduled's own requestors
(store_scu to a PACS) have the same loop.  Here that interleaving is forced.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from daemon.network import fastpath
from tests.support.servers import free_port


class _Schedule:
    """Forces: reactor woken by a send's set() is not scheduled until the next send's response is queued."""

    def __init__(self) -> None:
        self.queued = threading.Event()  # a response is on the queue and nobody took it yet
        self.stolen = threading.Event()  # the reactor took a message off the queue


def _force_late_reactor(schedule: _Schedule) -> Any:
    def on_established(event: Any) -> None:
        assoc = event.assoc

        class LateCheckpoint(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                paused = not self.is_set()
                woken = super().wait(timeout)
                if paused and threading.current_thread() is assoc:
                    schedule.queued.wait(5)  # the reactor thread runs again only after the next response came
                return woken

        class WatchedQueue(queue.Queue):  # type: ignore[type-arg]
            def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
                super().put(item, block, timeout)
                schedule.queued.set()

            def get(self, block: bool = True, timeout: float | None = None) -> Any:
                if threading.current_thread() is assoc:  # the reactor
                    item = super().get(block, timeout)
                    schedule.stolen.set()
                    return item
                schedule.stolen.wait(0.3)  # the sender is scheduled after the reactor had its look
                item = super().get(block, timeout)
                schedule.queued.clear()
                return item

        checkpoint = LateCheckpoint()
        checkpoint.set()
        assoc._reactor_checkpoint = checkpoint
        assoc.dimse.msg_queue = WatchedQueue()

    return on_established


def _ct(i: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "RACE"
    ds.InstanceNumber = i
    ds.file_meta = Dataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def _store_three(extra_handlers: list[Any]) -> list[Any]:
    scp = AE("SCP")
    scp.add_supported_context(CTImageStorage, ImplicitVRLittleEndian)
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)])
    try:
        sender = AE("MODALITY")
        sender.dimse_timeout = 3
        sender.add_requested_context(CTImageStorage, ImplicitVRLittleEndian)
        schedule = _Schedule()
        handlers = [(evt.EVT_ESTABLISHED, _force_late_reactor(schedule)), *extra_handlers]
        assoc = sender.associate("127.0.0.1", port, ae_title="SCP", evt_handlers=handlers)
        assert assoc.is_established
        statuses: list[Any] = []
        try:
            for i in range(3):
                if not assoc.is_established:  # pynetdicom aborts after a DIMSE timeout
                    break
                statuses.append(getattr(assoc.send_c_store(_ct(i)), "Status", None))
            return statuses
        finally:
            assoc.release()
    finally:
        server.shutdown()


def test_the_forced_interleaving_loses_a_response_on_a_stock_requestor() -> None:
    # the control: without noduled's guard, pynetdicom's reactor takes the second response
    statuses = _store_three([])
    assert statuses[:2] == [0x0000, None]


def test_a_guarded_requestor_gets_every_response_however_late_its_reactor_wakes() -> None:
    statuses = _store_three([(evt.EVT_ESTABLISHED, fastpath.guard_requestor)])
    assert statuses == [0x0000, 0x0000, 0x0000]
