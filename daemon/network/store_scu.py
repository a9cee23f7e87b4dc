"""C-STORE SCU: send archived files to one destination over one association, each outcome in words.

Used by the outbox (:mod:`daemon.workflow.outbox`), which owns what is sent when and records the
outcomes; this module only speaks DIMSE.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt

from daemon.network import commitment as sc
from daemon.network import fastpath
from daemon.network.commitment import CommitmentReport
from daemon.network.status import is_store_success, status_text

log = logging.getLogger(__name__)

Commitment = Literal["off", "auto", "required"]

_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)
_MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 9.3.2.2)


@dataclass(frozen=True)
class StoreFile:
    key: int  # the caller's identifier of the file (an outbox row id)
    path: Path
    sop_class: UID
    transfer_syntax: UID
    sop_instance_uid: str = ""  # named in a storage commitment request ("" = read from the file)
    after: frozenset[int] = frozenset()  # keys of files sent before it that it references: not sent if one failed


@dataclass(frozen=True)
class StoreOutcome:
    key: int
    ok: bool  # the destination has the object (success or warning status)
    error: str | None = None
    # set when the destination was asked to commit the object: it is delivered only when its report says so
    commitment_uid: str | None = None
    held: bool = False  # not sent: an object it references (``StoreFile.after``) was not stored


def store_files(
    files: Sequence[StoreFile],
    *,
    calling_ae: str,
    destination: str,
    ae_title: str,
    host: str,
    port: int,
    timeout_s: float,
    commitment: Commitment = "off",
    on_stored: Callable[[Sequence[int], str], None] | None = None,
    on_report: Callable[[CommitmentReport], object] | None = None,
) -> list[StoreOutcome]:
    """C-STORE ``files`` to ``ae_title`` at ``host:port`` over one association; one outcome per file.

    ``destination`` names the peer in the messages.  ``timeout_s`` is the connection,
    association and per-C-STORE response timeout.

    ``commitment``: "off" = a success status delivers; "required" = the stored files are then
    sent in one Storage Commitment request (N-ACTION) and their outcomes carry its Transaction UID
    (the report decides); "auto" = commitment when the destination accepts the Push Model SOP class,
    else as "off".  ``on_stored(keys, transaction_uid)`` runs before the request is sent (the caller
    records what it waits for: the report may come back, on another association, at once);
    ``on_report`` receives a report sent back on this association.
    """
    # one presentation context per SOP class for the uncompressed files
    # (pynetdicom converts between those), one per (SOP class, syntax) for
    # compressed files (sent as they are).
    contexts: dict[tuple[str, str], list[str]] = {}
    for f in files:
        if f.transfer_syntax in _UNCOMPRESSED:
            key = (str(f.sop_class), "uncompressed")
            syntaxes = [str(f.transfer_syntax)] + [str(s) for s in _UNCOMPRESSED if s != f.transfer_syntax]
        else:
            key = (str(f.sop_class), str(f.transfer_syntax))
            syntaxes = [str(f.transfer_syntax)]
        contexts.setdefault(key, syntaxes)
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = timeout_s
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    limit = _MAX_CONTEXTS - (1 if commitment != "off" else 0)
    for (sop_class, _), syntaxes in list(contexts.items())[:limit]:
        ae.add_requested_context(sop_class, syntaxes)
    handlers: list[Any] = list(fastpath.REQUESTOR_HANDLERS)  # pynetdicom's reactor can eat a response
    if commitment != "off":
        ae.add_requested_context(_PUSH_MODEL, list(_UNCOMPRESSED[:2]))
        if on_report is not None:
            handlers.append((evt.EVT_N_EVENT_REPORT, _report_handler(on_report, destination)))

    assoc = ae.associate(host, port, ae_title=ae_title, evt_handlers=handlers)
    if not assoc.is_established:
        reason = _association_failure(assoc, destination, host, port, timeout_s)
        return [StoreOutcome(f.key, False, reason) for f in files]
    outcomes: list[StoreOutcome] = []
    try:
        for f in files:
            failed = [o.key for o in outcomes if not o.ok and o.key in f.after]
            if failed or not f.after <= {o.key for o in outcomes}:
                outcomes.append(
                    StoreOutcome(f.key, False, "not sent: an object it references was not stored", held=True)
                )
                continue
            if not assoc.is_established:
                outcomes.append(
                    StoreOutcome(f.key, False, f"association with {destination} ended before this object was sent")
                )
                continue
            try:
                rsp = assoc.send_c_store(f.path)
            except ValueError as exc:  # no accepted presentation context, or cannot encode
                outcomes.append(
                    StoreOutcome(
                        f.key,
                        False,
                        f"{destination} did not accept SOP class {f.sop_class} ({f.sop_class.name}) "
                        f"in transfer syntax {f.transfer_syntax} ({f.transfer_syntax.name}): {exc}",
                    )
                )
                continue
            except Exception as exc:
                outcomes.append(
                    StoreOutcome(f.key, False, f"sending to {destination} failed: {type(exc).__name__}: {exc}")
                )
                continue
            status = rsp.get("Status") if rsp is not None else None
            if status is None:
                outcomes.append(
                    StoreOutcome(
                        f.key, False, f"no C-STORE response from {destination} (association aborted or timed out)"
                    )
                )
            elif is_store_success(int(status)):
                outcomes.append(StoreOutcome(f.key, True))
            else:
                comment = str(rsp.get("ErrorComment", "") or "").strip()
                outcomes.append(
                    StoreOutcome(
                        f.key,
                        False,
                        f"C-STORE status {status_text(int(status), 'store')} from {destination}"
                        + (f": {comment}" if comment else ""),
                    )
                )
        if commitment != "off":
            outcomes = _request_commitment(assoc, files, outcomes, commitment, destination, on_stored)
    finally:
        if assoc.is_established:
            assoc.release()
    return outcomes


_PUSH_MODEL = sc.PUSH_MODEL_CLASS


def _report_handler(on_report: Callable[[CommitmentReport], object], destination: str) -> Callable[[Any], Any]:
    def handle(event: Any) -> Any:
        try:
            on_report(sc.parse_report(event.event_information))
        except Exception as exc:
            log.warning(
                "storage commitment report from %s could not be read: %s: %s", destination, type(exc).__name__, exc
            )
            return 0x0110, None
        return 0x0000, None

    return handle


def _request_commitment(
    assoc: Any,
    files: Sequence[StoreFile],
    outcomes: list[StoreOutcome],
    mode: Commitment,
    destination: str,
    on_stored: Callable[[Sequence[int], str], None] | None,
) -> list[StoreOutcome]:
    """Ask ``destination`` to commit the stored files (one N-ACTION); their outcomes say what it answered."""
    stored = [o.key for o in outcomes if o.ok]
    if not stored:
        return outcomes
    error: str | None
    accepted = any(cx.abstract_syntax == _PUSH_MODEL for cx in assoc.accepted_contexts)
    if not accepted:
        if mode == "auto":
            return outcomes  # the destination does not offer storage commitment: a success status delivers
        error = (
            f"{destination} stored the object but does not accept Storage Commitment (Push Model), which is required"
        )
        return [StoreOutcome(o.key, False, error) if o.ok else o for o in outcomes]
    if not assoc.is_established:
        error = f"association with {destination} ended before storage commitment was requested"
        return [StoreOutcome(o.key, False, error) if o.ok else o for o in outcomes]
    by_key = {f.key: f for f in files}
    uid = str(generate_uid())
    objects = []
    for key in stored:
        f = by_key[key]
        objects.append((str(f.sop_class), f.sop_instance_uid or _sop_instance_uid(f.path)))
    if on_stored is not None:
        on_stored(stored, uid)
    try:
        status, _ = assoc.send_n_action(
            sc.build_request(uid, objects), sc.REQUEST_COMMIT, _PUSH_MODEL, sc.PUSH_MODEL_INSTANCE
        )
    except Exception as exc:
        error = f"storage commitment request to {destination} failed: {type(exc).__name__}: {exc}"
    else:
        code = int(status.Status) if status is not None and "Status" in status else None
        error = (
            None
            if code == 0x0000
            else (
                f"no answer from {destination} to the storage commitment request"
                if code is None
                else f"storage commitment request refused by {destination}: status 0x{code:04X}"
            )
        )
    if error is not None:
        return [StoreOutcome(o.key, False, error) if o.ok else o for o in outcomes]
    return [StoreOutcome(o.key, True, None, uid) if o.ok else o for o in outcomes]


def _sop_instance_uid(path: Path) -> str:
    from pydicom import dcmread

    return str(dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)


def _association_failure(assoc: Any, destination: str, host: str, port: int, timeout_s: float) -> str:
    """Why an association could not be established, in words."""
    primitive = getattr(assoc.acceptor, "primitive", None)
    if assoc.is_rejected and primitive is not None:
        return (
            f"association rejected by {destination}: {primitive.result_str}, "
            f"source: {primitive.source_str}, reason: {primitive.reason_str}"
        )
    if assoc.is_aborted and primitive is not None and getattr(primitive, "result", None) == 0x00:
        return f"{destination} accepted none of the proposed presentation contexts (SOP class / transfer syntax)"
    # A failed TCP connection also ends as "aborted"; pynetdicom only logs
    # the socket error, so a short probe names it.
    try:
        with socket.create_connection((host, port), timeout=min(timeout_s, 5.0)):
            pass
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port} ({destination} is not listening)"
    except TimeoutError:
        return f"connection to {host}:{port} timed out ({destination})"
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r} of {destination}: {exc}"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({destination}): {exc.strerror or exc}"
    if assoc.is_aborted:
        return f"association aborted by {destination} before it was accepted"
    return f"no answer from {destination} to the association request within {timeout_s:g} s"
