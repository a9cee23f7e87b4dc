"""Every figure of the practice audit, from plain records (pure: no database, no files).

Definitions (what each figure counts; the audit report prints them next to the figures):

* **round** of an exam: its ordinal among the participant's exams (1 = baseline).
* **positive / negative screen**: NLCSP Practice Audit Definitions (note 4): negative = Category 1,
  positive = Categories 5 and 6 (Lung-RADS: negative 1-2, positive 3, 4A, 4B, 4X).
* **adherence**: an exam with a recommended next scan (due date) is *evaluable* when its due date plus
  the tolerance has passed by the as-of date; it is *adherent* when the participant's next exam is on or
  before due date + tolerance (*early* when before due date - tolerance, counted adherent and shown).
  An evaluable exam without a next exam is *overdue* (listed).
* **lung cancer**: tissue diagnosis invasive lung cancer, minimally invasive adenocarcinoma,
  adenocarcinoma in situ or carcinoid.  A cancer outcome belongs to the exam it was recorded against,
  else to the participant's latest exam on or before its date; it counts when diagnosed within
  365 days after that exam.
* **PPV**: positive screens followed by a lung cancer within 12 months / positive screens.
* **cancer detection rate**: screen-detected cancers (after a positive screen) per 1,000 exams.
* **interval cancer**: a lung cancer within 12 months after a negative screen.
* **CTDIvol**: the exam's screening-series CTDIvol (mGy); share <= the target (3.0 mGy, standard-size
  patient); an outlier is an exam above the target.
* **turnaround**: received (first instance) -> analysed (assessment recorded) -> delivered (report
  confirmed by the destination); p50 / p95 in minutes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daemon.registry.csvfiles import LUNG_CANCER

POSITIVE = {"nlcsp": frozenset({"5", "6"}), "lung-rads-2022": frozenset({"3", "4A", "4B", "4X"})}
NEGATIVE = {"nlcsp": frozenset({"1"}), "lung-rads-2022": frozenset({"1", "2"})}
CATEGORIES = {"nlcsp": ("0", "1", "2", "3", "4", "5", "6"), "lung-rads-2022": ("0", "1", "2", "3", "4A", "4B", "4X")}
CANCER_WINDOW_DAYS = 365


@dataclass(frozen=True)
class ExamRecord:
    """One screening exam as the audit sees it (opted-out participants are never passed in)."""

    exam_id: int
    participant_key: str  # pseudonymous (or the Patient ID with --identified)
    exam_date: dt.date
    category: str | None
    additional_findings: bool = False
    follow_up_months: int | None = None
    due_date: dt.date | None = None
    ctdivol_mgy: float | None = None
    dlp_total_mgycm: float | None = None
    scanner: str | None = None  # "manufacturer model"
    protocol: str | None = None  # acquisition protocol name
    radiologist: str | None = None
    received_at: dt.datetime | None = None
    analysed_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    nodules: int = 0
    seeds_without_nodule: int = 0
    volumetry_unreliable: int = 0
    reader_composition: int = 0
    smoking_status: str | None = None


@dataclass(frozen=True)
class OutcomeRecord:
    participant_key: str
    outcome_date: dt.date
    outcome_type: str
    tissue_diagnosis: str | None = None
    exam_id: int | None = None  # the exam it follows, when recorded


@dataclass(frozen=True)
class AuditOptions:
    period_from: dt.date
    period_to: dt.date
    as_of: dt.date
    protocol: str = "nlcsp"
    adherence_tolerance_days: int = 60
    ctdivol_target_mgy: float = 3.0
    expected_category_pct: dict[str, tuple[float, float]] = field(default_factory=dict)  # category -> (low, high)


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _quantiles_min(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None}
    arr = np.asarray(values, dtype=float)
    return {"n": len(values), "p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95))}


def _minutes(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a).total_seconds() / 60.0


def rounds(exams: Iterable[ExamRecord]) -> dict[int, int]:
    """exam_id -> round (1 = the participant's first exam)."""
    by_participant: dict[str, list[ExamRecord]] = defaultdict(list)
    for e in exams:
        by_participant[e.participant_key].append(e)
    out: dict[int, int] = {}
    for items in by_participant.values():
        for i, e in enumerate(sorted(items, key=lambda x: (x.exam_date, x.exam_id)), start=1):
            out[e.exam_id] = i
    return out


def _next_exam(exams: Sequence[ExamRecord]) -> dict[int, ExamRecord]:
    by_participant: dict[str, list[ExamRecord]] = defaultdict(list)
    for e in exams:
        by_participant[e.participant_key].append(e)
    out: dict[int, ExamRecord] = {}
    for items in by_participant.values():
        items.sort(key=lambda x: (x.exam_date, x.exam_id))
        for a, b in zip(items, items[1:]):
            out[a.exam_id] = b
    return out


def _cancer_exams(exams: Sequence[ExamRecord], outcomes: Sequence[OutcomeRecord]) -> dict[int, dt.date]:
    """exam_id -> date of the first lung cancer diagnosis within 365 days after that exam."""
    by_id = {e.exam_id: e for e in exams}
    by_participant: dict[str, list[ExamRecord]] = defaultdict(list)
    for e in exams:
        by_participant[e.participant_key].append(e)
    for items in by_participant.values():
        items.sort(key=lambda x: (x.exam_date, x.exam_id))
    out: dict[int, dt.date] = {}
    for o in outcomes:
        if o.tissue_diagnosis not in LUNG_CANCER:
            continue
        exam = by_id.get(o.exam_id) if o.exam_id is not None else None
        if exam is None:
            before = [e for e in by_participant.get(o.participant_key, []) if e.exam_date <= o.outcome_date]
            exam = before[-1] if before else None
        if exam is None:
            continue
        days = (o.outcome_date - exam.exam_date).days
        if 0 <= days <= CANCER_WINDOW_DAYS and (exam.exam_id not in out or o.outcome_date < out[exam.exam_id]):
            out[exam.exam_id] = o.outcome_date
    return out


def _group(exams: Sequence[ExamRecord], key: str, o: AuditOptions) -> list[dict[str, Any]]:
    positive = POSITIVE[o.protocol]
    groups: dict[str, list[ExamRecord]] = defaultdict(list)
    for e in exams:
        groups[getattr(e, key) or "(unknown)"].append(e)
    rows = []
    for name, items in sorted(groups.items()):
        dose = [e.ctdivol_mgy for e in items if e.ctdivol_mgy is not None]
        rows.append(
            {
                key: name,
                "exams": len(items),
                "positive": sum(1 for e in items if e.category in positive),
                "positive_pct": _pct(sum(1 for e in items if e.category in positive), len(items)),
                "categories": dict(Counter(e.category for e in items if e.category is not None)),
                "ctdivol_mean_mgy": float(np.mean(dose)) if dose else None,
                "ctdivol_over_target": sum(1 for d in dose if d > o.ctdivol_target_mgy),
            }
        )
    return rows


def compute_audit(
    all_exams: Sequence[ExamRecord], outcomes: Sequence[OutcomeRecord], o: AuditOptions
) -> dict[str, Any]:
    """Every audit figure for the exams dated within the period.

    ``all_exams``: every exam of the participants up to the as-of date (earlier ones give the rounds,
    later ones the adherence), ``outcomes``: their outcomes.
    """
    positive, negative, categories = POSITIVE[o.protocol], NEGATIVE[o.protocol], CATEGORIES[o.protocol]
    round_of = rounds(all_exams)
    exams = sorted(
        (e for e in all_exams if o.period_from <= e.exam_date <= o.period_to), key=lambda e: (e.exam_date, e.exam_id)
    )
    n = len(exams)

    # -- exams and participants by round; category distribution per round
    by_round: dict[int, list[ExamRecord]] = defaultdict(list)
    for e in exams:
        by_round[round_of[e.exam_id]].append(e)
    per_round = []
    for r in sorted(by_round):
        items = by_round[r]
        counts = Counter(e.category for e in items)
        per_round.append(
            {
                "round": r,
                "exams": len(items),
                "participants": len({e.participant_key for e in items}),
                "categories": {c: counts.get(c, 0) for c in categories},
                "category_pct": {c: _pct(counts.get(c, 0), len(items)) for c in categories},
            }
        )
    totals = Counter(e.category for e in exams)
    distribution = {
        c: {"exams": totals.get(c, 0), "pct": _pct(totals.get(c, 0), n), "expected_pct": o.expected_category_pct.get(c)}
        for c in categories
    }
    n_pos = sum(1 for e in exams if e.category in positive)
    n_neg = sum(1 for e in exams if e.category in negative)

    # -- adherence and overdue follow-ups
    nxt = _next_exam(all_exams)
    tol = dt.timedelta(days=o.adherence_tolerance_days)
    evaluable = adherent = early = 0
    overdue: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    for e in exams:
        if e.due_date is None or e.due_date + tol > o.as_of:
            continue
        evaluable += 1
        follow = nxt.get(e.exam_id)
        if follow is not None and follow.exam_date <= e.due_date + tol:
            adherent += 1
            early += follow.exam_date < e.due_date - tol
            continue
        entry = {
            "participant": e.participant_key,
            "exam_date": e.exam_date,
            "category": e.category,
            "due_date": e.due_date,
            "days_overdue": ((follow.exam_date if follow else o.as_of) - e.due_date).days,
        }
        if follow is None:
            overdue.append(entry)
        else:
            late.append({**entry, "returned": follow.exam_date})
    overdue.sort(key=lambda x: -x["days_overdue"])

    # -- outcomes: PPV, detection rate, interval cancers
    keys = {e.participant_key for e in all_exams}
    relevant = [x for x in outcomes if x.participant_key in keys]
    cancer_after = _cancer_exams(all_exams, relevant)
    screen_detected = sum(1 for e in exams if e.category in positive and e.exam_id in cancer_after)
    interval = sum(1 for e in exams if e.category in negative and e.exam_id in cancer_after)
    other = sum(1 for e in exams if e.category not in positive | negative and e.exam_id in cancer_after)
    incomplete = sum(1 for e in exams if (o.as_of - e.exam_date).days < CANCER_WINDOW_DAYS)
    outcome_figures = {
        "recorded": len(relevant),
        "lung_cancers": sum(1 for x in relevant if x.tissue_diagnosis in LUNG_CANCER),
        "screen_detected": screen_detected,
        "ppv_pct": _pct(screen_detected, n_pos),
        "detection_rate_per_1000": 1000.0 * screen_detected / n if n else None,
        "interval_cancers": interval,
        "interval_cancer_rate_per_1000_negative": 1000.0 * interval / n_neg if n_neg else None,
        "cancers_after_other_categories": other,
        "exams_with_incomplete_follow_up": incomplete,
        "by_type": dict(Counter(x.outcome_type for x in relevant)),
    }

    # -- dose
    dose = [e.ctdivol_mgy for e in exams if e.ctdivol_mgy is not None]
    dlp = [e.dlp_total_mgycm for e in exams if e.dlp_total_mgycm is not None]
    at_target = sum(1 for d in dose if d <= o.ctdivol_target_mgy)
    outliers: Counter[tuple[str, str]] = Counter(
        (e.scanner or "(unknown)", e.protocol or "(unknown)")
        for e in exams
        if e.ctdivol_mgy is not None and e.ctdivol_mgy > o.ctdivol_target_mgy
    )
    dose_figures = {
        "exams_with_ctdivol": len(dose),
        "exams_without_ctdivol": n - len(dose),
        "ctdivol_mean_mgy": float(np.mean(dose)) if dose else None,
        "ctdivol_p50_mgy": float(np.percentile(dose, 50)) if dose else None,
        "ctdivol_p95_mgy": float(np.percentile(dose, 95)) if dose else None,
        "at_or_below_target": at_target,
        "at_or_below_target_pct": _pct(at_target, len(dose)),
        "target_mgy": o.ctdivol_target_mgy,
        "dlp_mean_mgycm": float(np.mean(dlp)) if dlp else None,
        "outliers_by_scanner_protocol": [
            {"scanner": s, "protocol": p, "exams_over_target": c}
            for (s, p), c in sorted(outliers.items(), key=lambda x: (-x[1], x[0]))
        ],
        "values_mgy": dose,
    }

    # -- turnaround
    received_analysed = [m for e in exams if (m := _minutes(e.received_at, e.analysed_at)) is not None]
    analysed_delivered = [m for e in exams if (m := _minutes(e.analysed_at, e.delivered_at)) is not None]
    received_delivered = [m for e in exams if (m := _minutes(e.received_at, e.delivered_at)) is not None]

    # -- AI quality
    nodules = sum(e.nodules for e in exams)
    seeds = nodules + sum(e.seeds_without_nodule for e in exams)
    ai = {
        "seeds": seeds,
        "seeds_without_nodule": sum(e.seeds_without_nodule for e in exams),
        "seeds_without_nodule_pct": _pct(sum(e.seeds_without_nodule for e in exams), seeds),
        "nodules": nodules,
        "volumetry_unreliable": sum(e.volumetry_unreliable for e in exams),
        "volumetry_unreliable_pct": _pct(sum(e.volumetry_unreliable for e in exams), nodules),
        "reader_composition": sum(e.reader_composition for e in exams),
        "reader_composition_pct": _pct(sum(e.reader_composition for e in exams), nodules),
    }

    # -- participants: smoking
    latest: dict[str, ExamRecord] = {}
    for e in exams:
        latest[e.participant_key] = e
    smoking = Counter(e.smoking_status or "unknown" for e in latest.values())
    known = sum(v for k, v in smoking.items() if k != "unknown")
    return {
        "period": {"from": o.period_from, "to": o.period_to, "as_of": o.as_of},
        "protocol": o.protocol,
        "exams": n,
        "participants": len({e.participant_key for e in exams}),
        "per_round": per_round,
        "category_distribution": distribution,
        "positive": n_pos,
        "negative": n_neg,
        "positive_rate_pct": _pct(n_pos, n),
        "negative_rate_pct": _pct(n_neg, n),
        "adherence": {
            "tolerance_days": o.adherence_tolerance_days,
            "evaluable": evaluable,
            "adherent": adherent,
            "early": early,
            "late": len(late),
            "overdue": len(overdue),
            "adherence_pct": _pct(adherent, evaluable),
            "overdue_list": overdue,
            "late_list": late,
        },
        "outcomes": outcome_figures,
        "dose": dose_figures,
        "turnaround_min": {
            "received_to_analysed": _quantiles_min(received_analysed),
            "analysed_to_delivered": _quantiles_min(analysed_delivered),
            "received_to_delivered": _quantiles_min(received_delivered),
        },
        "ai_quality": ai,
        "smoking": {
            "current": smoking.get("current", 0),
            "known": known,
            "current_pct": _pct(smoking.get("current", 0), known),
            "by_status": dict(smoking),
        },
        "by_radiologist": _group(exams, "radiologist", o),
        "by_scanner": _group(exams, "scanner", o),
    }
