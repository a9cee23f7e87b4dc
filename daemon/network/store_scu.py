"""C-STORE SCU: send archived files to one destination over one association, each outcome in words.

Used by the outbox (:mod:`daemon.workflow.outbox`), which owns what is sent when and records the
outcomes; this module only speaks DIMSE.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from daemon.network.status import is_store_success, status_text

_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)
_MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 9.3.2.2)


@dataclass(frozen=True)
class StoreFile:
    key: int  # the caller's identifier of the file (an outbox row id)
    path: Path
    sop_class: UID
    transfer_syntax: UID


@dataclass(frozen=True)
class StoreOutcome:
    key: int
    ok: bool  # the destination has the object (success or warning status)
    error: str | None = None


def store_files(
    files: Sequence[StoreFile], *, calling_ae: str, destination: str, ae_title: str, host: str, port: int,
    timeout_s: float,
) -> list[StoreOutcome]:
    """C-STORE ``files`` to ``ae_title`` at ``host:port`` over one association; one outcome per file.

    ``destination`` names the peer in the messages.  ``timeout_s`` is the connection,
    association and per-C-STORE response timeout.
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
    for (sop_class, _), syntaxes in list(contexts.items())[:_MAX_CONTEXTS]:
        ae.add_requested_context(sop_class, syntaxes)

    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        reason = _association_failure(assoc, destination, host, port, timeout_s)
        return [StoreOutcome(f.key, False, reason) for f in files]
    outcomes: list[StoreOutcome] = []
    try:
        for f in files:
            if not assoc.is_established:
                outcomes.append(StoreOutcome(f.key, False, f"association with {destination} ended before this object was sent"))
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
                outcomes.append(StoreOutcome(f.key, False, f"sending to {destination} failed: {type(exc).__name__}: {exc}"))
                continue
            status = rsp.get("Status") if rsp is not None else None
            if status is None:
                outcomes.append(
                    StoreOutcome(f.key, False, f"no C-STORE response from {destination} (association aborted or timed out)")
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
    finally:
        if assoc.is_established:
            assoc.release()
    return outcomes


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
