"""Query/retrieve SCU: a patient's prior studies asked of the PACS, and fetched from it.

Implements the network half of issue 8 (DESIGN §3 step 4); which studies count as priors and
which series are needed is :mod:`daemon.analysis.priors` and :mod:`daemon.analysis.series`,
what the index already holds is :func:`daemon.storage.queries.priors_in_index`, and the
orchestration (and the wait-or-report policy) is :mod:`daemon.workflow.priors`.

* :func:`query_pacs` — earlier studies of the patient the configured PACS holds, by
  C-FIND (Study Root, STUDY level, then SERIES level per study);
* :func:`retrieve` — fetch a study (or some of its series) by C-MOVE to the
  node's own Storage SCP, or by C-GET on one association whose C-STORE
  sub-operations are handed to a ``store`` callback (normally
  :meth:`daemon.storage.archive.Archive.store`).

When the PACS cannot be reached or refuses, :class:`PriorsUnavailable` is
raised with a message starting "waiting for prior study from PACS: " that the
workflow shows as the job's status while it delays the job.

Patient ID and issuer are query keys: they are never logged at INFO or
above; log lines carry study UIDs and counts only.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from daemon.analysis.dicomvalues import da_to_date, to_float, to_int
from daemon.analysis.priors import PriorSeries, PriorStudy, keep_study, lookback_window, may_hold_priors
from daemon.analysis.sop_classes import STORAGE_CLASSES
from daemon.network.fastpath import REQUESTOR_HANDLERS, hide_identifiers_in_logs
from daemon.network.scp import TRANSFER_SYNTAXES
from daemon.network.status import status_text
from daemon.settings import PACSSettings
from daemon.storage.archive import STATUS_CANNOT_UNDERSTAND, RejectedInstance

log = logging.getLogger(__name__)

WAITING = "waiting for prior study from PACS"


class PriorsUnavailable(Exception):
    """The PACS cannot be asked or refuses; the message is the job's status in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{WAITING}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class RetrieveResult:
    completed: int
    failed: int
    warning: int
    message: str

    @property
    def complete(self) -> bool:
        """Every sub-operation succeeded (possibly with warnings)."""
        return self.failed == 0


# ------------------------------------------------------------------ network
def _ae(calling_ae: str, timeout_s: float) -> AE:
    hide_identifiers_in_logs()
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.connection_timeout = min(timeout_s, 10.0)
    return ae


def _why_not_established(pacs: PACSSettings, assoc) -> str:  # type: ignore[no-untyped-def]
    where = f"{pacs.ae_title} at {pacs.host}:{pacs.port}"
    if assoc.is_rejected:
        return f"{where} rejected the association (is this node's AE title known to the PACS?)"
    try:  # pynetdicom reports a failed TCP connection as an abort: find out which it was
        with socket.create_connection((pacs.host, pacs.port), timeout=5):
            pass
    except OSError as exc:
        return f"cannot connect to {where} ({exc.strerror or exc})"
    if assoc.is_aborted:
        return f"{where} aborted the association request"
    return f"{where} accepts connections but did not answer the association request"


def _no_answer(pacs: PACSSettings, assoc, what: str, elapsed_s: float) -> str:  # type: ignore[no-untyped-def]
    """Why a request got no response: the PACS hung up (elapsed < timeout) or did not answer in time."""
    calling = assoc.requestor.ae_title.strip()
    if assoc.is_aborted or elapsed_s < 0.9 * assoc.dimse_timeout:
        # Orthanc, for one, drops the association when a calling AE it does not know asks a question
        return (
            f"{pacs.ae_title} ended the association without answering {what} "
            f"(is {calling} allowed to query and retrieve from it?)"
        )
    return f"{pacs.ae_title} did not answer {what} within {assoc.dimse_timeout:g} s"


def _str(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value) or None
    return str(value).strip() or None


def _modalities(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("ModalitiesInStudy")
    if value in (None, ""):
        return ()
    values = (
        list(value)
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"
        else str(value).split("\\")
    )
    return tuple(sorted({str(v).strip().upper() for v in values if str(v).strip()}))


def _find(assoc, pacs: PACSSettings, query: Dataset, what: str) -> list[Dataset]:  # type: ignore[no-untyped-def]
    """Run one C-FIND on an open association; every pending identifier, or PriorsUnavailable."""
    matches: list[Dataset] = []
    started = time.monotonic()
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if not status:  # no response within the DIMSE timeout, or the association went away
            raise PriorsUnavailable(_no_answer(pacs, assoc, f"the {what} query", time.monotonic() - started))
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):
            if identifier is not None:
                matches.append(identifier)
        elif code != 0x0000:
            comment = f" ({status.ErrorComment})" if "ErrorComment" in status else ""
            raise PriorsUnavailable(f"{pacs.ae_title} refused the {what} query: {status_text(code, 'find')}{comment}")
    return matches


def query_pacs(
    pacs: PACSSettings,
    *,
    calling_ae: str,
    patient_id: str,
    issuer: str | None,
    before: dt.date,
    lookback_years: float = 10,
    timeout_s: float = 30,
) -> list[PriorStudy]:
    """Earlier studies of the patient held by the PACS, newest first, their series described.

    STUDY level C-FIND (Study Root) on Patient ID (+ Issuer of Patient ID when
    known) and the StudyDate range of the look-back window; ModalitiesInStudy
    is asked as a return key and studies are kept when they hold CT or an
    SR/SEG written by noduled (our earlier reports, found by the series'
    Manufacturer).  One SERIES level C-FIND per study describes its series.
    Answers are checked again here (exact Patient ID, issuer, date window),
    because PACS differ in how they match (wildcards, empty issuers).
    """
    if not patient_id:
        raise ValueError("a prior search needs the current study's Patient ID; this study has none")
    first, last = lookback_window(before, lookback_years)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient_id
    query.IssuerOfPatientID = issuer or ""
    query.StudyDate = f"{first:%Y%m%d}-{last:%Y%m%d}"
    query.StudyInstanceUID = ""
    query.StudyDescription = ""
    query.ModalitiesInStudy = ""
    query.NumberOfStudyRelatedInstances = ""

    ae = _ae(calling_ae, timeout_s)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title, evt_handlers=list(REQUESTOR_HANDLERS))
    if not assoc.is_established:
        raise PriorsUnavailable(_why_not_established(pacs, assoc))
    try:
        found: list[PriorStudy] = []
        seen: set[str] = set()
        for ident in _find(assoc, pacs, query, "study"):
            uid = _str(ident, "StudyInstanceUID")
            date = da_to_date(ident.get("StudyDate"))
            if not uid or uid in seen:
                continue
            if _str(ident, "PatientID") not in (None, patient_id):
                continue  # wildcard or case-insensitive matching on the PACS: not this patient
            answered_issuer = _str(ident, "IssuerOfPatientID")
            if issuer and answered_issuer and answered_issuer != issuer:
                continue
            if date is None or not first <= date <= last:
                continue
            seen.add(uid)
            modalities = _modalities(ident)
            if not may_hold_priors(modalities):
                continue  # e.g. an MR or a radiograph: no series query needed
            study_series = tuple(_series_of(assoc, pacs, uid))
            if not keep_study(modalities, study_series):
                continue
            all_modalities = tuple(sorted(set(modalities) | {s.modality for s in study_series if s.modality}))
            found.append(PriorStudy(uid, date, _str(ident, "StudyDescription"), all_modalities, "pacs", study_series))
    finally:
        if assoc.is_established:
            assoc.release()
    found.sort(key=lambda s: (s.study_date or dt.date.min, s.study_uid), reverse=True)
    log.info(
        "PACS %s holds %d prior studies in %s..%s: %s",
        pacs.ae_title,
        len(found),
        first,
        last,
        ", ".join(s.study_uid for s in found) or "none",
    )
    return found


def _series_of(assoc, pacs: PACSSettings, study_uid: str) -> list[PriorSeries]:  # type: ignore[no-untyped-def]
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.SeriesNumber = ""
    query.SeriesDescription = ""
    query.Manufacturer = ""
    query.SliceThickness = ""
    query.ConvolutionKernel = ""
    query.NumberOfSeriesRelatedInstances = ""
    result = []
    for ident in _find(assoc, pacs, query, f"series of study {study_uid}"):
        uid = _str(ident, "SeriesInstanceUID")
        if not uid:
            continue
        result.append(
            (
                to_int(ident.get("SeriesNumber")) or 0,
                PriorSeries(
                    series_uid=uid,
                    modality=(_str(ident, "Modality") or "").upper(),
                    description=_str(ident, "SeriesDescription"),
                    slice_thickness_mm=to_float(ident.get("SliceThickness")),
                    n_instances=to_int(ident.get("NumberOfSeriesRelatedInstances")),
                    manufacturer=_str(ident, "Manufacturer"),
                    convolution_kernel=_str(ident, "ConvolutionKernel"),
                ),
            )
        )
    result.sort(key=lambda item: (item[0], item[1].series_uid))
    return [s for _, s in result]


# ----------------------------------------------------------------- retrieve
def _instance_uid(event: evt.Event) -> str:
    """The SOP Instance UID of a C-STORE sub-operation's request."""
    return str(getattr(event.request, "AffectedSOPInstanceUID", "?"))


def _identifiers(study_uid: str, series_uids: Sequence[str]) -> list[Dataset]:
    if not series_uids:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study_uid
        return [ds]
    result = []
    for uid in series_uids:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = uid
        result.append(ds)
    return result


def retrieve(
    pacs: PACSSettings,
    *,
    calling_ae: str,
    study_uid: str,
    series_uids: Sequence[str] = (),
    method: Literal["c-move", "c-get"],
    move_destination: str | None = None,
    store: Callable[[bytes], object] | None = None,
    timeout_s: float = 300,
) -> RetrieveResult:
    """Fetch a study (or only ``series_uids`` of it) from the PACS.

    ``c-move``: the PACS sends the instances to ``move_destination`` (default
    ``calling_ae``: the node's own Storage SCP, which must be running and
    known to the PACS); when this returns, the SCP has archived them.
    ``c-get``: one association carries the Get context and storage contexts
    for CT, the SR classes, GSPS and SEG with SCP role selection; each
    received instance (encoded with its file meta) is passed to ``store``,
    whose :class:`~daemon.storage.archive.RejectedInstance` becomes the C-STORE status.

    Raises :class:`PriorsUnavailable` when the PACS cannot be reached, refuses
    the request or fails it as a whole; partial failures are counted in the
    :class:`RetrieveResult` (``complete`` is False then).
    """
    if method not in ("c-move", "c-get"):
        raise ValueError(f"retrieve method must be 'c-move' or 'c-get', got {method!r}")
    if method == "c-get" and store is None:
        raise ValueError("a C-GET retrieval needs a store callback for the received instances")
    destination = move_destination or calling_ae

    ae = _ae(calling_ae, timeout_s)
    handlers: list[Any] = []
    roles: list[Any] = []
    refusals: list[str] = []  # C-GET: why this node refused instances (reasons, no patient data)
    if method == "c-move":
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    else:
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in STORAGE_CLASSES:
            ae.add_requested_context(sop_class, list(TRANSFER_SYNTAXES))
            roles.append(build_role(sop_class, scp_role=True))

        def on_store(event: evt.Event) -> object:
            try:
                assert store is not None
                store(event.encoded_dataset(include_meta=True))
            except RejectedInstance as exc:
                refusals.append(str(exc))
                log.warning("instance %s of study %s refused: %s", _instance_uid(event), study_uid, exc)
                return exc.status
            except Exception as exc:
                refusals.append(f"internal error: {type(exc).__name__}")
                log.exception("instance %s of study %s could not be stored", _instance_uid(event), study_uid)
                return STATUS_CANNOT_UNDERSTAND
            return 0x0000

        handlers.append((evt.EVT_C_STORE, on_store))

    assoc = ae.associate(
        pacs.host,
        pacs.port,
        ae_title=pacs.ae_title,
        ext_neg=roles or None,
        evt_handlers=[*REQUESTOR_HANDLERS, *handlers],
    )
    if not assoc.is_established:
        raise PriorsUnavailable(_why_not_established(pacs, assoc))
    completed = failed = warning = 0
    try:
        for identifier in _identifiers(study_uid, series_uids):
            if method == "c-move":
                responses = assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove)
            else:
                responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
            final = None
            started = time.monotonic()
            for status, _ in responses:
                if not status:
                    elapsed_s = time.monotonic() - started
                    raise PriorsUnavailable(
                        _no_answer(pacs, assoc, f"the {method.upper()} of study {study_uid}", elapsed_s)
                    )
                started = time.monotonic()
                code = int(status.Status)
                if code in (0xFF00, 0xFF01):
                    continue
                final = status
            if final is None:
                raise PriorsUnavailable(f"{pacs.ae_title} gave no final answer for study {study_uid}")
            code = int(final.Status)
            c = int(final.get("NumberOfCompletedSuboperations") or 0)
            f = int(final.get("NumberOfFailedSuboperations") or 0)
            w = int(final.get("NumberOfWarningSuboperations") or 0)
            if code == 0xA801:
                raise PriorsUnavailable(
                    f"{pacs.ae_title} does not know the move destination {destination} "
                    f"(add it with this node's address and port to the PACS's DICOM nodes)"
                )
            if code not in (0x0000, 0xB000) and not (code == 0xA702 and c > 0):
                comment = f" ({final.ErrorComment})" if "ErrorComment" in final else ""
                hint = ""
                if refusals:
                    hint = f"; this node refused {len(refusals)} instances: {refusals[-1]}"
                elif method == "c-move" and c == 0:
                    # Orthanc and others answer an unknown destination with a plain 0xC000
                    hint = (
                        f"; is the move destination {destination} known to the PACS, listening, "
                        f"and accepting associations from {pacs.ae_title}?"
                    )
                raise PriorsUnavailable(
                    f"{pacs.ae_title} could not send study {study_uid}: {status_text(code, 'move' if method == 'c-move' else 'get')}{comment}{hint}"
                )
            completed, failed, warning = completed + c, failed + f, warning + w
    finally:
        if assoc.is_established:
            assoc.release()
    what = f"study {study_uid}" + (f" ({len(series_uids)} series)" if series_uids else "")
    message = (
        f"{method.upper()} of {what} from {pacs.ae_title}: {completed} completed, {failed} failed, {warning} warnings"
    )
    if refusals:
        message += f"; this node refused {len(refusals)} instances: {refusals[-1]}"
    (log.warning if failed else log.info)("%s", message)
    return RetrieveResult(completed, failed, warning, message)
