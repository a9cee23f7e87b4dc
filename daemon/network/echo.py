"""C-ECHO probe of a destination: is it there and does it take our associations?

Used by the delivery probe (:mod:`daemon.workflow.probe`) that retries deliveries as soon as a
destination is back, and reports a destination that stays down in ``/healthz``.
"""

from __future__ import annotations

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from daemon.network.fastpath import REQUESTOR_HANDLERS
from daemon.network.store_scu import _association_failure


def echo(
    *, calling_ae: str, destination: str, ae_title: str, host: str, port: int, timeout_s: float = 5.0
) -> str | None:
    """C-ECHO ``ae_title`` at ``host:port``: None when it answered with success, else why not, in words."""
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = timeout_s
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=ae_title, evt_handlers=list(REQUESTOR_HANDLERS))
    if not assoc.is_established:
        primitive = getattr(assoc.acceptor, "primitive", None)
        if assoc.is_aborted and primitive is not None and getattr(primitive, "result", None) == 0x00:
            return None  # it accepted the association, only not Verification: it is there and takes our associations
        return _association_failure(assoc, destination, host, port, timeout_s)
    try:
        rsp = assoc.send_c_echo()
    except Exception as exc:
        return f"C-ECHO to {destination} failed: {type(exc).__name__}: {exc}"
    finally:
        if assoc.is_established:
            assoc.release()
    status = rsp.get("Status") if rsp is not None else None
    if status is None:
        return f"no C-ECHO response from {destination} within {timeout_s:g} s"
    if int(status) != 0x0000:
        return f"C-ECHO status 0x{int(status):04X} from {destination}"
    return None
