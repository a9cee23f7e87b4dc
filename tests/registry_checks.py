"""Checks of the registry outputs against the cohort's definition, shared by the SQLite and PostgreSQL tests.

Every expected figure here is computed from :class:`tests.support.cohort.Cohort` (what the generator
decided), with the definitions written out again, not with :mod:`daemon.registry.measures`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from typing import Any

import numpy as np
import pytest

from daemon.registry.export import LCSR_ELEMENTS, csv_files, fhir_json, lcsr_file
from daemon.registry.measures import AuditOptions, compute_audit
from daemon.registry.pseudonym import participant_key
from daemon.storage.registry import audit_records, export_records
from tests.support.cohort import ISSUER, Cohort

KEY = "test-secret-key-0123456789"
START, END, AS_OF = dt.date(2021, 1, 1), dt.date(2025, 12, 31), dt.date(2026, 6, 30)
TOL = 60
LUNG_CANCER = {"invasive-lung-cancer", "minimally-invasive-adenocarcinoma", "adenocarcinoma-in-situ", "carcinoid"}


def expected_figures(c: Cohort) -> dict[str, Any]:
    kept = [e for e in c.exams if not e.opted_out]
    audited = [e for e in kept if START <= e.exam_date <= END]
    n = len(audited)
    pos = [e for e in audited if e.category in ("5", "6")]
    neg = [e for e in audited if e.category == "1"]
    by_round: dict[int, list[Any]] = {}
    for e in audited:
        by_round.setdefault(e.round, []).append(e)
    following = {(e.participant, e.round): e for e in kept}
    evaluable = adherent = overdue = late = 0
    for e in audited:
        if e.due_date is None or e.due_date + dt.timedelta(days=TOL) > AS_OF:
            continue
        evaluable += 1
        nxt = following.get((e.participant, e.round + 1))
        if nxt is None:
            overdue += 1
        elif nxt.exam_date <= e.due_date + dt.timedelta(days=TOL):
            adherent += 1
        else:
            late += 1
    cancers = [o for o in c.outcomes if not o.opted_out and o.tissue_diagnosis in LUNG_CANCER]
    after_pos = {o.study_uid for o in cancers if o.outcome_type == "biopsy"}
    screen_detected = sum(1 for e in pos if e.study_uid in after_pos)
    interval_dates = {(o.participant, o.outcome_date) for o in cancers if o.outcome_type == "surgery"}
    interval = sum(1 for e in neg if (e.participant, e.exam_date + dt.timedelta(days=200)) in interval_dates)
    dose = [e.ctdivol_mgy for e in audited]
    latest = {}
    for e in sorted(audited, key=lambda x: x.exam_date):
        latest[e.participant] = e
    smoking = Counter(e.smoking_status for e in latest.values())
    seeds = sum(e.nodules + e.seeds_without_nodule for e in audited)
    nodules = sum(e.nodules for e in audited)
    return {
        "exams": n,
        "participants": len({e.participant for e in audited}),
        "rounds": {r: (len(v), len({e.participant for e in v})) for r, v in sorted(by_round.items())},
        "round_categories": {r: Counter(e.category for e in v) for r, v in by_round.items()},
        "categories": Counter(e.category for e in audited),
        "positive": len(pos),
        "positive_rate_pct": 100 * len(pos) / n,
        "negative": len(neg),
        "evaluable": evaluable,
        "adherent": adherent,
        "overdue": overdue,
        "late": late,
        "screen_detected": screen_detected,
        "ppv_pct": 100 * screen_detected / len(pos) if pos else None,
        "detection_rate_per_1000": 1000 * screen_detected / n,
        "interval": interval,
        "ctdivol_mean_mgy": sum(dose) / len(dose),
        "at_target_pct": 100 * sum(1 for d in dose if d <= 3.0) / len(dose),
        "over_target": Counter((e.scanner, e.protocol) for e in audited if e.ctdivol_mgy > 3.0),
        "received_to_analysed": [(e.analysed_at - e.received_at).total_seconds() / 60 for e in audited],
        "analysed_to_delivered": [(e.delivered_at - e.analysed_at).total_seconds() / 60 for e in audited],
        "seeds_without_nodule_pct": 100 * sum(e.seeds_without_nodule for e in audited) / seeds,
        "volumetry_unreliable_pct": 100 * sum(e.volumetry_unreliable for e in audited) / nodules,
        "reader_composition_pct": 100 * sum(e.reader_composition for e in audited) / nodules,
        "current_smokers": smoking["current"],
        "smoking_known": sum(smoking.values()),
        "by_radiologist": Counter(e.radiologist for e in audited),
        "by_radiologist_positive": Counter(e.radiologist for e in pos),
    }


def check_audit(engine: Any, cohort: Cohort) -> dict[str, Any]:
    exams, outcomes = audit_records(engine, key=KEY, as_of=AS_OF)
    a = compute_audit(exams, outcomes, AuditOptions(START, END, AS_OF, adherence_tolerance_days=TOL))
    x = expected_figures(cohort)
    # the cohort exercises what it should (else the checks below would be vacuous)
    assert (
        x["positive"] >= 3 and x["overdue"] >= 1 and x["late"] >= 1 and x["screen_detected"] >= 1 and x["interval"] >= 1
    )
    assert len(x["rounds"]) >= 3 and x["over_target"]
    assert a["exams"] == x["exams"] and a["participants"] == x["participants"]
    assert {r["round"]: (r["exams"], r["participants"]) for r in a["per_round"]} == x["rounds"]
    for r in a["per_round"]:
        assert {k: v for k, v in r["categories"].items() if v} == dict(x["round_categories"][r["round"]])
    assert {k: v["exams"] for k, v in a["category_distribution"].items() if v["exams"]} == dict(x["categories"])
    assert a["positive"] == x["positive"] and a["negative"] == x["negative"]
    assert a["positive_rate_pct"] == pytest.approx(x["positive_rate_pct"])
    ad = a["adherence"]
    assert (ad["evaluable"], ad["adherent"], ad["overdue"], ad["late"]) == (
        x["evaluable"],
        x["adherent"],
        x["overdue"],
        x["late"],
    )
    assert ad["adherence_pct"] == pytest.approx(100 * x["adherent"] / x["evaluable"])
    o = a["outcomes"]
    assert o["screen_detected"] == x["screen_detected"] and o["interval_cancers"] == x["interval"]
    assert o["ppv_pct"] == pytest.approx(x["ppv_pct"])
    assert o["detection_rate_per_1000"] == pytest.approx(x["detection_rate_per_1000"])
    d = a["dose"]
    assert d["ctdivol_mean_mgy"] == pytest.approx(x["ctdivol_mean_mgy"])
    assert d["at_or_below_target_pct"] == pytest.approx(x["at_target_pct"])
    assert {(r["scanner"], r["protocol"]): r["exams_over_target"] for r in d["outliers_by_scanner_protocol"]} == dict(
        x["over_target"]
    )
    t = a["turnaround_min"]
    for stage in ("received_to_analysed", "analysed_to_delivered"):
        assert t[stage]["p50"] == pytest.approx(float(np.percentile(x[stage], 50)))
        assert t[stage]["p95"] == pytest.approx(float(np.percentile(x[stage], 95)))
    q = a["ai_quality"]
    assert q["seeds_without_nodule_pct"] == pytest.approx(x["seeds_without_nodule_pct"])
    assert q["volumetry_unreliable_pct"] == pytest.approx(x["volumetry_unreliable_pct"])
    assert q["reader_composition_pct"] == pytest.approx(x["reader_composition_pct"])
    assert (a["smoking"]["current"], a["smoking"]["known"]) == (x["current_smokers"], x["smoking_known"])
    assert {r["radiologist"]: r["exams"] for r in a["by_radiologist"]} == dict(x["by_radiologist"])
    assert {r["radiologist"]: r["positive"] for r in a["by_radiologist"]} == {
        k: x["by_radiologist_positive"].get(k, 0) for k in x["by_radiologist"]
    }
    return a


def opted_out_identifiers(cohort: Cohort) -> list[str]:
    """Everything that would identify an opted-out participant in an output."""
    out = []
    for p in cohort.participants.values():
        if p["opted_out"]:
            out += [p["patient_id"], participant_key(p["patient_id"], ISSUER, KEY)]
    out += [e.study_uid for e in cohort.exams if e.opted_out]
    return out


def check_exports(engine: Any, cohort: Cohort) -> None:
    exams, excluded = export_records(engine, key=KEY, period_from=START, period_to=END, facility_id="SITE01")
    kept = [e for e in cohort.exams if not e.opted_out and START <= e.exam_date <= END]
    assert len(exams) == len(kept)
    assert excluded == sum(1 for e in cohort.exams if e.opted_out and START <= e.exam_date <= END) > 0
    f = lcsr_file(exams)
    raw = f.text.encode()
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == len(kept) + 1 and raw.count(b"\n") == raw.count(b"\r\n")
    lines = f.text.split("\r\n")[:-1]
    header = lines[0].split("|")
    assert header == [e.name for e in LCSR_ELEMENTS]
    assert "CT_Exam_Result_Lung_RADS" in header and "Lung_RADS_Version" in header
    by_study = {e.study_uid: e for e in kept}
    key_of = {e.study_uid: participant_key(e.patient_id, ISSUER, KEY) for e in kept}
    records = [dict(zip(header, line.split("|"))) for line in lines[1:]]
    assert all(len(line.split("|")) == len(header) for line in lines[1:])  # no | inside a value
    assert sorted(r["Patient_ID"] for r in records) == sorted(key_of.values())
    for r, x in zip(records, exams):
        truth = by_study[x.study_uid]
        assert r["Patient_ID"] == key_of[x.study_uid] and r["NLCSP_Category"] == truth.category
        # reported with NLCSP, Lung-RADS v2022 computed alongside: the LCSR result is the audit protocol's category
        assert truth.lung_rads_category and r["CT_Exam_Result_Lung_RADS"] == truth.lung_rads_category
        assert r["Lung_RADS_Version"] == "2022" and r["CT_Exam_Result_Modifier_S"] == ""
        assert r["CTDIvol_mGy"] == f"{truth.ctdivol_mgy:.2f}" and r["DLP_mGy_cm"] == f"{truth.dlp_total_mgycm:.2f}"
        assert r["Exam_Date"] == truth.exam_date.strftime("%m/%d/%Y") and r["Facility_ID"] == "SITE01"
        assert r["Patient_DOB"] == "" and r["Patient_Last_Name"] == "" and r["Exam_Unique_ID"] == ""  # pseudonymised
        assert r["Indication_For_Exam"] == ("baseline" if truth.round == 1 else r["Indication_For_Exam"])
    exam_csv, nodule_csv = csv_files(exams)
    rows = list(csv.DictReader(io.StringIO(exam_csv)))
    assert len(rows) == len(kept) and {r["study_uid"] for r in rows} == set(by_study)
    assert len(list(csv.DictReader(io.StringIO(nodule_csv)))) == sum(e.nodules + e.seeds_without_nodule for e in kept)
    bundle = json.loads(fhir_json(exams))
    kinds = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds["ImagingStudy"] == kinds["DiagnosticReport"] == len(kept)
    assert kinds["Patient"] == len({e.participant for e in kept})
    outputs = f.text + exam_csv + nodule_csv + json.dumps(bundle)
    for ident in opted_out_identifiers(cohort):
        assert ident not in outputs
    # identified: the registry's own portal gets Patient IDs, names and birth dates (still no opted-out)
    ident_exams, _ = export_records(engine, key=KEY, period_from=START, period_to=END, identified=True)
    g = lcsr_file(ident_exams, identified=True)
    assert all(e.patient_id in g.text for e in kept)
    for p in cohort.participants.values():
        if p["opted_out"]:
            assert p["patient_id"] not in g.text
