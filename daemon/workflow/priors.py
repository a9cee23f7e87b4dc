"""The patient's priors for an analysis: fetched from the PACS when missing, or waited for.

:func:`fetch_missing_priors` brings into the archive what the PACS holds of the patient's
priors (chosen by :mod:`daemon.analysis.priors`) and the node does not; :func:`fetch_or_wait`
is the wait-or-report policy: when the PACS cannot give them, the study waits
(:class:`WaitingForPriors`, state ``waiting-priors``) until it has waited
``[pacs] report_without_priors_after_min``; then the report goes out without them and says so.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import Engine

from daemon.analysis.priors import select_priors, series_to_fetch
from daemon.network.query_retrieve import PriorsUnavailable, query_pacs, retrieve
from daemon.settings import PACSSettings
from daemon.storage.archive import Archive
from daemon.storage.queries import StudyPatient, has_later_study, priors_in_index, study_patient
from daemon.workflow import state

log = logging.getLogger(__name__)


class WaitingForPriors(Exception):
    """The PACS could not give the priors; the study waits (the monitor queues it again)."""


def fetch_missing_priors(
    pacs: PACSSettings,
    *,
    engine: Engine,
    calling_ae: str,
    patient_id: str,
    issuer: str,
    before: dt.date,
    store: Callable[[bytes], object],
    lookback_years: float = 10,
    max_studies: int = 4,
) -> list[str]:
    """Bring into the archive what the PACS holds of the patient's priors and the node does not.

    For each earlier study the PACS holds (the earliest and the most recent, at most
    ``max_studies``: :func:`daemon.analysis.priors.select_priors`): its best CT series and
    noduled's earlier SR/SEG, unless the index has them complete already.  Returns the study
    UIDs fetched.  Raises :class:`PriorsUnavailable` when the PACS cannot be asked, or a
    retrieval is incomplete: the analysis then waits rather than report without the priors.
    """
    if not patient_id.strip():
        return []
    remote = query_pacs(
        pacs,
        calling_ae=calling_ae,
        patient_id=patient_id,
        issuer=issuer or None,
        before=before,
        lookback_years=lookback_years,
    )
    remote = select_priors(remote[::-1], max_studies)[::-1]  # query_pacs answers newest first
    local = {
        s.study_uid: s
        for s in priors_in_index(
            engine, patient_id=patient_id, issuer=issuer, before=before, lookback_years=lookback_years
        )
    }
    fetched = []
    for study in remote:
        wanted = series_to_fetch(study, local.get(study.study_uid))
        if not wanted:
            continue
        result = retrieve(
            pacs,
            calling_ae=calling_ae,
            study_uid=study.study_uid,
            series_uids=wanted,
            method=pacs.retrieve,
            store=store,
        )
        if not result.complete:
            raise PriorsUnavailable(f"prior study {study.study_uid} came back incomplete: {result.message}")
        log.info("prior study %s: %d instances retrieved (%s)", study.study_uid, result.completed, pacs.retrieve)
        fetched.append(study.study_uid)
    return fetched


def fetch_or_wait(
    engine: Engine,
    archive: Archive,
    pacs: PACSSettings | None,
    study_uid: str,
    *,
    calling_ae: str,
    lookback_years: float,
    max_priors: int,
    now: dt.datetime | None = None,
) -> list[str]:
    """Retrieve the patient's priors the PACS holds and the archive does not; notes for the report.

    When the PACS cannot give them, the study waits (:class:`WaitingForPriors`)
    unless it has waited ``report_without_priors_after_min`` already: then
    the report goes out without them and says so.
    """
    if pacs is None:
        return []
    who = study_patient(engine, study_uid)
    if who is None or who.study_date is None:
        return []
    try:
        _fetch_for(
            who, who.study_date, engine, archive, pacs, calling_ae, lookback_years=lookback_years, max_priors=max_priors
        )
    except PriorsUnavailable as exc:
        now = now or state.utcnow()
        waited_min = (now - who.queued_at).total_seconds() / 60 if who.queued_at is not None else 0.0
        limit = pacs.report_without_priors_after_min
        if limit and waited_min >= limit:
            why = str(exc).removeprefix("waiting for prior study from PACS: ")
            log.warning("study %s: reporting without priors after %.1f min: %s", study_uid, waited_min, why)
            return [
                f"Reported without prior comparison: the PACS did not give the prior studies within the site's limit"
                f" of {limit:g} min (waited {waited_min:.1f} min; {why})"
            ]
        state.waiting_for_priors(engine, study_uid, str(exc))
        raise WaitingForPriors(str(exc)) from None
    return []


def prefetch_priors(
    engine: Engine,
    archive: Archive,
    pacs: PACSSettings,
    study_uid: str,
    *,
    calling_ae: str,
    lookback_years: float,
    max_priors: int,
) -> list[str]:
    """What :func:`fetch_or_wait` retrieves, fetched ahead (during the study-complete wait).

    Nothing is decided here: when the PACS cannot give the priors, the analysis asks again and
    applies the wait-or-report policy itself.  Returns the study UIDs fetched.  Nothing is fetched
    for a study older than another of the patient's in the index: a prior arriving by this very
    retrieval (or an old study forwarded again, whose analysis asks the PACS itself).
    """
    who = study_patient(engine, study_uid)
    if who is None or who.study_date is None or has_later_study(engine, study_uid):
        return []
    try:
        return _fetch_for(
            who, who.study_date, engine, archive, pacs, calling_ae, lookback_years=lookback_years, max_priors=max_priors
        )
    except PriorsUnavailable as exc:
        log.debug("study %s: priors not prefetched (%s)", study_uid, exc)
        return []


def _fetch_for(
    who: StudyPatient,
    before: dt.date,
    engine: Engine,
    archive: Archive,
    pacs: PACSSettings,
    calling_ae: str,
    *,
    lookback_years: float,
    max_priors: int,
) -> list[str]:
    return fetch_missing_priors(
        pacs,
        engine=engine,
        calling_ae=calling_ae,
        patient_id=who.patient_id,
        issuer=who.issuer,
        before=before,
        store=lambda data: archive.store(data, calling_ae=pacs.ae_title),
        lookback_years=lookback_years,
        max_studies=max_priors,
    )
