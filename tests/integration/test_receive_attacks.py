"""A hostile client against the receiving node: idle, half-open and trickling connections, huge PDU headers.

Each check is what the security team measures: a legitimate association
(real DCMTK echoscu) is not delayed by more than 2 s, the node's memory does
not follow a declared PDU length, and every refusal appears once in the log
and in ``noduled_associations_rejected_total{reason=...}``.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.support.peers import rss_bytes, self_signed_cert, trickle
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration

ECHOSCU = "/usr/bin/echoscu"


def _echo(port: int, *tls: str) -> tuple[int, float]:
    t0 = time.monotonic()
    done = subprocess.run(
        [ECHOSCU, *tls, "-aec", "NODULED", "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60
    )
    return done.returncode, time.monotonic() - t0


def _rejected(http_port: int) -> dict[str, float]:
    wait_for_port(http_port)
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as rsp:
        text = rsp.read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'noduled_associations_rejected_total\{reason="(\w+)"\} (\S+)', text)
    }


def _wait_log(node, needle: str, count: int, timeout_s: float = 20) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = node.log().count(needle)
        if n >= count:
            return n
        time.sleep(0.1)
    return node.log().count(needle)


def _associate_rq_bytes(called: str = "NODULED", calling: str = "ATTACKER") -> bytes:
    """A complete A-ASSOCIATE-RQ for Verification, as pynetdicom's requestor encodes it."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
    from pynetdicom.presentation import build_context

    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    cx = build_context(Verification)
    cx.context_id = 1
    primitive.presentation_context_definition_list = [cx]
    item = MaximumLengthNotification()
    item.maximum_length_received = 16384
    primitive.user_information = [item]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def test_half_open_and_trickling_connections_do_not_lock_out_a_real_peer(noduled_server) -> None:  # type: ignore[no-untyped-def]
    http_port = free_port()
    node = noduled_server(
        {
            "scp": {"association_request_timeout_s": 3, "max_associations": 4},
            "http": {"enabled": True, "port": http_port},
        }
    )
    rq = _associate_rq_bytes()
    stop = threading.Event()
    trickling: list[socket.socket] = []

    threads = []
    for _ in range(17):
        s = socket.create_connection(("127.0.0.1", node.port))
        trickling.append(s)
        # one byte a second of a real request, never complete in time
        t = threading.Thread(target=trickle, args=(s, rq, stop), daemon=True)
        t.start()
        threads.append(t)
    half_open = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(50)]
    try:
        time.sleep(0.5)
        code, took = _echo(node.port)
        assert code == 0 and took < 2.0, f"legitimate association took {took:.1f} s"
        for _ in range(3):  # and again while the attack goes on (more than max_associations times)
            code, took = _echo(node.port)
            assert code == 0 and took < 2.0
        # every attacking connection is closed: evicted by newer ones, or at the request deadline
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            log = node.log()
            refused = log.count("refused (pending_limit)") + log.count("refused (request_timeout)")
            if refused >= 67 and "refused (request_timeout)" in log:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        assert refused == 67, node.log()[-3000:]
        counts = _rejected(http_port)
        assert counts.get("pending_limit", 0) + counts.get("request_timeout", 0) == 67
        assert counts.get("request_timeout", 0) >= 1
        assert (
            "no complete association request within 3 s of connecting (scp.association_request_timeout_s)" in node.log()
        )
    finally:
        stop.set()
        for s in trickling + half_open:
            s.close()


def test_only_admitted_associations_count_against_max_associations(noduled_server) -> None:  # type: ignore[no-untyped-def]
    http_port = free_port()
    node = noduled_server({"scp": {"max_associations": 2}, "http": {"enabled": True, "port": http_port}})
    idle = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(6)]  # pending, never counted
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context(Verification)
    held = [ae.associate("127.0.0.1", node.port, ae_title="NODULED") for _ in range(2)]
    try:
        assert all(a.is_established for a in held)
        code, _ = _echo(node.port)  # the third admitted association is one too many
        assert code != 0
        assert (
            _wait_log(node, "refused (max_associations): 2 associations are open already (scp.max_associations)", 1)
            == 1
        )
        held[0].release()
        time.sleep(0.3)
        assert _echo(node.port)[0] == 0
        assert _rejected(http_port).get("max_associations") == 1
    finally:
        for a in held:
            if a.is_established:
                a.release()
        for s in idle:
            s.close()


@pytest.mark.parametrize("max_pdu", [4 * 1024 * 1024, 0])
def test_a_4_gib_pdu_header_does_not_take_memory(noduled_server, max_pdu: int) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server({"scp": {"max_pdu_bytes": max_pdu}})
    assert node.proc is not None
    before = rss_bytes(node.proc.pid)
    # before association: a first PDU declaring 4 GiB
    raw = socket.create_connection(("127.0.0.1", node.port))
    raw.sendall(b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 64)
    # after association: a P-DATA-TF header declaring 4 GiB, on 8 associations at once
    ae = AE(ae_title="ATTACKER")
    ae.add_requested_context(Verification)
    assocs = [ae.associate("127.0.0.1", node.port, ae_title="NODULED") for _ in range(8)]
    assert all(a.is_established for a in assocs)
    for a in assocs:
        a.dul.socket.socket.sendall(b"\x04\x00\xff\xff\xff\xff" + b"\x00" * 1024)
    time.sleep(3)
    grown = rss_bytes(node.proc.pid) - before
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MB"
    raw.close()
    for a in assocs:
        a.abort()
    assert _echo(node.port)[0] == 0
    log = node.log()
    assert log.count("refused (pdu_too_large): A-ASSOCIATE-RQ PDU of 4294967295 bytes") == 1
    if max_pdu:
        assert (
            log.count("refused (pdu_too_large): P-DATA-TF PDU of 4294967295 bytes, more than the 4194304 announced")
            == 8
        )


def test_malformed_first_pdus_are_refused_once_each(noduled_server) -> None:  # type: ignore[no-untyped-def]
    http_port = free_port()
    node = noduled_server({"http": {"enabled": True, "port": http_port}})
    for payload in (b"\x09\x00\x00\x00\x00\x04abcd", b"\x04\x00\x00\x00\x00\x04abcd", b"GET / HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", node.port)) as s:
            s.sendall(payload)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
    assert _wait_log(node, "refused (malformed_pdu)", 3) == 3
    log = node.log()
    assert "unknown PDU type 0x09" in log and "first PDU is an P-DATA-TF, not an A-ASSOCIATE-RQ" in log
    assert _rejected(http_port).get("malformed_pdu") == 3
    assert _echo(node.port)[0] == 0


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return self_signed_cert(tmp_path)


def test_an_idle_connection_does_not_freeze_a_tls_node(noduled_server, tls_files) -> None:  # type: ignore[no-untyped-def]
    cert, key = tls_files
    http_port = free_port()
    node = noduled_server(
        {
            "scp": {
                "association_request_timeout_s": 3,
                "tls": {
                    "enabled": True,
                    "cert": str(cert),
                    "key": str(key),
                    "ca": str(cert),
                    "require_client_cert": True,
                },
            },
            "http": {"enabled": True, "port": http_port},
        }
    )
    tls_args = ("+tls", str(key), str(cert), "+cf", str(cert))  # mutual TLS (one self-signed pair for both ends)
    idle = socket.create_connection(("127.0.0.1", node.port))  # connects, sends nothing, no certificate
    try:
        time.sleep(0.3)
        code, took = _echo(node.port, *tls_args)
        assert code == 0 and took < 2.0, f"TLS association took {took:.1f} s behind one idle connection"
        assert _wait_log(node, "refused (tls): TLS handshake not complete within 3 s", 1, 10) == 1
    finally:
        idle.close()
    plain, _ = _echo(node.port)  # a peer that does not speak TLS to a TLS node
    assert plain != 0
    assert _wait_log(node, "refused (tls): TLS handshake failed", 1) == 1
    assert _rejected(http_port).get("tls") == 2
    assert _echo(node.port, *tls_args)[0] == 0
