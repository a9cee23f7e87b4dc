"""The DICOM node's network side: Verification and Storage SCP.

Configured once (DESIGN §8, pynetdicom style); the event handlers are a few
lines that hand the work to :mod:`daemon.storage.archive` and :mod:`daemon.network.admission`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from daemon.analysis.sop_classes import STORAGE_CLASSES
from daemon.network import commitment, fastpath
from daemon.network.admission import Admission
from daemon.network.filemeta import file_meta_bytes
from daemon.network.guard import POLL_INTERVAL_S, Guard, GuardedServer, refuse
from daemon.ops import metrics
from daemon.settings import SCPSettings
from daemon.storage.archive import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_INDEX_OUT_OF_RESOURCES,
    STATUS_OUT_OF_RESOURCES,
    Archive,
    RejectedInstance,
)

log = logging.getLogger(__name__)

TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless, Non-Hierarchical (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless, First-Order Prediction (Process 14 SV1)
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless Only
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (secondary captures)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
)


class StorageSCP:
    """Verification + Storage SCP writing into an :class:`Archive`.

    It also takes the Storage Commitment reports (N-EVENT-REPORT) destinations send back on an
    association they open to us (PS3.4 J.3.3); each is handed to ``on_commitment``.
    """

    def __init__(
        self,
        settings: SCPSettings,
        archive: Archive,
        on_commitment: Callable[[commitment.CommitmentReport], object] | None = None,
    ) -> None:
        self.settings = settings
        self.archive = archive
        self.on_commitment = on_commitment
        self.admission = Admission(settings.allowed_peers)
        self.guard = Guard(
            request_timeout_s=settings.association_request_timeout_s,
            max_pending_per_address=settings.max_pending_per_address,
            max_pending=settings.max_pending,
            max_associations=settings.max_associations,
            max_pdu_bytes=settings.max_pdu_bytes,
        )
        self._per_assoc: dict[int, Counter[str]] = {}
        self._assoc_studies: dict[int, set[str]] = {}  # the studies each association carried
        # called with those studies when the association is released (the workflow's "study complete" signal)
        self.on_released: Callable[[set[str]], None] | None = None
        # (study UID, SOP class UID, SOP Instance UID, the Part 10 bytes archived): each new instance, once stored
        self.on_stored: Callable[[str, str, str, bytes], None] | None = None
        self._server: GuardedServer | None = None
        self.ae = self._make_ae()

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        ae.maximum_pdu_size = self.settings.max_pdu_bytes
        # scp.max_associations is enforced in _on_requested on admitted associations only (daemon/guard.py);
        # pynetdicom's own count includes connections still pending, so its limit is set above all of them
        ae.maximum_associations = self.settings.max_associations + self.settings.max_pending + 16
        ae.network_timeout = self.settings.network_timeout_s
        ae.acse_timeout = self.settings.network_timeout_s
        ae.dimse_timeout = self.settings.network_timeout_s
        ae.require_called_aet = False  # checked in _on_requested, where the refusal is logged and counted
        ae.add_supported_context(Verification)
        for sop_class in STORAGE_CLASSES:
            ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
        # the destination, as Storage Commitment SCP, opens the association to send its report (SCP role)
        ae.add_supported_context(commitment.PUSH_MODEL_CLASS, TRANSFER_SYNTAXES[:2], scu_role=True, scp_role=True)
        return ae

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start listening (non-blocking)."""
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_N_EVENT_REPORT, self._on_commitment_report),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
        ]
        address = (self.settings.bind_host, self.settings.port)
        try:
            server = self.ae.make_server(
                address,
                evt_handlers=handlers,
                ssl_context=self._ssl_context(),
                server_class=GuardedServer,
                guard=self.guard,
            )
        except socket.gaierror as exc:
            raise OSError(
                f"cannot listen on scp.host {address[0]!r} (port {address[1]}): {exc.strerror or exc}"
            ) from None
        except OSError as exc:
            raise OSError(
                f"cannot listen on {address[0]}:{address[1]} (scp.host, scp.port): {exc.strerror or exc}"
            ) from None
        fastpath.drop_silent_log_handlers(server)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S}, name="dicom-listener", daemon=True
        )
        thread.start()
        self.ae._servers.append(server)  # as AE.start_server does: shutdown() removes it
        self._server = server  # type: ignore[assignment]  # (make_server is typed as returning the stock class)
        log.info(
            "listening as %s on %s:%d (%s)",
            self.settings.ae_title,
            *address,
            self.admission.describe(),
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
            log.info("stopped listening")

    @property
    def running(self) -> bool:
        return self._server is not None

    def _ssl_context(self) -> ssl.SSLContext | None:
        tls = self.settings.tls
        if not tls.enabled:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(certfile=tls.cert, keyfile=tls.key)
        if tls.ca:
            ctx.load_verify_locations(cafile=tls.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
        return ctx

    # -------------------------------------------------------------- handlers
    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        assert primitive is not None  # EVT_REQUESTED: the A-ASSOCIATE-RQ has arrived
        calling = primitive.calling_ae_title.strip()
        called = primitive.called_ae_title.strip()
        address = assoc.requestor.address
        pending = getattr(assoc, "_noduled_pending", None)
        if pending is not None:
            self.guard.finished(pending)  # the request is complete: no longer pending
        reason = self.admission.refusal(calling, address)
        # A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4
        if reason is not None:
            self._reject(assoc, "not_allowed", f"{calling}@{address}", reason, (0x01, 0x01, 0x03))
        elif called != self.settings.ae_title:
            self._reject(
                assoc,
                "called_ae",
                f"{calling}@{address}",
                f"called AE title {called!r} is not this node's {self.settings.ae_title!r} (scp.ae_title)",
                (0x01, 0x01, 0x07),
            )
        elif not self.guard.admit(assoc):
            self._reject(
                assoc,
                "max_associations",
                f"{calling}@{address}",
                f"{self.settings.max_associations} associations are open already (scp.max_associations)",
                (0x02, 0x03, 0x02),
            )

    @staticmethod
    def _reject(assoc: object, reason: str, who: str, message: str, rsd: tuple[int, int, int]) -> None:
        refuse(reason, who, message)
        assoc.acse.send_reject(*rsd)  # type: ignore[attr-defined]
        assoc.is_rejected = True  # type: ignore[attr-defined]
        assoc.kill()  # type: ignore[attr-defined]

    def _on_established(self, event: evt.Event) -> None:
        # large recv_into reads, no idle sleeps in the DUL and acceptor loops (daemon/network/fastpath.py)
        fastpath.install(event.assoc)
        self._per_assoc[id(event.assoc)] = Counter()
        log.info(
            "association from %s@%s accepted",
            event.assoc.requestor.ae_title.strip(),
            event.assoc.requestor.address,
        )

    def _on_closed(self, event: evt.Event) -> None:
        self.guard.release(event.assoc)
        carried = self._assoc_studies.pop(id(event.assoc), set())
        if carried and event.event is evt.EVT_RELEASED and self.on_released is not None:
            try:
                self.on_released(carried)
            except Exception:
                log.exception("association release hook failed")
        counts = self._per_assoc.pop(id(event.assoc), None)
        if counts is not None:
            log.info(
                "association from %s@%s %s: %d stored, %d duplicates, %d failed",
                event.assoc.requestor.ae_title.strip(),
                event.assoc.requestor.address,
                "released" if event.event is evt.EVT_RELEASED else "aborted",
                counts["stored"],
                counts["duplicates"],
                counts["failed"],
            )

    def _on_store(self, event: evt.Event) -> object:
        counts = self._per_assoc.setdefault(id(event.assoc), Counter())
        calling = event.assoc.requestor.ae_title.strip()
        request = cast(C_STORE, event.request)
        try:
            meta = file_meta_bytes(
                str(request.AffectedSOPClassUID),
                str(request.AffectedSOPInstanceUID),
                str(event.context.transfer_syntax),
            )
            data = meta + request.DataSet.getvalue()  # type: ignore[union-attr]  # pynetdicom: set for a received C-STORE
            result = self.archive.store(
                data,
                calling_ae=calling,
                expected_sop_uid=request.AffectedSOPInstanceUID,
                expected_sop_class=request.AffectedSOPClassUID,
            )
        except RejectedInstance as exc:
            return self._failure(counts, exc.status, str(exc), event)
        except Exception as exc:  # never let one instance take the server down
            log.exception("unexpected error while storing an instance")
            return self._failure(counts, STATUS_CANNOT_UNDERSTAND, f"internal error: {type(exc).__name__}", event)
        key = "duplicates" if result.duplicate else "stored"
        counts[key] += 1
        self._assoc_studies.setdefault(id(event.assoc), set()).add(result.study_uid)
        metrics.INSTANCES_RECEIVED.labels("duplicate" if result.duplicate else "stored").inc()
        if self.on_stored is not None and not result.duplicate:
            try:
                self.on_stored(result.study_uid, str(request.AffectedSOPClassUID), result.sop_instance_uid, data)
            except Exception:  # acknowledged and archived: a hook never fails the store
                log.exception("instance stored hook failed")
        log.debug(
            "stored %s (study %s)%s",
            result.sop_instance_uid,
            result.study_uid,
            " duplicate" if result.duplicate else "",
        )
        return 0x0000

    def _on_commitment_report(self, event: evt.Event) -> object:
        peer = event.assoc.requestor.ae_title.strip()
        if event.request.AffectedSOPClassUID != commitment.PUSH_MODEL_CLASS:
            return 0x0118, None  # No Such SOP Class
        try:
            report = commitment.parse_report(event.event_information)
        except Exception as exc:
            log.warning("storage commitment report from %s could not be read: %s: %s", peer, type(exc).__name__, exc)
            return 0x0110, None  # Processing failure
        log.info(
            "storage commitment report from %s, transaction %s: %d committed, %d failed",
            peer,
            report.transaction_uid,
            len(report.committed),
            len(report.failed),
        )
        if self.on_commitment is not None:
            try:
                self.on_commitment(report)
            except Exception:
                log.exception("storage commitment report from %s could not be recorded", peer)
                return 0x0110, None  # the destination may send it again
        return 0x0000, None

    def _failure(self, counts: Counter[str], status: int, message: str, event: evt.Event) -> object:
        from pydicom.dataset import Dataset

        counts["failed"] += 1
        metrics.INSTANCES_RECEIVED.labels("failed").inc()
        if status in (STATUS_OUT_OF_RESOURCES, STATUS_INDEX_OUT_OF_RESOURCES):
            # one line per association: a full disk refuses every instance the same way
            counts["out_of_resources"] += 1
            level = logging.WARNING if counts["out_of_resources"] == 1 else logging.DEBUG
            log.log(
                level,
                "instances from %s@%s refused (0x%04X, Out of Resources): %s%s",
                event.assoc.requestor.ae_title.strip(),
                event.assoc.requestor.address,
                status,
                message,
                " (further ones on this association are refused the same way, logged at DEBUG)"
                if level == logging.WARNING
                else "",
            )
        else:
            log.warning(
                "instance %s from %s refused (0x%04X): %s",
                cast(C_STORE, event.request).AffectedSOPInstanceUID,
                event.assoc.requestor.ae_title.strip(),
                status,
                message,
            )
        rsp = Dataset()
        rsp.Status = status
        # Error Comment is LO (64 characters, no backslash, which would split it into several values)
        rsp.ErrorComment = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in message)[:64]
        return rsp
