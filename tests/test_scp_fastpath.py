"""daemon.network.fastpath: the per-association receive fast path, end to end and piece by piece."""

from __future__ import annotations

import queue
import socket
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket

from daemon.network import fastpath
from daemon.network.scp import StorageSCP
from daemon.settings import SCPSettings
from daemon.storage.archive import Archive
from daemon.storage.db import open_index
from tests.support.ct_series import ct_slice
from tests.support.peers import self_signed_cert
from tests.support.servers import free_port


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[tuple[StorageSCP, list[str]]]:
    archive = Archive(tmp_path / "archive", open_index(f"sqlite:///{tmp_path / 'index.sqlite'}"))
    server = StorageSCP(SCPSettings(ae_title="NODULED", port=free_port(), host="127.0.0.1"), archive)
    server.start()
    seen: list[str] = []  # socket class of every association that ended
    for event in (evt.EVT_RELEASED, evt.EVT_ABORTED):
        server._server.bind(event, lambda e: seen.append(type(e.assoc.dul.socket).__name__))  # type: ignore[union-attr]
    yield server, seen
    server.stop()


def _associate(server: StorageSCP):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(Verification)
    # the sender's reactor guarded too: stock pynetdicom's can take a response (tests/test_reactor_race.py)
    handlers = list(fastpath.REQUESTOR_HANDLERS)
    assoc = ae.associate("127.0.0.1", server.settings.port, ae_title="NODULED", max_pdu=0, evt_handlers=handlers)
    assert assoc.is_established
    return assoc


def _wait_for(seen: list[str], n: int) -> None:
    deadline = time.monotonic() + 10
    while len(seen) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_instances_large_and_small_arrive_through_the_fast_path(scp) -> None:  # type: ignore[no-untyped-def]
    server, seen = scp
    big = ct_slice("1.2.3.4", "1.2.3.4.5", 0, np.arange(1024 * 1024, dtype=np.int16).reshape(1024, 1024))  # 2 MB PDU
    small = ct_slice("1.2.3.4", "1.2.3.4.5", 1, np.zeros((8, 8), dtype=np.int16))
    assoc = _associate(server)
    assert assoc.send_c_echo().Status == 0
    for ds in (big, small, big):  # the second big one is a duplicate
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    _wait_for(seen, 1)
    assert seen == ["_FastSocket"]
    stored = sorted((server.archive.root / "1.2.3.4" / "1.2.3.4.5").iterdir())
    assert len(stored) == 2
    back = dcmread(server.archive.root / "1.2.3.4" / "1.2.3.4.5" / f"{big.SOPInstanceUID}.dcm")
    assert np.array_equal(back.pixel_array, big.pixel_array)
    assert list(server.archive.incoming.iterdir()) == []


def test_abort_by_the_peer_ends_the_association(scp) -> None:  # type: ignore[no-untyped-def]
    server, seen = scp
    assoc = _associate(server)
    assert assoc.send_c_store(ct_slice("1.2.3.4", "1.2.3.4.6", 0, np.zeros((8, 8), dtype=np.int16))).Status == 0
    assoc.abort()
    _wait_for(seen, 1)
    assert seen == ["_FastSocket"]


def test_unexpected_internals_fall_back_to_stock_pynetdicom(scp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    server, seen = scp
    monkeypatch.setattr(fastpath, "_SUPPORTED", False)  # as if another pynetdicom version
    assoc = _associate(server)
    assert assoc.send_c_store(ct_slice("1.2.3.4", "1.2.3.4.7", 0, np.zeros((8, 8), dtype=np.int16))).Status == 0
    assoc.release()
    _wait_for(seen, 1)
    assert seen == ["BoundedSocket"]  # stock receive path, still with the PDU header checks (daemon/guard.py)


def test_install_refuses_objects_without_the_expected_attributes() -> None:
    class Stranger:
        is_acceptor = True

    assert fastpath.install(Stranger()) is False


# --- the socket methods on their own, over a socket pair


def _fast_socket(sock: socket.socket) -> AssociationSocket:
    fast = object.__new__(fastpath._FastSocket)
    fast.socket = sock
    fast._is_connected = True
    dul = types.SimpleNamespace(event_queue=queue.Queue())
    fast._assoc = types.SimpleNamespace(dul=dul)  # type: ignore[assignment]
    return fast


def test_recv_reads_exactly_across_many_sends_and_returns_short_when_closed() -> None:
    a, b = socket.socketpair()
    fast = _fast_socket(a)
    payload = bytes(range(256)) * 4096  # 1 MB

    def sender() -> None:
        for i in range(0, len(payload), 100_000):
            b.sendall(payload[i : i + 100_000])
            time.sleep(0.001)
        b.sendall(b"tail")
        b.close()

    t = threading.Thread(target=sender)
    t.start()
    assert fast.recv(len(payload)) == payload
    assert fast.recv(10) == b"tail"  # peer closed: what there is, as stock pynetdicom
    assert fast.recv(6) == b""
    t.join()
    a.close()


def test_recv_timeout_propagates_as_in_stock_pynetdicom() -> None:
    a, b = socket.socketpair()
    a.settimeout(0.05)
    with pytest.raises(TimeoutError):
        _fast_socket(a).recv(6)
    a.close()
    b.close()


def test_ready_waits_for_data_or_for_something_to_send(monkeypatch: pytest.MonkeyPatch) -> None:
    # a wait long enough that a loaded machine cannot blur "waited" and "woken at once"
    monkeypatch.setattr(fastpath, "READY_WAIT_S", 0.5)
    a, b = socket.socketpair()
    fast = _fast_socket(a)
    assert fast.ready is False  # no waker yet: stock zero-timeout select
    waker = fastpath._Waker()
    fast._noduled_waker = waker  # type: ignore[attr-defined]
    t0 = time.monotonic()
    assert fast.ready is False
    assert time.monotonic() - t0 >= fastpath.READY_WAIT_S * 0.8  # waited, did not spin
    threading.Timer(0.01, b.sendall, args=(b"x",)).start()
    assert fast.ready is True
    a.recv(1)
    waker.signal()
    t0 = time.monotonic()
    assert fast.ready is False and time.monotonic() - t0 < fastpath.READY_WAIT_S / 2  # woken by the waker at once
    b.close()
    assert fast.ready is True  # readable at EOF: the DUL reads it and sees the connection closed
    a.close()
    assert fast.ready is False and fast.event_queue.get_nowait() == "Evt17"  # type: ignore[attr-defined]


@pytest.mark.parametrize("sop_instance", ["1.2.3.4.5", "1.2.3.4.56", "1.2.826.0.1.3680043.8.498." + "1" * 37])
def test_hand_encoded_store_success_response_is_what_pynetdicom_encodes(sop_instance: str) -> None:
    from pynetdicom.dimse_messages import C_STORE_RSP
    from pynetdicom.dimse_primitives import C_STORE

    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 65535
    rsp.AffectedSOPClassUID = CTImageStorage
    rsp.AffectedSOPInstanceUID = sop_instance
    rsp.Status = 0x0000
    msg = C_STORE_RSP()
    msg.primitive_to_message(rsp)
    (pdata,) = list(msg.encode_msg(1, 16384))
    assert pdata.presentation_data_value_list == [(1, b"\x03" + fastpath.encode_store_success_rsp(rsp))]  # type: ignore[operator]


def test_other_responses_are_left_to_pynetdicom() -> None:
    from pynetdicom.dimse_primitives import C_ECHO, C_STORE

    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 1
    rsp.AffectedSOPClassUID = CTImageStorage
    rsp.AffectedSOPInstanceUID = "1.2.3"
    rsp.Status = 0xC000
    assert fastpath.encode_store_success_rsp(rsp) is None
    rsp.Status = 0x0000
    rsp.ErrorComment = "warning text"
    assert fastpath.encode_store_success_rsp(rsp) is None
    echo = C_ECHO()
    echo.MessageIDBeingRespondedTo = 1
    echo.Status = 0
    assert fastpath.encode_store_success_rsp(echo) is None


def test_tls_associations_use_the_fast_path_too(tmp_path: Path) -> None:
    import shutil
    import ssl

    from daemon.settings import TLSSettings

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = self_signed_cert(tmp_path)
    archive = Archive(tmp_path / "archive", open_index(f"sqlite:///{tmp_path / 'index.sqlite'}"))
    tls = TLSSettings(enabled=True, cert=str(cert), key=str(key), require_client_cert=False)
    server = StorageSCP(SCPSettings(ae_title="NODULED", port=free_port(), host="127.0.0.1", tls=tls), archive)
    server.start()
    seen: list[str] = []
    server._server.bind(evt.EVT_RELEASED, lambda e: seen.append(type(e.assoc.dul.socket).__name__))  # type: ignore[union-attr]
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        client_ctx.check_hostname = False
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate(
            "127.0.0.1",
            server.settings.port,
            ae_title="NODULED",
            max_pdu=0,
            tls_args=(client_ctx, None),
            evt_handlers=list(fastpath.REQUESTOR_HANDLERS),
        )
        assert assoc.is_established
        big = ct_slice("1.2.3.4", "1.2.3.4.9", 0, np.arange(512 * 512, dtype=np.int16).reshape(512, 512))
        for i in range(3):
            ds = big if i == 0 else ct_slice("1.2.3.4", "1.2.3.4.9", i, np.full((64, 64), i, dtype=np.int16))
            assert assoc.send_c_store(ds).Status == 0
        assoc.release()
        _wait_for(seen, 1)
        assert seen == ["_FastSocket"]
        back = dcmread(archive.root / "1.2.3.4" / "1.2.3.4.9" / f"{big.SOPInstanceUID}.dcm")
        assert np.array_equal(back.pixel_array, big.pixel_array)
    finally:
        server.stop()
