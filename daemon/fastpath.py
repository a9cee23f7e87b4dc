"""Receive fast path: two per-association replacements of pynetdicom internals.

This is the ONE place where noduled reaches into pynetdicom's internals (for
pynetdicom 3.0.x).  :func:`install` is called for every accepted association
(from the ``EVT_ESTABLISHED`` handler, in the association's own thread, before
pynetdicom enters its acceptor loop) and changes two things on that
association's objects only, never on the classes:

1. ``AssociationSocket.recv``: stock pynetdicom reads a PDU in 4096-byte
   ``socket.recv`` calls appended to a ``bytearray`` (about 130 calls and
   copies per 512 KB image).  :func:`_recv_into` reads straight into a
   preallocated buffer with ``recv_into`` in as few calls as the kernel
   allows.  Semantics are the stock ones: it blocks until ``nr_bytes`` are
   read, returns what it has (possibly short) when the peer closes the
   connection, and lets ``OSError``/``TimeoutError`` (also ``ssl`` errors)
   propagate to the DUL, which turns them into Evt17 as before.  TLS sockets
   (``ssl.SSLSocket``) support ``recv_into`` the same way.

2. ``Association._run_reactor``: the stock acceptor loop sleeps a fixed 1 ms
   before every look at the DIMSE message queue, so a complete C-STORE request
   waits 0.5 ms on average before its handler runs.  :func:`_run_reactor`
   is the same loop, in the same order, except that it *waits on the queue*
   for up to the same 1 ms instead of sleeping, so a message is served as
   soon as it is complete; release, abort, DUL death and the network idle
   timeout are checked at the stock cadence.

If pynetdicom's internals are not as expected (another major version, a
renamed attribute), :func:`install` changes nothing and returns ``False``:
the association then runs on stock pynetdicom, slower but correct.
"""

from __future__ import annotations

import logging
import queue
import socket
import types
from typing import Any

import pynetdicom
from pynetdicom import evt

log = logging.getLogger(__name__)

REACTOR_WAIT_S = 0.001  # the stock loop's sleep; the longest a release/abort waits to be noticed
_RECV_CHUNK = 1 << 20  # upper bound for one recv_into call

_QUICKACK = getattr(socket, "TCP_QUICKACK", 0)  # Linux
_SUPPORTED = pynetdicom.__version__.startswith("3.0.")
_ASSOC_ATTRS = ("_kill", "_is_paused", "_reactor_checkpoint", "dimse", "dul", "acse", "_serve_request",
                "is_established", "is_released", "is_aborted", "kill", "release", "abort", "network_timeout_response")
_warned = False


def _recv_into(self: Any, nr_bytes: int) -> bytearray:
    """``AssociationSocket.recv`` reading into one preallocated buffer (see module docstring)."""
    sock = self.socket
    buf = bytearray(nr_bytes)
    view = memoryview(buf)
    nr_read = 0
    quickack = _QUICKACK if self._noduled_tcp else 0
    try:
        while nr_read < nr_bytes:
            if quickack:
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            n = sock.recv_into(view[nr_read:], min(nr_bytes - nr_read, _RECV_CHUNK))
            if not n:  # connection closed by the peer: return what we have, as stock pynetdicom does
                break
            nr_read += n
    finally:
        view.release()
    if nr_read < nr_bytes:
        del buf[nr_read:]
    return buf


def _next_msg(dimse: Any, timeout: float) -> tuple[Any, Any]:
    try:
        return dimse.msg_queue.get(block=True, timeout=timeout)  # type: ignore[no-any-return]
    except queue.Empty:
        return None, None


def _run_reactor(self: Any) -> None:
    """pynetdicom 3.0's ``Association._run_reactor`` with a queue wait instead of ``time.sleep(0.001)``.

    Step for step the stock acceptor loop (pynetdicom/association.py); only the
    first statement of each turn differs.
    """
    self._is_paused = False
    while not self._kill:
        # pause point for send_*() from other threads, exactly as stock
        self._is_paused = True
        self._reactor_checkpoint.wait()
        self._is_paused = False

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
    sock = getattr(assoc.dul, "socket", None)
    return sock is not None and hasattr(sock, "socket") and hasattr(sock.socket, "recv_into")


def install(assoc: Any) -> bool:
    """Put the fast receive path on one accepted association; ``False`` (and stock behaviour) if unsupported."""
    global _warned
    if not getattr(assoc, "is_acceptor", False):
        return False
    if not supported(assoc):
        if not _warned:
            _warned = True
            log.warning("pynetdicom %s internals not as expected: receive fast path off (stock behaviour)", pynetdicom.__version__)
        return False
    sock = assoc.dul.socket
    sock._noduled_tcp = _is_tcp(sock.socket)
    sock.recv = types.MethodType(_recv_into, sock)
    assoc._run_reactor = types.MethodType(_run_reactor, assoc)
    return True
