"""A synthetic screening cohort for the registry tests and ``benchmarks/audit.py``.

Participants with several screening rounds: each exam's nodules (sizes from a fixed palette, some
growing) go through the real NLCSP engine (``nlcsp.cases.parse_case`` -> ``assess``), and the result is
recorded through the same functions the pipeline uses (:func:`daemon.storage.longitudinal.write_assessment`
and :func:`daemon.storage.registry.record_exam`); participants go in through the participant-file
upsert and outcomes through the outcome import.  Dose, turnaround, readers, opt-outs, late and missed
follow-ups follow fixed rules of the participant and exam number, so every audit figure has a known
answer: :class:`Cohort` keeps, per exam, what was decided (``truth``), for the tests to compute the
expected figures from independently of the audit code.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from daemon.registry.csvfiles import Row
from daemon.storage.registry import DoseEventRow, ExamDose, _add_outcome, _upsert_participant, record_exam
from daemon.storage.schema import outbox, patients, studies
from dicom_sr.dose import IrradiationEvent
from dicom_sr.findings import NoduleFinding, Seed
from segmentation.types import Characteristic, Characterization, MeasurementQuality, NoduleMeasurement

ISSUER = "COHORT"
RADIOLOGISTS = ("Reader^Alice", "Reader^Bob", "Reader^Chen")
SCANNERS = (("SIEMENS", "SOMATOM go.Top", "LDCT LUNG"), ("GE MEDICAL SYSTEMS", "Revolution EVO", "LUNG SCREEN LD"))
SMOKING = ("current", "former", "former", "current", "never")
# baseline nodule palette (volume mm3, spiculated, upper lobe); None = no nodule
PALETTE: tuple[tuple[float, bool, bool] | None, ...] = (
    None,
    None,
    None,
    (40.0, False, False),
    (120.0, False, False),
    (300.0, False, False),
    (700.0, False, True),
    (1500.0, True, True),
)


@dataclass(frozen=True)
class CohortSpec:
    participants: int = 48
    rounds: int = 3
    seed: int = 16
    first_exam: dt.date = dt.date(2021, 1, 11)
    as_of: dt.date = dt.date(2026, 6, 30)
    opt_out_every: int = 9  # participant i with i % 9 == 4 opted out
    stop_every: int = 7  # participant i with i % 7 == 3 never returns after the baseline
    late_every: int = 5  # follow-up exam number n with n % 5 == 2 returns 120 days after the due date
    high_dose_every: int = 6  # exam number n with n % 6 == 3 (on scanner 2) has CTDIvol 4.2 mGy


@dataclass
class ExamTruth:
    n: int  # exam number in the cohort (creation order)
    participant: int
    patient_id: str
    opted_out: bool
    study_uid: str
    exam_date: dt.date
    round: int
    category: str
    follow_up_months: int | None
    due_date: dt.date | None
    ctdivol_mgy: float
    dlp_total_mgycm: float
    scanner: str
    protocol: str
    radiologist: str
    smoking_status: str
    received_at: dt.datetime
    analysed_at: dt.datetime
    delivered_at: dt.datetime
    nodules: int
    seeds_without_nodule: int
    volumetry_unreliable: int
    reader_composition: int
    lung_rads_category: str | None = None  # Lung-RADS v2022 computed alongside (the audit protocol)


@dataclass
class OutcomeTruth:
    participant: int
    patient_id: str
    opted_out: bool
    outcome_date: dt.date
    outcome_type: str
    tissue_diagnosis: str
    study_uid: str | None  # as given to the import (None: left to the import to find)


@dataclass
class Cohort:
    spec: CohortSpec
    exams: list[ExamTruth] = field(default_factory=list)
    outcomes: list[OutcomeTruth] = field(default_factory=list)
    participants: dict[int, dict[str, Any]] = field(default_factory=dict)


def _diameter(volume_mm3: float) -> float:
    return (6 * volume_mm3 / math.pi) ** (1 / 3)


def _measurement(volume: float, centroid: tuple[float, float, float], unreliable: bool) -> NoduleMeasurement:
    d = _diameter(volume)
    x, y, z = centroid
    return NoduleMeasurement(
        volume_mm3=volume,
        mean_diameter_mm=d,
        long_axis_mm=d * 1.1,
        short_axis_mm=d * 0.9,
        measurement_plane="axial",
        long_axis_endpoints_lps_mm=((x - d / 2, y, z), (x + d / 2, y, z)),
        short_axis_endpoints_lps_mm=((x, y - d / 2, z), (x, y + d / 2, z)),
        max_axial_diameter_mm=d * 1.1,
        mean_hu=20.0,
        centroid_lps_mm=centroid,
        quality=MeasurementQuality(volumetry_unreliable=unreliable, reasons=("cohort",) if unreliable else ()),
    )


def _uid(*parts: object) -> str:
    import hashlib

    return "2.25." + str(int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:30], 16))


def _get_or_create(conn: Connection, table: Any, key: dict[str, Any], values: dict[str, Any]) -> int:
    row = conn.execute(select(table.c.id).where(*[table.c[k] == v for k, v in key.items()])).first()
    if row is not None:
        return int(row.id)
    return int(conn.execute(insert(table), {**key, **values}).inserted_primary_key[0])


def build_cohort(
    engine: Engine, spec: CohortSpec = CohortSpec(), *, progress: Callable[[int], None] | None = None
) -> Cohort:
    """Create the cohort in the index behind ``engine`` and return what was decided."""
    from daemon.analysis.protocol import ProtocolAssessment, audit_case, exam_assessment
    from daemon.storage.longitudinal import write_assessment
    from nlcsp.cases import assessment_to_json, parse_case
    from nlcsp.categorize import assess

    rng = random.Random(spec.seed)
    cohort = Cohort(spec)
    n = 0
    positives = negatives = 0
    conn = engine.connect()
    trans = conn.begin()
    try:
        for i in range(spec.participants):
            pid = f"COH{i:06d}"
            opted_out = i % spec.opt_out_every == 4
            birth = dt.date(1953 + i % 17, 1 + i % 12, 1 + i % 28)
            smoking = SMOKING[i % len(SMOKING)]
            values: dict[str, Any] = {
                "sex": "F" if i % 2 else "M",
                "birth_date": birth,
                "smoking_status": smoking,
                "pack_years": 30.0 + i % 25,
                "family_history_lung_cancer": int(i % 3 == 0),
                "emphysema": int(i % 4 == 0),
                "asymptomatic": 1,
                "consent": "opted-out" if opted_out else "consented",
            }
            if smoking == "former":
                values["years_since_quit"] = float(i % 9)
            _upsert_participant(conn, pid, ISSUER, values, "participant-file")
            cohort.participants[i] = {"patient_id": pid, "opted_out": opted_out, **values}
            patient_pk = _get_or_create(
                conn,
                patients,
                {"patient_id": pid, "issuer": ISSUER},
                {"name": f"COHORT^P{i}", "birth_date": birth, "sex": values["sex"]},
            )
            base = PALETTE[rng.randrange(len(PALETTE))]
            growth = 1.0 + (0.6 if i % 8 == 5 else 0.0)
            history: list[dict[str, Any]] = []
            exam_date = spec.first_exam + dt.timedelta(days=(i * 3) % 300)
            for r in range(1, spec.rounds + 1):
                if exam_date > spec.as_of:
                    break
                n += 1
                study_uid = _uid("cohort", i, r)
                scanner_i = (n % 3 == 0) * 1
                manufacturer, model, protocol = SCANNERS[scanner_i]
                ctdivol = 4.2 if (scanner_i == 1 and n % spec.high_dose_every == 3) else round(0.8 + (n % 17) * 0.1, 2)
                radiologist = RADIOLOGISTS[(n // 2) % len(RADIOLOGISTS)]
                _get_or_create(
                    conn,
                    studies,
                    {"study_uid": study_uid},
                    {
                        "patient_pk": patient_pk,
                        "study_date": exam_date,
                        "accession_number": f"ACC{n:09d}",
                        "description": "LDCT LUNG SCREENING",
                    },
                )
                findings: list[NoduleFinding] = []
                nodules_json: list[dict[str, Any]] = []
                unreliable = reader_comp = 0
                if base is not None:
                    volume = base[0] * growth ** (r - 1)
                    is_unreliable = n % 6 == 0
                    by_reader = n % 4 == 0
                    unreliable += is_unreliable
                    reader_comp += by_reader
                    m = _measurement(volume, (10.0 + i % 5, -20.0, -100.0 - r), is_unreliable)
                    seed = Seed(
                        position_lps_mm=m.centroid_lps_mm,
                        series_uid=_uid("series", i, r),
                        source="sr",
                        reader=radiologist,
                    )
                    char = Characterization(
                        composition=Characteristic(
                            "solid", "reader" if by_reader else "algorithm", None if by_reader else 0.9
                        ),
                        spiculated=Characteristic(base[1], "algorithm", 0.8),
                        upper_lobe=Characteristic(base[2], "algorithm", 0.9),
                    )
                    findings.append(
                        NoduleFinding(
                            tracking_id="Nodule 1",
                            tracking_uid=_uid("nodule", i),
                            seed=seed,
                            measurement=m,
                            characterization=char,
                        )
                    )
                    nodules_json.append(
                        {
                            "id": "Nodule 1",
                            "composition": "solid",
                            "volume_mm3": None if is_unreliable else volume,
                            "mean_diameter_mm": m.mean_diameter_mm,
                            "max_axial_diameter_mm": m.max_axial_diameter_mm,
                            "spiculated": base[1],
                            "upper_lobe": base[2],
                            "priors": list(history),
                        }
                    )
                failed_seed = n % 13 == 0
                if failed_seed:
                    findings.append(
                        NoduleFinding(
                            tracking_id="Nodule 9",
                            tracking_uid=_uid("failed", i, r),
                            seed=Seed((0.0, 0.0, 0.0), None, "sr", reader=radiologist),
                            measurement=None,
                            error="no nodule at seed (0.0, 0.0, 0.0)",
                        )
                    )
                case = {
                    "schema": "noduled.case/1",
                    "exam_date": exam_date.isoformat(),
                    "screening_round": "baseline" if r == 1 else "follow-up",
                    "participant": {
                        "age_years": exam_date.year
                        - birth.year
                        - ((exam_date.month, exam_date.day) < (birth.month, birth.day)),
                        "sex": values["sex"],
                        "family_history_lung_cancer": bool(values["family_history_lung_cancer"]),
                        "emphysema": bool(values["emphysema"]),
                    },
                    "nodules": nodules_json,
                }
                parsed = parse_case(case)
                assessed = ProtocolAssessment("nlcsp", parsed, assess(parsed))
                a_json = assessment_to_json(assessed.result)
                # Lung-RADS v2022 computed alongside, as a site with [analysis] audit_protocol does (the LCSR fields)
                audit, _ = audit_case(parsed, "lung-rads-2022")
                from dicom_sr.findings import Participant

                participant = Participant(
                    age_years=case["participant"]["age_years"],
                    sex=values["sex"],
                    family_history_lung_cancer=bool(values["family_history_lung_cancer"]),
                    emphysema=bool(values["emphysema"]),
                    sources={"family_history_lung_cancer": "participant-file", "emphysema": "participant-file"},
                )
                assessment = exam_assessment(
                    assessed, findings, study_uid=study_uid, series_uid=_uid("series", i, r), participant=participant
                )
                report_uid = _uid("sr", i, r)
                received = dt.datetime.combine(exam_date, dt.time(9, 0), tzinfo=dt.UTC)
                analysed = received + dt.timedelta(minutes=5 + n % 20)
                delivered = analysed + dt.timedelta(minutes=1 + n % 4)
                write_assessment(
                    conn, study_uid, assessment, a_json, report_uid, None, created_at=analysed, audit=audit
                )
                spiral = IrradiationEvent(
                    event_uid=_uid("event", i, r),
                    acquisition_protocol=protocol,
                    acquisition_type="Spiral Acquisition",
                    ctdivol_mgy=ctdivol,
                    dlp_mgycm=round(ctdivol * 35.0, 2),
                    scanning_length_mm=350.0,
                    kvp=120.0,
                )
                dose = ExamDose(
                    series_uid=_uid("series", i, r),
                    scanner_manufacturer=manufacturer,
                    scanner_model=model,
                    acquisition_protocol=protocol,
                    kvp=120.0,
                    exposure_mas=25.0,
                    pitch_factor=1.0,
                    slice_width_mm=1.0,
                    scan_length_mm=350.0,
                    ctdivol_mgy=ctdivol,
                    dlp_total_mgycm=round(ctdivol * 35.0, 2),
                    dose_source="ct-dose-sr",
                    events=(DoseEventRow(_uid("dose", i, r), "ct-dose-sr", 0, spiral, True),),
                )
                record_exam(
                    conn,
                    study_uid,
                    assessment,
                    report_uid,
                    dose=dose,
                    analysed_at=analysed,
                    received_at=received,
                    radiologist=radiologist,
                )
                conn.execute(
                    insert(outbox),
                    {
                        "sop_instance_uid": report_uid,
                        "study_uid": study_uid,
                        "path": "cohort",
                        "destination": "PACS@127.0.0.1:104",
                        "state": "delivered",
                        "attempts": 1,
                        "created_at": analysed,
                        "next_attempt_at": analysed,
                        "delivered_at": delivered,
                    },
                )
                category = a_json["category"]
                due = dt.date.fromisoformat(a_json["due_date"]) if a_json.get("due_date") else None
                cohort.exams.append(
                    ExamTruth(
                        n=n,
                        participant=i,
                        patient_id=pid,
                        opted_out=opted_out,
                        study_uid=study_uid,
                        exam_date=exam_date,
                        round=r,
                        category=category,
                        lung_rads_category=audit.category if audit is not None else None,
                        follow_up_months=a_json["follow_up_months"],
                        due_date=due,
                        ctdivol_mgy=ctdivol,
                        dlp_total_mgycm=round(ctdivol * 35.0, 2),
                        scanner=f"{manufacturer} {model}",
                        protocol=protocol,
                        radiologist=radiologist,
                        smoking_status=smoking,
                        received_at=received,
                        analysed_at=analysed,
                        delivered_at=delivered,
                        nodules=1 if base is not None else 0,
                        seeds_without_nodule=int(failed_seed),
                        volumetry_unreliable=unreliable,
                        reader_composition=reader_comp,
                    )
                )
                # outcomes: every positive screen is biopsied 30 days later (cancer for every other one);
                # every 4th negative screen has an interval cancer 200 days later (the import finds the exam)
                if category in ("5", "6"):
                    positives += 1
                    cancer = positives % 2 == 1
                    out = OutcomeTruth(
                        i,
                        pid,
                        opted_out,
                        exam_date + dt.timedelta(days=30),
                        "biopsy",
                        "invasive-lung-cancer" if cancer else "benign",
                        study_uid,
                    )
                    cohort.outcomes.append(out)
                    _add_outcome(
                        conn,
                        pid,
                        ISSUER,
                        {
                            "outcome_date": out.outcome_date,
                            "outcome_type": "biopsy",
                            "tissue_diagnosis": out.tissue_diagnosis,
                            "study_uid": study_uid,
                        },
                        "outcome-file",
                        f"cohort exam {n}",
                    )
                elif category == "1":
                    negatives += 1
                    if negatives % 4 == 0:
                        out = OutcomeTruth(
                            i,
                            pid,
                            opted_out,
                            exam_date + dt.timedelta(days=200),
                            "surgery",
                            "invasive-lung-cancer",
                            None,
                        )
                        cohort.outcomes.append(out)
                        _add_outcome(
                            conn,
                            pid,
                            ISSUER,
                            {
                                "outcome_date": out.outcome_date,
                                "outcome_type": "surgery",
                                "tissue_diagnosis": out.tissue_diagnosis,
                            },
                            "outcome-file",
                            f"cohort exam {n}",
                        )
                if progress is not None:
                    progress(n)
                if n % 2000 == 0:
                    trans.commit()
                    trans = conn.begin()
                if base is not None:
                    v = base[0] * growth ** (r - 1)
                    history.append(
                        {
                            "date": exam_date.isoformat(),
                            "volume_mm3": v,
                            "mean_diameter_mm": _diameter(v),
                            "category": category,
                        }
                    )
                # the next round: on time (+-20 days), late (+120 days), or never
                if due is None or i % spec.stop_every == 3 or category in ("5", "6"):
                    break
                late = n % spec.late_every == 2
                exam_date = due + dt.timedelta(days=120 if late else (n % 41) - 20)
        trans.commit()
    except BaseException:
        trans.rollback()
        raise
    finally:
        conn.close()
    return cohort


def participant_rows(cohort: Cohort) -> list[Row]:
    """The cohort's participants as participant-file rows."""
    return [
        Row(k + 2, p["patient_id"], ISSUER, {f: v for f, v in p.items() if f not in ("patient_id", "opted_out")})
        for k, p in sorted(cohort.participants.items())
    ]


__all__ = ["Cohort", "CohortSpec", "ExamTruth", "OutcomeTruth", "build_cohort", "participant_rows", "replace"]
