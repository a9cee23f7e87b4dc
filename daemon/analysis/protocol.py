"""The adapter to and from the protocol engine (pure): participant facts, the case document, the assessment read back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydicom.dataset import Dataset

from daemon.analysis.comparison import ComparisonResult, case_priors, prior_comparisons
from daemon.analysis.errors import AnalysisError
from dicom_sr.findings import ExamAssessment, NoduleFinding, Participant, ReaderAttributes


@dataclass(frozen=True)
class SiteDefaults:
    """Participant facts the CT headers do not carry (DESIGN §7 [site])."""

    family_history_lung_cancer: bool = False
    emphysema: bool = False


def participant_from_headers(ct: Dataset, site: SiteDefaults, overrides: dict[str, Any]) -> Participant:
    """Age and sex from the CT header; family history and emphysema from the site defaults."""
    sources: dict[str, str] = {}
    age: int | None = None
    text = str(ct.get("PatientAge") or "").strip().upper()
    if len(text) == 4 and text[:3].isdigit() and text[3] == "Y":
        age, sources["age_years"] = int(text[:3]), "ct-header PatientAge"
    else:
        birth, study = str(ct.get("PatientBirthDate") or ""), str(ct.get("StudyDate") or "")
        try:
            b = dt.datetime.strptime(birth[:8], "%Y%m%d").date()
            s = dt.datetime.strptime(study[:8], "%Y%m%d").date()
            age = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
            sources["age_years"] = "ct-header PatientBirthDate"
        except ValueError:
            pass
    sex_raw = str(ct.get("PatientSex") or "").strip().upper()
    sex = sex_raw if sex_raw in ("F", "M") else None
    if sex:
        sources["sex"] = "ct-header PatientSex"
    values: dict[str, Any] = {
        "age_years": age,
        "sex": sex,
        "family_history_lung_cancer": site.family_history_lung_cancer,
        "emphysema": site.emphysema,
    }
    sources.setdefault("family_history_lung_cancer", "site-config")
    sources.setdefault("emphysema", "site-config")
    for key, value in overrides.items():
        if key in values and value is not None:
            values[key] = value
            sources[key] = "participant-file"
    return Participant(sources=sources, **values)


def _value(characteristic) -> Any:  # type: ignore[no-untyped-def]
    return None if characteristic is None else characteristic.value


def case_for(
    findings: Sequence[NoduleFinding],
    *,
    exam_date: dt.date,
    screening_round: str,
    participant: Participant,
    flags: ReaderAttributes,
    history: dict[str, list] | None = None,
) -> dict[str, Any]:
    """Stage 5 input: the ``noduled.case/1`` document of this exam (``history``: prior observations by tracking id)."""
    nodules = []
    for f in findings:
        m, c = f.measurement, f.characterization
        if m is None:
            continue
        composition = _value(c.composition) or "solid"
        reliable = not m.quality.volumetry_unreliable
        juxtapleural = bool(_value(c.juxtapleural)) or bool(_value(c.perifissural))
        nodule: dict[str, Any] = {
            "id": f.tracking_id,  # "Nodule 1": unique in the exam, readable in the rules
            "composition": composition,
            "volume_mm3": m.volume_mm3 if reliable else None,
            "mean_diameter_mm": m.mean_diameter_mm,
            "max_axial_diameter_mm": m.max_axial_diameter_mm,
            "upper_lobe": bool(_value(c.upper_lobe)),
            "spiculated": bool(_value(c.spiculated)),
            "benign_calcification": bool(_value(c.benign_calcification)),
            "fat": bool(_value(c.fat)),
            # note 9: the criteria other than size (solid, smooth, oval/lentiform/triangular, pleural contact)
            "juxtapleural_typical": juxtapleural and composition == "solid" and not bool(_value(c.spiculated)),
            "airway": _value(c.airway),
            "cyst": _value(c.cyst),
            "priors": case_priors((history or {}).get(f.tracking_id, [])),
        }
        if composition == "part-solid":
            nodule["solid_component_volume_mm3"] = m.solid_volume_mm3 if reliable else None
            nodule["solid_component_mean_diameter_mm"] = m.solid_mean_diameter_mm
        nodules.append(nodule)
    return {
        "schema": "noduled.case/1",
        "exam_date": exam_date.isoformat(),
        "screening_round": screening_round,
        "participant": {
            "age_years": participant.age_years,
            "sex": participant.sex,
            "family_history_lung_cancer": participant.family_history_lung_cancer,
            "emphysema": participant.emphysema,
        },
        "exam_findings": {
            "infection_or_inflammation": bool(flags.infection_or_inflammation),
            "suspicious_features": bool(flags.suspicious_features),
            "actionable_additional_findings": bool(flags.actionable_additional_findings),
        },
        "nodules": nodules,
    }


def exam_assessment(
    assessment_json: dict[str, Any],
    findings: Sequence[NoduleFinding],
    *,
    study_uid: str,
    series_uid: str,
    participant: Participant,
    comparison: ComparisonResult | None = None,
) -> ExamAssessment:
    """Stage 5 output joined with the findings: the report's content."""
    by_id = {n["id"]: n for n in assessment_json["nodules"]}
    uid_of = {f.tracking_id: f.tracking_uid for f in findings}
    out = []
    for f in findings:
        n = by_id.get(f.tracking_id)
        if n is None:
            out.append(f)
            continue
        observations = comparison.history.get(f.tracking_id, []) if comparison is not None else []
        exam_date = dt.date.fromisoformat(assessment_json["exam_date"])
        out.append(
            replace(
                f,
                status=n["status"],
                pancan_risk_pct=n.get("pancan_risk_pct"),
                category=n["category"],
                rule=n["rule"],
                comparisons=prior_comparisons(f, observations, exam_date, n),
            )
        )
    due = assessment_json.get("due_date")
    return ExamAssessment(
        study_uid=study_uid,
        exam_date=dt.date.fromisoformat(assessment_json["exam_date"]),
        screening_round=assessment_json["screening_round"],
        category=assessment_json["category"],
        additional_findings=bool(assessment_json["additional_findings"]),
        descriptor=assessment_json["descriptor"],
        management=assessment_json["management"],
        follow_up_months=assessment_json["follow_up_months"],
        due_date=dt.date.fromisoformat(due) if due else None,
        decisive_tracking_uid=uid_of.get(assessment_json.get("decisive_nodule") or ""),
        findings=tuple(out),
        participant=participant,
        series_uid=series_uid,
        reasons=(assessment_json["rule"],),
        notes=tuple(assessment_json.get("notes") or ()) + tuple(comparison.notes if comparison is not None else ()),
    )


def study_date(ct: Dataset) -> dt.date:
    text = str(ct.get("StudyDate") or "")
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        raise AnalysisError(f"study {ct.get('StudyInstanceUID')} has no valid StudyDate ({text!r}); the follow-up due date needs it") from None
