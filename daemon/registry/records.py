"""The exam record as the exports see it (plain data, built by :mod:`daemon.storage.registry`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class ExportNodule:
    tracking_id: str
    tracking_uid: str
    volume_mm3: float | None
    mean_diameter_mm: float | None
    composition: str | None
    status: str | None
    category: str | None
    error: str | None = None


@dataclass(frozen=True)
class ExportExam:
    """One screening exam with its participant: every field an export may carry (None = not known)."""

    exam_id: int
    participant_key: str
    study_uid: str
    exam_date: dt.date
    facility_id: str = ""
    # identifying: exported with --identified only
    patient_id: str | None = None
    issuer: str | None = None
    patient_name: str | None = None
    birth_date: dt.date | None = None
    accession_number: str | None = None
    # participant
    sex: str | None = None
    age_years: int | None = None
    smoking_status: str | None = None
    pack_years: float | None = None
    years_since_quit: float | None = None
    family_history_lung_cancer: int | None = None
    emphysema: int | None = None
    shared_decision_making: int | None = None
    cessation_counselling: int | None = None
    height_m: float | None = None
    weight_kg: float | None = None
    eligible: bool | None = None
    # exam
    indication: str | None = None  # baseline | annual-or-biennial | interval-follow-up | category-0-recall
    scanner_manufacturer: str | None = None
    scanner_model: str | None = None
    kvp: float | None = None
    exposure_mas: float | None = None
    pitch_factor: float | None = None
    slice_width_mm: float | None = None
    scan_length_mm: float | None = None
    ctdivol_mgy: float | None = None
    dlp_total_mgycm: float | None = None
    dose_source: str | None = None  # "ct-dose-sr" | "ct-image"
    prior_exam_date: dt.date | None = None
    comparison_made: bool | None = None
    protocol: str = (
        "nlcsp"  # the protocol the exam was reported with: "nlcsp" or "lung-rads-2022" (assessments.protocol)
    )
    protocol_version: str = ""  # of ``protocol`` ("v2022" for Lung-RADS)
    category: str | None = None  # in ``protocol``
    lung_rads_category: str | None = None  # reported, or computed alongside by the audit protocol (LCSR)
    nlcsp_category: str | None = None  # reported, or computed alongside by the audit protocol (NCSR)
    additional_findings: bool = False
    follow_up_months: int | None = None
    due_date: dt.date | None = None
    radiologist: str | None = None
    nodules: tuple[ExportNodule, ...] = ()


def indication(previous_category: str | None, previous_follow_up_months: int | None, is_first: bool) -> str:
    """Why the exam was done, from the participant's previous exam (the LCSR's indication values)."""
    if is_first:
        return "baseline"
    if previous_category == "0":
        return "category-0-recall"
    if previous_follow_up_months is not None and previous_follow_up_months < 12:
        return "interval-follow-up"
    return "annual-or-biennial"
