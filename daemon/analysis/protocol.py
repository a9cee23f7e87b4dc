"""The typed adapter to and from the protocol engine (pure): participant facts, the case, the assessment read back.

The daemon builds :mod:`nlcsp.types` objects and reads the engine's typed :class:`nlcsp.types.Assessment`;
JSON is only at the edges (:func:`case_to_json` for ``noduled categorize``, the stored assessment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydicom.dataset import Dataset

from daemon.analysis.comparison import ComparisonResult, PriorObservation, case_priors, prior_comparisons
from daemon.analysis.dicomvalues import da_to_date
from daemon.analysis.errors import AnalysisError
from dicom_sr.findings import ExamAssessment, NoduleFinding, Participant, ReaderAttributes
from nlcsp import types as nl


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
        b, s = da_to_date(ct.get("PatientBirthDate")), da_to_date(ct.get("StudyDate"))
        if b is not None and s is not None:
            age = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
            sources["age_years"] = "ct-header PatientBirthDate"
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


def build_case(
    findings: Sequence[NoduleFinding],
    *,
    exam_date: dt.date,
    screening_round: nl.ScreeningRound,
    participant: Participant,
    flags: ReaderAttributes,
    history: Mapping[str, Sequence[PriorObservation]] | None = None,
) -> nl.Case:
    """Stage 5 input: the protocol engine's case of this exam (``history``: prior observations by tracking id)."""
    nodules: list[nl.Nodule] = []
    for f in findings:
        m, c = f.measurement, f.characterization
        if m is None:
            reader_d = f.seed.reader_diameter_mm if f.seed is not None else None
            if reader_d is not None:  # not measurable by noduled: the reader's own length (note 5b), never nothing
                nodules.append(nl.Nodule(
                    id=f.tracking_id, composition=_value(c.composition) or "solid", mean_diameter_mm=reader_d,
                    upper_lobe=bool(_value(c.upper_lobe)), spiculated=bool(_value(c.spiculated)),
                    priors=case_priors((history or {}).get(f.tracking_id, [])), index=len(nodules),
                ))
            continue
        composition: nl.Composition = _value(c.composition) or "solid"
        reliable = not m.quality.volumetry_unreliable
        juxtapleural = bool(_value(c.juxtapleural)) or bool(_value(c.perifissural))
        part_solid = composition == "part-solid"
        nodules.append(
            nl.Nodule(
                id=f.tracking_id,  # "Nodule 1": unique in the exam, readable in the rules
                composition=composition,
                volume_mm3=m.volume_mm3 if reliable else None,
                mean_diameter_mm=m.mean_diameter_mm,
                max_axial_diameter_mm=m.max_axial_diameter_mm,
                solid_component_volume_mm3=m.solid_volume_mm3 if part_solid and reliable else None,
                solid_component_mean_diameter_mm=m.solid_mean_diameter_mm if part_solid else None,
                upper_lobe=bool(_value(c.upper_lobe)),
                spiculated=bool(_value(c.spiculated)),
                benign_calcification=bool(_value(c.benign_calcification)),
                fat=bool(_value(c.fat)),
                # note 9: the criteria other than size (solid, smooth, oval/lentiform/triangular, pleural contact)
                juxtapleural_typical=juxtapleural and composition == "solid" and not bool(_value(c.spiculated)),
                airway=_value(c.airway),
                cyst=_value(c.cyst),
                priors=case_priors((history or {}).get(f.tracking_id, [])),
                index=len(nodules),
            )
        )
    case = nl.Case(
        exam_date=exam_date,
        screening_round=screening_round,
        participant=nl.Participant(
            age_years=participant.age_years,
            sex=participant.sex,
            family_history_lung_cancer=participant.family_history_lung_cancer,
            emphysema=participant.emphysema,
        ),
        exam_findings=nl.ExamFindings(
            infection_or_inflammation=bool(flags.infection_or_inflammation),
            suspicious_features=bool(flags.suspicious_features),
            actionable_additional_findings=bool(flags.actionable_additional_findings),
        ),
        nodules=tuple(nodules),
    )
    _check(case)
    return case


def _check(case: nl.Case) -> None:
    """What ``nlcsp.cases.parse_case`` requires of a case that measurements could break, as AnalysisError."""
    age = case.participant.age_years
    if age is not None and not 18 <= age <= 120:
        raise AnalysisError(f"the protocol engine refused the case: participant.age_years must be 18 to 120 (got {age:g})")
    for n in case.nodules:
        dates = [p.date for p in n.priors]
        if len(set(dates)) != len(dates) or any(d >= case.exam_date for d in dates):
            raise AnalysisError(
                f"the protocol engine refused the case: {n.id} has prior dates {', '.join(map(str, dates))}"
                f" (each once, before the exam date {case.exam_date})"
            )


def case_to_json(case: nl.Case) -> dict[str, Any]:
    """The ``noduled.case/1`` document of ``case`` (the edge: ``noduled categorize`` reads it back)."""

    def prior(p: nl.Prior) -> dict[str, Any]:
        return {"date": p.date.isoformat(), "volume_mm3": p.volume_mm3, "mean_diameter_mm": p.mean_diameter_mm,
                "category": p.category, "pre_screening": p.pre_screening}

    def nodule(n: nl.Nodule) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": n.id, "composition": n.composition, "volume_mm3": n.volume_mm3, "mean_diameter_mm": n.mean_diameter_mm,
            "max_axial_diameter_mm": n.max_axial_diameter_mm, "upper_lobe": n.upper_lobe, "spiculated": n.spiculated,
            "benign_calcification": n.benign_calcification, "fat": n.fat, "juxtapleural_typical": n.juxtapleural_typical,
            "airway": n.airway, "cyst": n.cyst, "priors": [prior(p) for p in n.priors],
        }
        if n.composition == "part-solid":
            out["solid_component_volume_mm3"] = n.solid_component_volume_mm3
            out["solid_component_mean_diameter_mm"] = n.solid_component_mean_diameter_mm
        return out

    p, f = case.participant, case.exam_findings
    return {
        "schema": "noduled.case/1",
        "exam_date": case.exam_date.isoformat(),
        "screening_round": case.screening_round,
        "participant": {"age_years": p.age_years, "sex": p.sex, "family_history_lung_cancer": p.family_history_lung_cancer,
                        "emphysema": p.emphysema},
        "exam_findings": {"infection_or_inflammation": f.infection_or_inflammation, "suspicious_features": f.suspicious_features,
                          "actionable_additional_findings": f.actionable_additional_findings},
        "nodules": [nodule(n) for n in case.nodules],
    }


def exam_assessment(
    assessment: nl.Assessment,
    findings: Sequence[NoduleFinding],
    *,
    study_uid: str,
    series_uid: str,
    participant: Participant,
    comparison: ComparisonResult | None = None,
) -> ExamAssessment:
    """Stage 5 output (the engine's typed assessment) joined with the findings: the report's content."""
    by_id = {n.id: n for n in assessment.nodules}
    uid_of = {f.tracking_id: f.tracking_uid for f in findings}
    out = []
    for f in findings:
        n = by_id.get(f.tracking_id)
        if n is None:
            out.append(f)
            continue
        observations = comparison.history.get(f.tracking_id, []) if comparison is not None else []
        out.append(
            replace(
                f,
                status=n.status,
                pancan_risk_pct=n.pancan_risk_pct,
                category=n.category,
                rule=n.rule,
                comparisons=prior_comparisons(f, observations, assessment.exam_date, n),
            )
        )
    return ExamAssessment(
        study_uid=study_uid,
        exam_date=assessment.exam_date,
        screening_round=assessment.screening_round,
        category=assessment.category,
        additional_findings=assessment.additional_findings,
        descriptor=assessment.descriptor,
        management=assessment.management,
        follow_up_months=assessment.follow_up_months,
        due_date=assessment.due_date,
        decisive_tracking_uid=uid_of.get(assessment.decisive_nodule_id or ""),
        findings=tuple(out),
        participant=participant,
        series_uid=series_uid,
        reasons=(assessment.rule,),
        notes=tuple(assessment.notes) + tuple(comparison.notes if comparison is not None else ()),
    )


def study_date(ct: Dataset) -> dt.date:
    date = da_to_date(ct.get("StudyDate"))
    if date is None:
        text = str(ct.get("StudyDate") or "")
        raise AnalysisError(f"study {ct.get('StudyInstanceUID')} has no valid StudyDate ({text!r}); the follow-up due date needs it")
    return date
