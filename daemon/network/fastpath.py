"""Receive fast path: per-association replacements of pynetdicom internals.

This is the ONE place where noduled reaches into pynetdicom's internals (for
pynetdicom 3.0.x), together with the guarded server of
:mod:`daemon.network.guard`, which builds on :class:`BoundedSocket` here (PDU
headers checked before a PDU is read, from the first byte of a connection).  :func:`install` is called for every accepted association
(from the ``EVT_ESTABLISHED`` handler, in the association's own thread, before
pynetdicom enters its acceptor loop) and changes four things on that
association's objects only, never pynetdicom's classes (the socket object's
class becomes :class:`_FastSocket`, a subclass of ``AssociationSocket``):

1. ``AssociationSocket.recv``: stock pynetdicom reads a PDU in 4096-byte
   ``socket.recv`` calls appended to a ``bytearray`` (about 130 calls and
   copies per 512 KB image).  :func:`_recv_into` reads straight into a
   preallocated buffer with ``recv_into`` in as few calls as the kernel
   allows; the buffer starts at 1 MiB (or the PDU's length) and doubles as
   data arrive, so a declared length is never allocated ahead of the data
   (the header itself was checked by :class:`BoundedSocket`).  Semantics
   are the stock ones: it blocks until ``nr_bytes`` are
   read, returns what it has (possibly short) when the peer closes the
   connection, and lets ``OSError``/``TimeoutError`` (also ``ssl`` errors)
   propagate to the DUL, which turns them into Evt17 as before.  TLS sockets
   (``ssl.SSLSocket``) support ``recv_into`` the same way.

2. ``AssociationSocket.ready``: the DUL thread polls the socket with a
   zero-timeout ``select`` and sleeps 50 us (``_run_loop_delay``) between idle
   turns, some 20,000 wake-ups a second per association that compete for the
   two CPU cores with the thread storing the instances.  :attr:`_FastSocket.ready`
   waits in ``select`` (up to :data:`READY_WAIT_S`) on the socket *and* on an
   eventfd that is signalled whenever a primitive is queued for the DUL to
   send (``to_provider_queue.put`` is wrapped on that one queue), so incoming
   PDUs and outgoing responses are both handled at once, without the spinning.
   ARTIM, idle timer and DUL stop are noticed within :data:`READY_WAIT_S`.
   The DUL's own idle sleep (``_run_loop_delay``) is set to 0, as the waiting
   happens in ``ready``.  pynetdicom's standard PDU/DIMSE log handlers are
   unbound from the association while the ``pynetdicom`` logger is below INFO
   (their lines would be dropped; formatting them costs time per image).

3. ``Association._run_reactor``: the stock acceptor loop sleeps a fixed 1 ms
   before every look at the DIMSE message queue, so a complete C-STORE request
   waits 0.5 ms on average before its handler runs.  :func:`_run_reactor`
   is the same loop, in the same order, except that it *waits on the queue*
   for up to the same 1 ms instead of sleeping, so a message is served as
   soon as it is complete; release, abort, DUL death and the network idle
   timeout are checked at the stock cadence.

4. ``DIMSEServiceProvider.send_msg`` for one message only, the C-STORE
   success response (Status 0x0000, no optional elements): its command set
   is encoded by hand (:func:`encode_store_success_rsp`, byte for byte what
   pynetdicom encodes; a test compares them) instead of through a pydicom
   Dataset, which costs ~0.4 ms per image.  Any other message, or any
   ``EVT_DIMSE_SENT`` handler bound, goes through the stock ``send_msg``.

Requestors (noduled's own C-STORE/C-ECHO/C-FIND/C-GET/C-MOVE associations) get only
the reactor of 3., through :func:`guard_requestor` bound as an ``EVT_ESTABLISHED``
handler: its pause point closes a window of pynetdicom's in which the reactor takes a
``send_*()``'s response off the queue (the sender then waits for the DIMSE timeout).

If pynetdicom's internals are not as expected (another major version, a
renamed attribute), :func:`install` changes nothing and returns ``False``:
the association then runs on stock pynetdicom, slower but correct.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import ssl
import struct
import threading
import time
import types
import weakref
from typing import Any, cast

import pynetdicom
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket

log = logging.getLogger(__name__)

REACTOR_WAIT_S = 0.001  # the stock loop's sleep; the longest a release/abort waits to be noticed
READY_WAIT_S = 0.005  # the longest the DUL waits in select() before looking at its timers again
_CLOSED_WAIT_S = 0.0005  # ready() on a closed socket, while the DUL winds down
_RECV_CHUNK = 1 << 20  # upper bound for one recv_into call
_FIRST_ALLOC = 1 << 20  # a PDU's buffer starts at this (or its length) and doubles as data arrive

_QUICKACK = getattr(socket, "TCP_QUICKACK", 0)  # Linux
_SUPPORTED = pynetdicom.__version__.startswith("3.0.")
_ASSOC_ATTRS = (
    "_kill",
    "_is_paused",
    "_reactor_checkpoint",
    "dimse",
    "dul",
    "acse",
    "_serve_request",
    "is_established",
    "is_released",
    "is_aborted",
    "kill",
    "release",
    "abort",
    "network_timeout_response",
)
_SOCKET_ATTRS = ("socket", "_is_connected", "event_queue", "assoc")
_warned = False


class _Waker:
    """An fd that becomes readable when :meth:`signal` is called (eventfd, or a socket pair)."""

    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._write_fd = self.fd
            fds: tuple[int, ...] = (self.fd,)
        else:  # pragma: no cover - not Linux
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            self._pair = (r, w)
            self.fd, self._write_fd = r.detach(), w.detach()
            fds = (self.fd, self._write_fd)
        weakref.finalize(self, _close_fds, fds)

    def signal(self) -> None:
        try:
            os.write(self._write_fd, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except (BlockingIOError, OSError):
            pass  # already signalled (counter/buffer full) or closing: the DUL looks anyway

    def drain(self) -> None:
        try:
            os.read(self.fd, 4096)
        except (BlockingIOError, OSError):
            pass


def _close_fds(fds: tuple[int, ...]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


MAX_CONTROL_PDU_BYTES = 1 << 20  # any PDU but P-DATA-TF (A-ASSOCIATE-RQ with user identity is well below)
_PDU_NAMES = {
    0x01: "A-ASSOCIATE-RQ",
    0x02: "A-ASSOCIATE-AC",
    0x03: "A-ASSOCIATE-RJ",
    0x04: "P-DATA-TF",
    0x05: "A-RELEASE-RQ",
    0x06: "A-RELEASE-RP",
    0x07: "A-ABORT",
}


QUIET = threading.local()  # .on in a DUL thread whose connection was refused: its pynetdicom log lines are dropped


class QuietAfterRefusal(logging.Filter):
    """Drops pynetdicom's records from a thread whose connection noduled refused (one line per refusal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(QUIET, "on", False)


def _request_problem(pdu: bytes) -> str | None:
    """Why an A-ASSOCIATE-RQ PDU cannot be used, or None (decoded here, with pynetdicom's chatter dropped)."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ

    for name, start in (("called", 10), ("calling", 26)):
        title = pdu[start : start + 16]
        if len(title) < 16 or any(not 0x20 <= b <= 0x7E for b in title):
            return f"A-ASSOCIATE-RQ {name} AE title is not 16 printable ASCII characters"
    QUIET.on = True
    try:
        decoded = A_ASSOCIATE_RQ()
        decoded.decode(pdu)
        if decoded.user_information is None:  # mandatory (PS3.8 9.3.2): pynetdicom's own handlers need it
            return "A-ASSOCIATE-RQ has no User Information item"
        if not decoded.presentation_context:
            return "A-ASSOCIATE-RQ proposes no presentation context"
    except Exception as exc:  # noqa: BLE001 - whatever pynetdicom's decoder raises on garbage
        return f"A-ASSOCIATE-RQ does not decode: {type(exc).__name__}: {str(exc)[:120]}"
    finally:
        QUIET.on = False
    return None


class BoundedSocket(AssociationSocket):
    """``AssociationSocket`` that checks each PDU header before the PDU is read (daemon/guard.py).

    pynetdicom's DUL reads a PDU as ``recv(6)`` (type, reserved, length) and then
    ``recv(length)``.  Here the header is checked first: the first PDU of an
    acceptor must be an A-ASSOCIATE-RQ, the type must be known, a P-DATA-TF may
    not be longer than the maximum this node announced (``_noduled_max_pdu``,
    0 = no limit) and any other PDU not longer than :data:`MAX_CONTROL_PDU_BYTES`.
    A header that fails is refused once (logged and counted), the connection
    is shut down and ``recv`` returns nothing, which the DUL takes as the
    connection closed (Evt17), without allocating the declared length.

    Never instantiated: the guarded server's request handler assigns it as the
    ``__class__`` of a new connection's socket; :class:`_FastSocket` extends it.
    """

    _noduled_max_pdu = 0
    _noduled_address = "?"
    _noduled_in_body = False  # the next recv() reads the body of a PDU whose header was checked
    _noduled_seen_pdu = False
    _noduled_refused = False
    _noduled_request_header: bytes | None = None  # header of the first PDU while its body is read

    def recv(self, nr_bytes: int) -> bytearray:
        if self._noduled_refused:  # what the peer sent after a refused header is not read
            return bytearray()
        if self._noduled_in_body or nr_bytes != 6:
            self._noduled_in_body = False
            body = self._noduled_read(nr_bytes)
            if self._noduled_request_header is not None:  # the body of the A-ASSOCIATE-RQ
                request_header, self._noduled_request_header = self._noduled_request_header, None
                request_problem = _request_problem(request_header + bytes(body))
                if request_problem is not None:
                    self._noduled_refuse("malformed_pdu", request_problem)
                    return bytearray()
            return body
        header = self._noduled_read(6)
        if len(header) < 6:
            self._noduled_closed_before_request()
            return header
        pdu_type, _, length = struct.unpack(">BBL", header)
        problem = self._noduled_header_problem(pdu_type, length)
        if problem is not None:
            self._noduled_refuse(*problem)
            return bytearray()  # as a connection closed by the peer: Evt17, nothing allocated
        if not self._noduled_seen_pdu:
            self._noduled_request_header = bytes(header)
        self._noduled_seen_pdu = True
        self._noduled_in_body = True
        return header

    def _noduled_refuse(self, reason: str, message: str) -> None:
        """Refuse the connection once: log and count, shut it down, end a pending association thread."""
        from daemon.network.guard import refuse  # (guard imports this module)

        first = not self._noduled_seen_pdu or self._noduled_request_header is not None
        self._noduled_refused = True
        QUIET.on = True  # pynetdicom's own error lines for this connection (this DUL thread) say nothing more
        refuse(reason, self._noduled_address, message)
        try:
            socket.socket.shutdown(self.socket, socket.SHUT_RDWR)  # type: ignore[arg-type]
        except (OSError, TypeError, ValueError):
            pass
        if first:
            self._noduled_seen_pdu = False
            self._noduled_closed_before_request()

    def _noduled_closed_before_request(self) -> None:
        """The connection ended before an A-ASSOCIATE-RQ: end the association thread now.

        Stock pynetdicom's acceptor would wait for a request until the ACSE timeout
        (a thread per closed connection, for a minute); an empty primitive ends it as that
        timeout does.  The guard forgets the pending connection.
        """
        if self._noduled_seen_pdu:
            return
        assoc = self._assoc
        entry = getattr(assoc, "_noduled_pending", None)
        guard = getattr(assoc, "_noduled_guard", None)
        if entry is not None and guard is not None:
            guard.finished(entry)
        try:
            assoc.dul.to_user_queue.put(None)
        except AttributeError:
            pass

    def _noduled_header_problem(self, pdu_type: int, length: int) -> tuple[str, str] | None:
        name = _PDU_NAMES.get(pdu_type)
        if name is None:
            return "malformed_pdu", f"unknown PDU type 0x{pdu_type:02X}"
        if not self._noduled_seen_pdu and pdu_type != 0x01:
            return "malformed_pdu", f"first PDU is an {name}, not an A-ASSOCIATE-RQ"
        if pdu_type == 0x04:
            limit = self._noduled_max_pdu
            if limit and length > limit:
                return (
                    "pdu_too_large",
                    f"P-DATA-TF PDU of {length} bytes, more than the {limit} announced (scp.max_pdu_bytes)",
                )
        elif length > MAX_CONTROL_PDU_BYTES:
            return "pdu_too_large", f"{name} PDU of {length} bytes, more than {MAX_CONTROL_PDU_BYTES}"
        return None

    def _noduled_read(self, nr_bytes: int) -> bytearray:
        return AssociationSocket.recv(self, nr_bytes)


class _FastSocket(BoundedSocket):
    """``AssociationSocket`` with the two receive-side methods of the module docstring.

    Never instantiated: :func:`install` assigns it as the ``__class__`` of an
    accepted association's socket (same attributes, no new slots).
    """

    _noduled_tcp = False
    _noduled_waker: _Waker | None = None

    def _noduled_read(self, nr_bytes: int) -> bytearray:
        """Read ``nr_bytes``; a short result means the peer closed the connection (as stock).

        The buffer grows as data arrive (doubling from :data:`_FIRST_ALLOC` at most), never
        to a length the peer merely declared.
        """
        sock = cast(socket.socket, self.socket)
        buf = bytearray(min(nr_bytes, _FIRST_ALLOC))
        view = memoryview(buf)
        nr_read = 0
        quickack = _QUICKACK if self._noduled_tcp else 0
        try:
            while nr_read < nr_bytes:
                if nr_read == len(buf):  # full, and more is coming: grow (data arrived, not declared)
                    view.release()
                    buf.extend(bytes(min(len(buf), nr_bytes - len(buf))))
                    view = memoryview(buf)
                if quickack:
                    # ACK at once: a sender with Nagle's algorithm holds the short last segment of
                    # an image until the previous ones are ACKed, which delayed ACK puts off 40 ms.
                    sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
                n = sock.recv_into(view[nr_read:], min(len(buf) - nr_read, _RECV_CHUNK))
                if not n:  # connection closed by the peer: return what we have, as stock pynetdicom does
                    break
                nr_read += n
        finally:
            view.release()
        if nr_read < len(buf):
            del buf[nr_read:]
        return buf

    @property
    def ready(self) -> bool:
        """Stock ``ready``, but waiting up to READY_WAIT_S for data or for something to send."""
        waker = self._noduled_waker
        if waker is None:
            return super().ready
        if self.socket is None or self._is_connected is False:
            time.sleep(_CLOSED_WAIT_S)  # the DUL loop no longer sleeps (install()): do not spin until it stops
            return False
        if isinstance(self.socket, ssl.SSLSocket) and self.socket.pending():
            return True  # TLS data already decrypted, select() cannot see it (pynetdicom #528)
        try:
            ready, _, _ = select.select([cast(Any, self.socket), waker.fd], [], [], READY_WAIT_S)
        except (OSError, TimeoutError, ValueError):
            # Evt17: Transport connection closed
            self.event_queue.put("Evt17")
            return False
        if waker.fd in ready:
            waker.drain()
        return self.socket in ready


def _uid_bytes(uid: str) -> bytes:
    value = str(uid).encode("ascii")
    return value + b"\x00" if len(value) % 2 else value


def _cmd_element(element: int, value: bytes) -> bytes:
    # command sets are always implicit VR little endian (PS3.7 6.3.1), group 0000
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def encode_store_success_rsp(primitive: Any) -> bytes | None:
    """The encoded command set of a C-STORE-RSP with Status 0x0000, or None for anything else."""
    if type(primitive) is not C_STORE or primitive.Status != 0x0000:
        return None
    msg_id = primitive.MessageIDBeingRespondedTo
    sop_class = primitive.AffectedSOPClassUID
    sop_instance = primitive.AffectedSOPInstanceUID
    if msg_id is None or sop_class is None or sop_instance is None:
        return None
    if primitive.ErrorComment is not None or primitive.OffendingElement is not None:
        return None
    body = b"".join(
        (
            _cmd_element(0x0002, _uid_bytes(sop_class)),
            _cmd_element(0x0100, struct.pack("<H", 0x8001)),  # C-STORE-RSP
            _cmd_element(0x0120, struct.pack("<H", msg_id)),
            _cmd_element(0x0800, struct.pack("<H", 0x0101)),  # no data set
            _cmd_element(0x0900, struct.pack("<H", 0x0000)),
            _cmd_element(0x1000, _uid_bytes(sop_instance)),
        )
    )
    return _cmd_element(0x0000, struct.pack("<I", len(body))) + body


def _fast_send_msg(assoc: Any, stock_send_msg: Any) -> Any:
    def send_msg(primitive: Any, context_id: int) -> None:
        encoded = encode_store_success_rsp(primitive)
        max_pdu = assoc.dimse.maximum_pdu_size
        if encoded is None or assoc.get_handlers(evt.EVT_DIMSE_SENT) or (max_pdu and len(encoded) + 7 > max_pdu - 6):
            stock_send_msg(primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, b"\x03" + encoded))  # command, last fragment
        assoc.dul.send_pdu(pdata)

    return send_msg


def _next_msg(dimse: Any, timeout: float) -> tuple[Any, Any]:
    try:
        return dimse.msg_queue.get(block=True, timeout=timeout)  # type: ignore[no-any-return]
    except queue.Empty:
        return None, None


def _run_reactor(self: Any) -> None:
    """pynetdicom 3.0's ``Association._run_reactor`` with a queue wait instead of ``time.sleep(0.001)``.

    Step for step the stock loop (pynetdicom/association.py, the same for acceptors and
    requestors); the first statement of each turn differs, and after the pause point
    the checkpoint is looked at again (:func:`guard_requestor`).
    """
    self._is_paused = False
    while not self._kill:
        # pause point for send_*() from other threads, exactly as stock
        self._is_paused = True
        self._reactor_checkpoint.wait()
        self._is_paused = False
        if not self._reactor_checkpoint.is_set():
            # a send_*() paused the reactor again after wait() was woken and before this thread
            # ran (it saw _is_paused still True and went ahead): its response is not ours to take.
            # Stock pynetdicom goes on to get_msg() here and eats it (sender: DIMSE timeout).
            continue

        # stock: time.sleep(0.001) then get_msg(block=False); here: wait up to 1 ms for a message
        context_id, msg = _next_msg(self.dimse, REACTOR_WAIT_S)
        if msg:
            self._serve_request(msg, context_id)

        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            pynetdicom.association.LOGGER.info("Association Released")
            self.is_released = True
            self.is_established = False
            evt.trigger(self, evt.EVT_RELEASED, {})
            self.kill()
            return

        if self.acse.is_aborted():
            log_msg = "Association Aborted"
            if self.acse.is_aborted("a-p-abort"):
                log_msg += " (A-P-ABORT)"
            pynetdicom.association.LOGGER.info(log_msg)
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            evt.trigger(self, evt.EVT_ABORTED, {})
            self.kill()
            return

        if not self.dul.is_alive():
            self.kill()
            return

        if self.dul.idle_timer_expired():
            pynetdicom.association.LOGGER.error("Network timeout reached")
            if self.network_timeout_response == "A-RELEASE":
                self._is_paused = True
                self._reactor_checkpoint.wait()
                self.release()
                self._is_paused = False
            else:
                self.abort()
            self.kill()
            return


def guard_requestor(event_or_assoc: Any) -> bool:
    """``EVT_ESTABLISHED`` handler for a requestor: run its reactor with the pause handshake closed.

    pynetdicom 3.0's ``send_*()`` pauses the reactor with ``_reactor_checkpoint.clear()``
    and waits for ``_is_paused``.  If the reactor thread was woken by the previous send's
    ``set()`` but has not run yet, ``_is_paused`` is still True: the next send goes ahead
    and the reactor, once it runs, takes that send's response off the DIMSE queue
    ("Received unexpected C-STORE service message"); the sender waits for the DIMSE
    timeout, gets an empty Dataset and the association is aborted (under CPU load, one
    C-STORE in a few hundred; pynetdicom #875 is the same with C-FIND).  :func:`_run_reactor`
    looks at the checkpoint again after ``_is_paused = False`` and pauses instead.

    Bound as an ``EVT_ESTABLISHED`` handler of ``associate()`` (it runs in the association's
    thread before the reactor starts); ``False`` and stock behaviour when the internals
    are not pynetdicom 3.0's.  Nothing else of the association is changed.
    """
    assoc = getattr(event_or_assoc, "assoc", event_or_assoc)
    if not _SUPPORTED or getattr(assoc, "is_acceptor", True):
        return False
    if not all(hasattr(assoc, name) for name in _ASSOC_ATTRS) or not hasattr(assoc.dimse, "msg_queue"):
        return False
    assoc._run_reactor = types.MethodType(_run_reactor, assoc)
    return True


REQUESTOR_HANDLERS = ((evt.EVT_ESTABLISHED, guard_requestor),)  # for associate(evt_handlers=...)


def _is_tcp(sock: Any) -> bool:
    try:
        return bool(_QUICKACK) and sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
    except AttributeError:
        return False


def supported(assoc: Any) -> bool:
    """True when ``assoc`` has the pynetdicom 3.0 internals this module replaces."""
    if not _SUPPORTED:
        return False
    if not all(hasattr(assoc, name) for name in _ASSOC_ATTRS):
        return False
    if not hasattr(assoc.dimse, "msg_queue") or not isinstance(assoc.dimse.msg_queue, queue.Queue):
        return False
    if not isinstance(getattr(assoc.dul, "to_provider_queue", None), queue.Queue):
        return False
    if not all(hasattr(assoc.dimse, name) for name in ("send_msg", "maximum_pdu_size")) or not hasattr(
        assoc, "get_handlers"
    ):
        return False
    if not hasattr(assoc.dul, "send_pdu"):
        return False
    sock: Any = getattr(assoc.dul, "socket", None)
    if type(sock) not in (AssociationSocket, BoundedSocket) or not all(hasattr(sock, name) for name in _SOCKET_ATTRS):
        return False
    return hasattr(sock.socket, "recv_into") and isinstance(getattr(AssociationSocket, "ready", None), property)


def install(assoc: Any) -> bool:
    """Put the fast receive path on one accepted association; ``False`` (and stock behaviour) if unsupported."""
    global _warned
    if not getattr(assoc, "is_acceptor", False):
        return False
    if not supported(assoc):
        if not _warned:
            _warned = True
            log.warning(
                "pynetdicom %s internals not as expected: receive fast path off (stock behaviour)",
                pynetdicom.__version__,
            )
        return False
    sock = assoc.dul.socket
    waker = _Waker()
    provider_queue = assoc.dul.to_provider_queue
    stock_put = provider_queue.put

    def put(item: Any, block: bool = True, timeout: float | None = None) -> None:
        stock_put(item, block, timeout)
        waker.signal()

    provider_queue.put = put  # this association's queue only
    if type(sock) is AssociationSocket:  # not through the guarded server (tests, other callers): no header limits
        sock._noduled_seen_pdu = True  # type: ignore[attr-defined]
    sock.__class__ = _FastSocket
    sock._noduled_tcp = _is_tcp(sock.socket)
    sock._noduled_waker = waker
    # ready() now does the waiting, so the DUL's idle sleep (which delays every response by
    # ~0.1 ms: 50 us plus the kernel's timer slack) is not needed
    assoc.dul._run_loop_delay = 0.0
    assoc._run_reactor = types.MethodType(_run_reactor, assoc)
    _drop_silent_log_handlers(assoc)
    assoc.dimse.send_msg = _fast_send_msg(assoc, assoc.dimse.send_msg)
    return True


def drop_silent_log_handlers(server_or_assoc: Any) -> None:
    """Unbind pynetdicom's standard log handlers from a server (so from every association it makes) when silent."""
    _drop_silent_log_handlers(server_or_assoc)


def _drop_silent_log_handlers(assoc: Any) -> None:
    """Unbind pynetdicom's standard PDU/DIMSE log handlers when their output would be dropped anyway.

    They format every PDU and DIMSE message for INFO/DEBUG lines; noduled holds the
    ``pynetdicom`` logger at WARNING unless DEBUG is asked for (daemon/logsetup.py).
    """
    if logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
        return
    try:
        from pynetdicom import _handlers

        pairs = (
            (evt.EVT_DIMSE_RECV, _handlers.standard_dimse_recv_handler),
            (evt.EVT_DIMSE_SENT, _handlers.standard_dimse_sent_handler),
            (evt.EVT_PDU_RECV, _handlers.standard_pdu_recv_handler),
            (evt.EVT_PDU_SENT, _handlers.standard_pdu_sent_handler),
        )
        for event, handler in pairs:
            assoc.unbind(event, handler)
    except (ImportError, AttributeError, KeyError, ValueError):  # other internals: keep them bound
        pass


def hide_identifiers_in_logs() -> None:
    """Never let pynetdicom log C-FIND/C-MOVE/C-GET identifiers (Patient ID among them).

    pynetdicom prints them at INFO; noduled holds that logger at WARNING, but a host
    application might not.  Called before each query/retrieve association (idempotent).
    """
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
