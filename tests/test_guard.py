"""daemon.network.guard: pending connections, their caps and deadline, admitted associations."""

from __future__ import annotations

import socket
import time

import pytest

from daemon.network import guard as guard_module
from daemon.network.guard import Guard


def _guard(**kw: float) -> Guard:
    args = {
        "request_timeout_s": 10.0,
        "max_pending_per_address": 2,
        "max_pending": 5,
        "max_associations": 1,
        "max_pdu_bytes": 0,
    } | kw
    return Guard(**args)  # type: ignore[arg-type]


def _closed_by_node(sock: socket.socket) -> bool:
    sock.settimeout(1)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_a_burst_from_one_address_is_not_evicted_but_old_pending_connections_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = _guard()
    pairs = [socket.socketpair() for _ in range(4)]
    for node_side, _ in pairs[:3]:  # three at once from one address: all young, none closed
        g.register(node_side, "10.0.0.1")
    assert g.pending_count == 3 and not any(_closed_by_node(peer) for _, peer in pairs[:3])
    monkeypatch.setattr(guard_module, "PENDING_GRACE_S", 0.0)
    time.sleep(0.01)
    g.register(pairs[3][0], "10.0.0.1")  # now the two oldest are past the grace: closed for the cap of 2
    assert _closed_by_node(pairs[0][1]) and _closed_by_node(pairs[1][1]) and not _closed_by_node(pairs[2][1])
    assert g.pending_count == 2


def test_the_total_cap_is_hard_and_the_deadline_closes_what_never_completes() -> None:
    g = _guard(max_pending_per_address=100, max_pending=3, request_timeout_s=0.05)
    pairs = [socket.socketpair() for _ in range(4)]
    for i, (node_side, _) in enumerate(pairs):
        g.register(node_side, f"10.0.0.{i}")
    assert _closed_by_node(pairs[0][1]) and g.pending_count == 3  # the oldest, however young
    time.sleep(0.1)
    g.sweep()
    assert g.pending_count == 0 and all(_closed_by_node(peer) for _, peer in pairs[1:])


def test_a_finished_request_is_no_longer_pending_and_only_admitted_associations_count() -> None:
    class Assoc:
        def __init__(self) -> None:
            self.alive = True

        def is_alive(self) -> bool:
            return self.alive

    g = _guard(max_associations=1)
    node_side, _peer = socket.socketpair()
    entry = g.register(node_side, "10.0.0.1")
    assert g.finished(entry) is True and g.finished(entry) is False  # exactly one caller ends it
    assert g.pending_count == 0
    first, second = Assoc(), Assoc()
    assert g.admit(first) and not g.admit(second)
    first.alive = False  # its thread ended
    assert g.admit(second)
