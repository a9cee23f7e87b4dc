"""No single peer can freeze or exhaust the Storage SCP (issue 17).

Stock pynetdicom 3.0 accepts a connection and then trusts the peer: the TLS
handshake runs in the listener thread on a socket without a timeout (one
silent client stops every new association), every accepted connection counts
against ``maximum_associations`` until the ACSE timeout, which restarts with
every byte a trickling peer sends, and the fast path allocated whatever PDU
length a peer declared.  :class:`GuardedServer` is pynetdicom's threaded
association server with these changes (the listener thread only accepts):

- the TLS handshake runs in the connection's own thread, within the
  connection's deadline;
- *pending* connections (accepted, A-ASSOCIATE-RQ not yet complete) have a
  deadline counted from the accept, whatever the peer trickles
  (``scp.association_request_timeout_s``); the listener thread closes the
  ones that pass it;
- at most ``scp.max_pending_per_address`` pending connections per peer
  address (not counting those younger than :data:`PENDING_GRACE_S`) and
  ``scp.max_pending`` in all: a new connection beyond either closes the
  *oldest* pending one (a legitimate peer sends its request within
  milliseconds, so it is not the oldest for long), and pending connections
  never count against ``scp.max_associations``, which only admitted
  associations do (:meth:`Guard.admit`, from the EVT_REQUESTED handler);
- PDU headers are checked before the PDU is read (:class:`daemon.network.fastpath.BoundedSocket`):
  the first PDU must be an A-ASSOCIATE-RQ, P-DATA-TF PDUs may not be longer
  than the maximum this node announced (``scp.max_pdu_bytes``), others not
  longer than :data:`daemon.network.fastpath.MAX_CONTROL_PDU_BYTES`;
- every refusal is logged once (one WARNING line, peer values escaped) and
  counted in ``noduled_associations_rejected_total{reason=...}``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pynetdicom.transport import (
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

from daemon.network.fastpath import BoundedSocket, QuietAfterRefusal
from daemon.ops import metrics

log = logging.getLogger(__name__)

# logger filters are not inherited: each pynetdicom module's logger gets it
for _name in (
    "",
    "acse",
    "association",
    "dimse",
    "dimse_messages",
    "dul",
    "events",
    "fsm",
    "pdu",
    "pdu_items",
    "pdu_primitives",
    "presentation",
    "transport",
    "utils",
    "_handlers",
    "dsutils",
):
    logging.getLogger(f"pynetdicom.{_name}" if _name else "pynetdicom").addFilter(QuietAfterRefusal())

SWEEP_INTERVAL_S = 0.1  # how often the listener looks at pending connections' deadlines (at most)
POLL_INTERVAL_S = 0.25  # the listener's select() timeout (serve_forever poll_interval)
PENDING_GRACE_S = 1.0  # a pending connection this young is not closed for the per-address cap


def refuse(reason: str, address: str, message: str) -> None:
    """Log one refusal (WARNING) and count it under ``reason``."""
    metrics.ASSOCIATIONS_REJECTED.labels(reason).inc()
    log.warning("connection from %s refused (%s): %s", address, reason, message)


@dataclass
class _Pending:
    """A connection whose A-ASSOCIATE-RQ is not complete yet."""

    sock: Any  # the socket (the TLS socket once wrapped)
    address: str
    deadline: float
    accepted_at: float = field(default_factory=time.monotonic)
    assoc: Any = None
    closed: bool = False
    in_tls_handshake: bool = False


def _close_socket(sock: Any) -> None:
    """Unblock whoever reads ``sock`` (the DUL, a TLS handshake) by shutting the connection down."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's shutdown, also for an SSLSocket
    except (OSError, TypeError, ValueError):
        pass


class Guard:
    """Pending connections and admitted associations of one server, with their limits."""

    def __init__(
        self,
        *,
        request_timeout_s: float,
        max_pending_per_address: int,
        max_pending: int,
        max_associations: int,
        max_pdu_bytes: int,
    ) -> None:
        self.request_timeout_s = request_timeout_s
        self.max_pending_per_address = max_pending_per_address
        self.max_pending = max_pending
        self.max_associations = max_associations
        self.max_pdu_bytes = max_pdu_bytes
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}  # id(accepted socket) -> entry
        self._admitted: list[Any] = []

    # --------------------------------------------------------------- pending
    def register(self, sock: Any, address: str) -> _Pending:
        """A connection was accepted (listener thread); may close the oldest pending ones."""
        entry = _Pending(sock, address, time.monotonic() + self.request_timeout_s)
        evicted: list[tuple[_Pending, str]] = []
        with self._lock:
            self._forget_ended()
            same = sorted((e for e in self._pending.values() if e.address == address), key=lambda e: e.accepted_at)
            per_address = (
                f"more than {self.max_pending_per_address} connections from this address without a complete "
                f"association request (scp.max_pending_per_address): the oldest is closed"
            )
            in_all = (
                f"more than {self.max_pending} connections without a complete association request "
                f"(scp.max_pending): the oldest is closed"
            )
            # a connection younger than PENDING_GRACE_S is not evicted for its address (a PACS opening many
            # associations at once sends each request within milliseconds); the total cap below is hard
            now = time.monotonic()
            while len(same) >= self.max_pending_per_address and now - same[0].accepted_at > PENDING_GRACE_S:
                evicted.append((same.pop(0), per_address))
            others = sorted(self._pending.values(), key=lambda e: e.accepted_at)
            others = [e for e in others if all(e is not x for x, _ in evicted)]
            while len(others) >= self.max_pending:
                evicted.append((others.pop(0), in_all))
            for e, _ in evicted:
                e.closed = True
                self._pending.pop(id(e.sock), None)
            self._pending[id(sock)] = entry
        for e, why in evicted:
            refuse("pending_limit", e.address, why)
            _close_socket(e.sock)
        return entry

    def lookup(self, sock: Any) -> _Pending | None:
        with self._lock:
            return self._pending.get(id(sock))

    def rekey(self, entry: _Pending, old: Any, new: Any) -> None:
        """The entry's socket was wrapped for TLS (the plain socket object is detached)."""
        with self._lock:
            self._pending.pop(id(old), None)
            entry.sock = new
            if not entry.closed:
                self._pending[id(new)] = entry

    def finished(self, entry: _Pending) -> bool:
        """The association request is complete (admitted or rejected), or the connection is gone.

        True when this call ended the entry, False when it had ended already (refused by the sweep or the
        pending limit): exactly one caller logs a refusal.
        """
        with self._lock:
            was_open = not entry.closed
            entry.closed = True
            self._pending.pop(id(entry.sock), None)
            return was_open

    def sweep(self) -> None:
        """Close pending connections past their deadline; forget those whose thread ended (listener thread)."""
        now = time.monotonic()
        late: list[_Pending] = []
        with self._lock:
            self._forget_ended()
            for key, e in list(self._pending.items()):
                if now > e.deadline:
                    e.closed = True
                    del self._pending[key]
                    late.append(e)
        for e in late:
            if e.in_tls_handshake:
                refuse("tls", e.address, self.tls_timeout_message)
            else:
                refuse(
                    "request_timeout",
                    e.address,
                    f"no complete association request within {self.request_timeout_s:g} s of connecting "
                    f"(scp.association_request_timeout_s)",
                )
            _close_socket(e.sock)

    @property
    def tls_timeout_message(self) -> str:
        return f"TLS handshake not complete within {self.request_timeout_s:g} s (scp.association_request_timeout_s)"

    def _forget_ended(self) -> None:
        """Drop pending entries whose connection ended by itself (the peer closed it): nothing to refuse."""
        for key, e in list(self._pending.items()):
            if e.assoc is not None and e.assoc.ident is not None and not e.assoc.is_alive():
                del self._pending[key]

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    # -------------------------------------------------------------- admitted
    def admit(self, assoc: Any) -> bool:
        """Count ``assoc`` against ``max_associations``; False when the limit is reached."""
        with self._lock:
            self._admitted = [
                a
                for a in self._admitted
                if a.is_alive() and not getattr(a, "is_released", False) and not getattr(a, "is_aborted", False)
            ]
            if len(self._admitted) >= self.max_associations:
                return False
            self._admitted.append(assoc)
            return True

    def release(self, assoc: Any) -> None:
        with self._lock:
            self._admitted = [a for a in self._admitted if a is not assoc]

    @property
    def admitted_count(self) -> int:
        with self._lock:
            return sum(1 for a in self._admitted if a.is_alive())


class _Handler(RequestHandler):
    """pynetdicom's request handler; the association's socket checks PDU headers from the first byte."""

    server: GuardedServer

    def _create_association(self) -> Any:
        assoc = super()._create_association()
        guard = self.server.guard
        sock = assoc.dul.socket
        if type(sock) is not AssociationSocket:  # other pynetdicom internals: leave them alone
            return assoc
        entry = guard.lookup(self.request)
        sock.__class__ = BoundedSocket
        sock._noduled_address = entry.address if entry is not None else str(self.client_address[0])  # type: ignore[attr-defined]
        sock._noduled_max_pdu = guard.max_pdu_bytes  # type: ignore[attr-defined]
        assoc._noduled_pending = entry  # type: ignore[attr-defined]
        assoc._noduled_guard = guard  # type: ignore[attr-defined]
        if entry is not None:
            entry.assoc = assoc
        return assoc


class GuardedServer(ThreadedAssociationServer):
    """``ThreadedAssociationServer`` whose listener thread only accepts (see the module docstring)."""

    guard: Guard

    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        self.guard = guard
        self._last_sweep = 0.0
        self._calls = 0
        kwargs.setdefault("request_handler", _Handler)
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client_socket, address = self.socket.accept()  # TLS is set up in the connection's thread
        return client_socket, address

    def process_request(self, request: Any, client_address: Any) -> None:
        self.guard.register(request, str(client_address[0]))
        super().process_request(request, client_address)  # ThreadingMixIn: a thread per connection

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        entry = self.guard.lookup(request)
        if entry is None or entry.closed:  # closed already (pending limit) before its thread ran
            self.shutdown_request(request)
            return
        if self.ssl_context is not None:
            request = self._tls_handshake(request, entry)
            if request is None:
                return
        try:
            self.finish_request(request, client_address)
        except Exception as exc:  # noqa: BLE001 - one connection's failure never reaches the listener
            log.warning("connection from %s failed: %s: %s", entry.address, type(exc).__name__, exc)
            self.guard.finished(entry)
            self.shutdown_request(request)

    def _tls_handshake(self, raw: socket.socket, entry: _Pending) -> ssl.SSLSocket | None:
        assert self.ssl_context is not None
        remaining = entry.deadline - time.monotonic()
        tls: ssl.SSLSocket | None = None
        entry.in_tls_handshake = True
        try:
            raw.settimeout(max(0.05, remaining))
            if not raw.recv(1, socket.MSG_PEEK):  # closed without a byte (a TCP probe): nothing to refuse
                self.guard.finished(entry)
                raw.close()
                return None
            raw.settimeout(max(0.05, entry.deadline - time.monotonic()))
            tls = self.ssl_context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            self.guard.rekey(entry, raw, tls)
            if entry.closed:
                raise TimeoutError("closed")
            tls.do_handshake()
            tls.settimeout(None)  # blocking, as stock pynetdicom
            entry.in_tls_handshake = False
            return tls
        except (OSError, ValueError) as exc:
            if self.guard.finished(entry):  # (else closed by the deadline sweep or the pending limit: refused there)
                if isinstance(exc, TimeoutError) or "timed out" in str(exc):
                    why = self.guard.tls_timeout_message
                else:
                    why = f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}"
                refuse("tls", entry.address, why)
            try:
                (tls or raw).close()
            except OSError:
                pass
            return None

    def service_actions(self) -> None:
        """After every accept and every poll interval: the deadline sweep (and, at stock cadence, pynetdicom's gc)."""
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_INTERVAL_S:
            self._last_sweep = now
            self.guard.sweep()
        self._calls += 1
        if self._calls % round(0.5 / POLL_INTERVAL_S) == 0:  # stock: once per 0.5 s poll, gc.collect every 60th
            super().service_actions()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Called from an ``except`` block by socketserver: one WARNING line with the error, not a traceback on stderr."""
        import sys

        exc = sys.exc_info()[1]
        log.warning(
            "connection from %s: unexpected error while setting it up: %s: %s",
            client_address[0],
            type(exc).__name__,
            exc,
        )
