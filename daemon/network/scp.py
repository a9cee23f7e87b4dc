"""The DICOM node's network side: Verification and Storage SCP.

Configured once (DESIGN §8, pynetdicom style); the event handlers are a few
lines that hand the work to :mod:`daemon.archive` and :mod:`daemon.admission`.
"""

from __future__ import annotations

import logging
import ssl
from collections import Counter
from collections.abc import Callable

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from daemon.analysis.sop_classes import STORAGE_CLASSES
from daemon.network.admission import Admission
from daemon.network import fastpath
from daemon.ops import metrics
from daemon.storage.archive import STATUS_CANNOT_UNDERSTAND, Archive, RejectedInstance
from daemon.network.filemeta import file_meta_bytes
from daemon.settings import SCPSettings

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
    """Verification + Storage SCP writing into an :class:`Archive`."""

    def __init__(self, settings: SCPSettings, archive: Archive) -> None:
        self.settings = settings
        self.archive = archive
        self.admission = Admission(settings.allowed_peers)
        self._per_assoc: dict[int, Counter[str]] = {}
        self._assoc_studies: dict[int, set[str]] = {}  # the studies each association carried
        # called with those studies when the association is released (the workflow's "study complete" signal)
        self.on_released: Callable[[set[str]], None] | None = None
        self._server = None
        self.ae = self._make_ae()

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        ae.maximum_pdu_size = self.settings.max_pdu_bytes
        ae.maximum_associations = self.settings.max_associations
        ae.network_timeout = self.settings.network_timeout_s
        ae.acse_timeout = self.settings.network_timeout_s
        ae.dimse_timeout = self.settings.network_timeout_s
        ae.require_called_aet = True
        ae.add_supported_context(Verification)
        for sop_class in STORAGE_CLASSES:
            ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
        return ae

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start listening (non-blocking)."""
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
        ]
        address = (self.settings.bind_host, self.settings.port)
        self._server = self.ae.start_server(
            address, block=False, evt_handlers=handlers, ssl_context=self._ssl_context()
        )
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
        calling = event.assoc.requestor.primitive.calling_ae_title.strip()
        address = event.assoc.requestor.address
        reason = self.admission.refusal(calling, address)
        if reason is not None:
            # A-ASSOCIATE-RJ: rejected-permanent, service-user, calling AE title not recognized
            log.warning("association from %s@%s rejected: %s", calling, address, reason)
            metrics.ASSOCIATIONS_REJECTED.inc()
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)
            event.assoc.is_rejected = True
            event.assoc.kill()

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
        request = event.request
        try:
            meta = file_meta_bytes(str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID), str(event.context.transfer_syntax))
            result = self.archive.store(
                meta + request.DataSet.getvalue(),
                calling_ae=calling,
                expected_sop_uid=request.AffectedSOPInstanceUID,
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
        log.debug("stored %s (study %s)%s", result.sop_instance_uid, result.study_uid, " duplicate" if result.duplicate else "")
        return 0x0000

    def _failure(self, counts: Counter[str], status: int, message: str, event: evt.Event) -> object:
        from pydicom.dataset import Dataset

        counts["failed"] += 1
        metrics.INSTANCES_RECEIVED.labels("failed").inc()
        log.warning(
            "instance %s from %s refused (0x%04X): %s",
            event.request.AffectedSOPInstanceUID,
            event.assoc.requestor.ae_title.strip(),
            status,
            message,
        )
        rsp = Dataset()
        rsp.Status = status
        rsp.ErrorComment = message[:64]
        return rsp
